"""Addresses that mail cannot reach, learnt from bounces, and the mail they stop.

A permanent failure (a delivery status notification fed to `flask mail
bounce`, or a 5xx about the mailbox at RCPT) marks the address
undeliverable. Activity email (category ACTIVITY: notifications, digests)
to a marked address is then dropped, since mailing an address that does not
exist is how a sender loses its reputation; account email (resets,
verification links, security notices) is still tried, as its owner may need
it to recover the account. A transient failure changes nothing. The mark
goes when the address is verified again (`clear_undeliverable`).

The table is keyed by the normalised address, not by account: mail knows no
feature, and a bounce names an address, never an account.
"""

import email
import re
from email import policy

import sqlalchemy as sa
import sqlalchemy.orm as so
from flufl.bounce import all_failures

from microblog import clock
from microblog.extensions import db

ACCOUNT, ACTIVITY = "account", "activity"  # the categories of email; only ACTIVITY is suppressed
CATEGORIES = (ACCOUNT, ACTIVITY)

# Enhanced status codes (RFC 3463) about the address itself: bad mailbox, bad domain,
# disabled mailbox. A 5.7.x (policy) or 5.3.x (system) refusal says nothing of the address.
ADDRESS_STATUS = re.compile(r"^5\.(1\.\d+|2\.1)\b")
ENHANCED_STATUS = re.compile(r"^\d\.\d{1,3}\.\d{1,3}\b")
ADDRESS_CODES = {550, 551, 553}  # without an enhanced code: mailbox unavailable, not local, bad


class UndeliverableAddress(db.Model):
    __tablename__ = "undeliverable_address"

    address: so.Mapped[str] = so.mapped_column(sa.String(320), primary_key=True)
    reason: so.Mapped[str] = so.mapped_column(sa.String(200))  # "dsn 5.1.1", "rcpt 550 5.1.1"
    failed_at: so.Mapped[sa.DateTime] = so.mapped_column(sa.DateTime, default=clock.utcnow)


def normalised(address):
    return address.strip().lower()


def is_undeliverable(address):
    """Whether mail to this address failed for good (and it was not verified since)."""
    if not address:
        return False
    return db.session.get(UndeliverableAddress, normalised(address)) is not None


def mark_undeliverable(session, address, reason):
    """Record a permanent failure, in the caller's transaction; the first reason is kept."""
    address = normalised(address)
    if "@" not in address or session.get(UndeliverableAddress, address) is not None:
        return False
    session.add(UndeliverableAddress(address=address, reason=reason[:200]))
    return True


def clear_undeliverable(address):
    """The owner confirmed the address (verified it again): mail to it goes again."""
    db.session.execute(
        sa.delete(UndeliverableAddress).where(UndeliverableAddress.address == normalised(address))
    )


def suppressed(session, row):
    """Whether this outbox row is activity mail to an address marked undeliverable."""
    if row.category != ACTIVITY:
        return False
    addresses = [normalised(address) for address in row.recipient_list]
    return (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(UndeliverableAddress)
            .where(UndeliverableAddress.address.in_(addresses))
        )
        > 0
    )


def permanent_at_rcpt(code, text):
    """Whether a refusal at RCPT says the address does not exist (not a policy or a busy box)."""
    if code < 500:
        return False
    text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    text = text.strip()
    if ENHANCED_STATUS.match(text):
        return bool(ADDRESS_STATUS.match(text))
    return code in ADDRESS_CODES


def mark_refused_recipients(session, refused):
    """Mark the addresses a server refused for good at RCPT ({address: (code, text)})."""
    marked = []
    for address, (code, text) in refused.items():
        if permanent_at_rcpt(code, text):
            reason = (
                f"rcpt {code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
            )
            if mark_undeliverable(session, address, reason):
                marked.append(normalised(address))
    return marked


# The envelope sender, and VERP.


def envelope_sender(config, recipients, from_address):
    """MAIL FROM: MAIL_RETURN_PATH (else the From address), VERP-encoded when MAIL_VERP is on.

    With VERP a message to susan@example.com leaves from
    bounces+susan=example.com@blog.example: the bounce comes back to an
    address that names its recipient, however poor its report.
    """
    return_path = config.get("MAIL_RETURN_PATH") or from_address
    if not config.get("MAIL_VERP") or len(recipients) != 1 or "@" not in return_path:
        return return_path
    local, _, domain = return_path.rpartition("@")
    mailbox, _, host = recipients[0].rpartition("@")
    return f"{local}+{mailbox}={host}@{domain}"


def verp_recipient(config, bounce_address):
    """The recipient a VERP bounce address names, or None."""
    return_path = config.get("MAIL_RETURN_PATH") or ""
    if not return_path or "@" not in return_path or not bounce_address:
        return None
    local, _, domain = normalised(return_path).rpartition("@")
    pattern = rf"{re.escape(local)}\+(.+)=([^=@]+)@{re.escape(domain)}"
    match = re.fullmatch(pattern, normalised(bounce_address))
    return f"{match[1]}@{match[2]}" if match else None


# Reading a bounce.

# Where MTAs say to which address the bounce was delivered (the VERP address).
DELIVERY_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To")


class BounceError(ValueError):
    """The input is not a message that can be read as a bounce."""


def read_bounce(data, config, delivered_to=None):
    """The addresses a bounce reports as failed for good, and whether it failed only for now.

    Returns (permanent, temporary): sets of normalised addresses. RFC 3464
    reports and the common non-standard ones (flufl.bounce's detectors);
    with VERP, a report of a permanent failure that names no address the
    parser can read still names the recipient through the bounce's address.
    """
    if not data.strip():
        raise BounceError("empty input: expected one bounce message on stdin")
    message = email.message_from_bytes(data)
    if not message.keys():
        raise BounceError("not an email message: no headers")
    try:
        temporary, permanent = all_failures(message)
    except Exception as exc:  # the detectors parse hostile input: any failure is bad input
        raise BounceError(f"the report cannot be read ({type(exc).__name__})") from None
    permanent = {normalised(a.decode(errors="replace")) for a in permanent}
    temporary = {normalised(a.decode(errors="replace")) for a in temporary}
    permanent = {a for a in permanent if "@" in a}
    if permanent or _says_permanent(message):
        candidates = [delivered_to] if delivered_to else []
        parsed = email.message_from_bytes(data, policy=policy.default)
        candidates += [str(parsed.get(name) or "") for name in DELIVERY_HEADERS]
        for candidate in candidates:
            named = verp_recipient(config, email.utils.parseaddr(candidate)[1])
            if named:
                permanent.add(named)
                break
    return permanent, {a for a in temporary if "@" in a} - permanent


def _says_permanent(message):
    """An RFC 3464 report whose per-recipient Action is "failed" (addresses unreadable)."""
    if message.get_content_type() != "multipart/report":
        return False
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in part.get_payload() or []:
                action = block.get("Action", "") if isinstance(block, email.message.Message) else ""
                if str(action).strip().lower() == "failed":
                    return True
    return False


def record_bounce(session, permanent):
    """Mark each permanently failed address; the newly marked ones."""
    marked = [a for a in sorted(permanent) if mark_undeliverable(session, a, "dsn")]
    session.commit()
    return marked
