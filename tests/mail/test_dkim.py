"""DKIM: with DKIM_* set every email carries a signature that dkimpy verifies against
the record `flask mail dkim-record` prints; a key that cannot be used stops the app."""

import re

import dkim
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from microblog.auth.recovery import request_password_reset
from microblog.extensions import db
from microblog.mail import send_email
from microblog.mail.signing import SigningKeyError
from microblog.models import User
from support.app import build_app, close_app
from support.smtp import text_of

DOMAIN, SELECTOR = "blog.example", "mail2026"


def write_key(path, key):
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(path)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dkim")
    return {
        "rsa": write_key(folder / "rsa.pem", rsa.generate_private_key(65537, 2048)),
        "ed25519": write_key(folder / "ed25519.pem", ed25519.Ed25519PrivateKey.generate()),
        # A key the app must refuse.
        "weak": write_key(folder / "weak.pem", rsa.generate_private_key(65537, 1024)),  # noqa: S505
    }


@pytest.fixture(params=["rsa", "ed25519"])
def app_settings(request, keys):
    return {
        "DKIM_DOMAIN": DOMAIN,
        "DKIM_SELECTOR": SELECTOR,
        "DKIM_PRIVATE_KEY_PATH": keys[request.param],
    }


def published_record(app):
    """What the operator publishes: the command's output, read as a resolver would."""
    result = app.test_cli_runner().invoke(args=["mail", "dkim-record"])
    assert result.exit_code == 0, result.output
    name, value = re.fullmatch(r"(\S+) IN TXT \( (.*) \)\n", result.output).groups()
    assert name == f"{SELECTOR}._domainkey.{DOMAIN}."
    return name, "".join(re.findall(r'"([^"]*)"', value)).encode()


def verifies(app, data):
    name, value = published_record(app)

    def resolve(query, timeout=5):
        return value if query.decode() == name else None

    return dkim.verify(data, dnsfunc=resolve)


def test_a_russian_email_is_signed_7_bit_and_verifies(app, smtp, deliver):
    with app.app_context():
        send_email(
            "[Microblog] Сброс пароля", None, ["susan@example.com"], "Привет!\n", "<p>Привет</p>"
        )
        db.session.commit()
    assert deliver() == 1
    (message,) = smtp.wait_for(1)
    assert message.wire.isascii()  # 8BITMIME was offered: a signed body never takes it
    assert message["DKIM-Signature"] is not None
    assert "c=relaxed/relaxed" in message["DKIM-Signature"].replace(" ", "")
    assert verifies(app, message.wire)


def test_a_changed_body_no_longer_verifies(app, smtp, deliver):
    with app.app_context():
        send_email("Hello", None, ["susan@example.com"], "The real text.\n", None)
        db.session.commit()
    assert deliver() == 1
    (message,) = smtp.wait_for(1)
    assert not verifies(app, message.wire.replace(b"The real text.", b"A forged text."))


def test_an_account_email_verifies(app, smtp, deliver, make_user):
    make_user()
    with app.app_context():
        db.session.execute(sa.update(User).values(locale="ru"))
        request_password_reset("susan@example.com")
    assert deliver() == 1
    (message,) = smtp.wait_for(1)
    assert "/auth/reset_password/" in text_of(message)
    signed = message["DKIM-Signature"].replace(" ", "").replace("\n", "")
    for header in ("from", "to", "subject", "date", "message-id", "auto-submitted"):
        assert header in signed.split("h=")[1].split(";")[0].lower().split(":")
    assert verifies(app, message.wire)


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"DKIM_PRIVATE_KEY_PATH": "/nonexistent/dkim.pem"}, "cannot read a PEM private key"),
        ({"DKIM_PRIVATE_KEY_PATH": "weak"}, "at least 2048"),
        ({"DKIM_SELECTOR": None}, "missing: DKIM_SELECTOR"),
    ],
)
def test_a_key_that_cannot_be_used_stops_the_app_with_a_clear_line(
    database_url, smtp, keys, app_settings, settings, says
):
    settings = {**app_settings, **settings}
    if settings["DKIM_PRIVATE_KEY_PATH"] in keys:
        settings["DKIM_PRIVATE_KEY_PATH"] = keys[settings["DKIM_PRIVATE_KEY_PATH"]]
    with pytest.raises(SigningKeyError, match=says):
        build_app(database_url, smtp, **settings)


def test_without_dkim_settings_the_record_command_says_signing_is_off(database_url, smtp):
    app = build_app(database_url, smtp)
    try:
        result = app.test_cli_runner().invoke(args=["mail", "dkim-record"])
        assert result.exit_code != 0
        assert "DKIM signing is off" in result.output
    finally:
        close_app(app)
