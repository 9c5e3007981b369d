"""DKIM: every email signed for the site's domain, so that it passes DMARC on its own.

An operator who sends through a relay that does not sign, or straight to
the recipients' servers, would otherwise fail DMARC at the large mailbox
providers. The key is RSA (2048 bits or more) or Ed25519 (RFC 8463), in PEM;
it is read once, when the app starts, so that a key that cannot be read
stops the app with a clear line rather than failing every email later.
The signature is made over the final bytes (after the 7-bit encoding), with
relaxed canonicalisation of headers and body, which survives re-folding.
"""

import base64
from dataclasses import dataclass

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

# Signed when present, and "oversigned" when absent: no one can add them later.
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Auto-Submitted",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)
MIN_RSA_BITS = 2048


class SigningKeyError(RuntimeError):
    """The configured key cannot be used; the message says which setting to fix."""


@dataclass(frozen=True)
class Signer:
    domain: str
    selector: str
    algorithm: bytes  # b"rsa-sha256" or b"ed25519-sha256"
    private_key: bytes  # as dkimpy takes it: PKCS#1 PEM (RSA), base64 of the seed (Ed25519)
    public_record: str  # the DNS TXT value, "v=DKIM1; k=...; p=..."

    @property
    def record_name(self):
        return f"{self.selector}._domainkey.{self.domain}"

    def sign(self, data):
        """`data` with a DKIM-Signature header in front."""
        header = dkim.sign(
            data,
            self.selector.encode(),
            self.domain.encode(),
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=self.algorithm,
            include_headers=[name.encode() for name in SIGNED_HEADERS],
        )
        return header + data


def load_signer(config):
    """The signer the DKIM_* settings describe; None when they are unset.

    Raises SigningKeyError when some are set and not others, or the key cannot be
    read or is too weak.
    """
    names = ("DKIM_DOMAIN", "DKIM_SELECTOR", "DKIM_PRIVATE_KEY_PATH")
    values = [config.get(name) for name in names]
    if not any(values):
        return None
    if not all(values):
        missing = ", ".join(name for name, value in zip(names, values, strict=True) if not value)
        raise SigningKeyError(f"DKIM signing needs {', '.join(names)}; missing: {missing}")
    domain, selector, path = values
    try:
        with open(path, "rb") as file:
            key = serialization.load_pem_private_key(file.read(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"DKIM_PRIVATE_KEY_PATH {path}: cannot read a PEM private key without a "
            f"passphrase ({type(exc).__name__})"
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise SigningKeyError(
                f"DKIM_PRIVATE_KEY_PATH {path}: an RSA key of {key.key_size} bits; "
                f"use at least {MIN_RSA_BITS}"
            )
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return Signer(domain, selector, b"rsa-sha256", private, record("rsa", public))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return Signer(
            domain, selector, b"ed25519-sha256", base64.b64encode(seed), record("ed25519", public)
        )
    raise SigningKeyError(f"DKIM_PRIVATE_KEY_PATH {path}: not an RSA or Ed25519 key")


def record(kind, public):
    return f"v=DKIM1; k={kind}; p={base64.b64encode(public).decode()}"


def zone_line(signer):
    """The record as a zone-file line, its value split in strings of at most 255 characters."""
    value = signer.public_record
    chunks = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
    return f"{signer.record_name}. IN TXT ( {chunks} )"


def init_app(app):
    """Read the key now: a key that cannot be used stops the app at start."""
    app.extensions["dkim_signer"] = load_signer(app.config)


def signer_of(app):
    return app.extensions.get("dkim_signer")
