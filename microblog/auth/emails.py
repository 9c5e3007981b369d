"""What the auth blueprint sends, and how addresses are compared."""

import json
import logging
from datetime import datetime

import sqlalchemy as sa
from email_validator import validate_email
from flask import current_app, render_template
from flask_babel import lazy_gettext as _l

from microblog import clock, i18n
from microblog.auth.tokens import make_reset_token
from microblog.extensions import db
from microblog.mail import composer, count_recent_emails, defer_email, rehearse_send
from microblog.models import User
from microblog.redact import mask_email
from microblog.urls import external_url

audit = logging.getLogger("microblog.audit")

RESET_TAG = "password_reset"


def normalize_email(address):
    """The one spelling of an address we store and look up: validated, ASCII, lower-case.

    Addresses that need SMTPUTF8 are refused with a clear error rather than
    accepted and then lost in the sender (many servers do not speak it).
    """
    result = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    return result.ascii_email.lower()


@composer(RESET_TAG)
def compose_password_reset(message):
    """Turn a queued reset request into an email, or drop it (unknown, throttled).

    Every address costs the worker the same work: an unknown one is counted
    and its email written for a stand-in account that no row has, and only
    then is it dropped (a throttled one likewise, its MIME message built and
    thrown away), so that what the worker did for one request does not show
    in the time of the requests after it; only the SMTP exchange differs.
    """
    address = message.recipient_list[0]
    user = db.session.scalar(sa.select(User).where(User.email == address))
    recipient = user or stand_in(address)
    limit = current_app.config["RESET_EMAILS_PER_HOUR"]
    throttled = count_recent_emails(recipient, RESET_TAG) >= limit
    subject, text_body, html_body = write_reset_email(recipient)
    if user is None or throttled:
        rehearse_send(message, subject, text_body, html_body)
    if user is None:
        audit.info("password_reset.unknown_address email=%s", mask_email(address))
        return False
    if throttled:
        audit.warning("password_reset.throttled user=%s", user.id)
        return False
    message.user_id = user.id
    message.recipients = json.dumps([user.email])
    message.subject, message.text_body, message.html_body = subject, text_body, html_body
    return True


def stand_in(address):
    """An account no row has (id 0): what an unknown address costs, never what it gets."""
    return User(
        id=0,
        username="stand-in",
        email=address,
        password_hash="",
        session_token="",
        locale=i18n.languages()[0],
    )


def write_reset_email(user):
    """Subject, text and HTML of the reset email for this user, with a fresh link."""
    link = external_url("auth.reset_password_link", token=make_reset_token(user))
    return render_email(
        user.locale, _l("Reset your password"), "reset_password", user=user, link=link
    )


def write_email(message, recipient, locale, subject, template, **context):
    """Fill in a deferred message: one recipient, text and HTML parts from one template name.

    `locale` is the recipient's stored language, never the request's: the
    request that caused the email may come from anyone's browser.
    """
    message.recipients = json.dumps([recipient])
    message.subject, message.text_body, message.html_body = render_email(
        locale, subject, template, **context
    )
    return True


def render_email(locale, subject, template, **context):
    """Subject, text and HTML in `locale`; `subject` is a lazy msgid, translated here.

    The "[Microblog]" prefix is the brand, the same in every language. The
    subject may hold any character: the sender encodes it (RFC 2047).
    """
    with i18n.in_locale(locale):
        return (
            f"[Microblog] {subject}",
            render_template(f"email/{template}.txt", **context),
            render_template(f"email/{template}.html", **context),
        )


PASSWORD_CHANGED = "password_changed"  # noqa: S105  (an email kind, not a password)


def send_password_changed_notice(user):
    """Tell the owner, so that a reset they did not ask for does not go unnoticed.

    Queued in the caller's transaction, written in the mail worker like every
    other email (in the recipient's terms, not the request's).
    """
    defer_email(
        PASSWORD_CHANGED,
        user.email,
        tag=PASSWORD_CHANGED,
        context={"user_id": user.id, "when": clock.utcnow().isoformat()},
    )


@composer(PASSWORD_CHANGED)
def compose_password_changed(message):
    """The notice, to the account's current address; dropped if the account is gone."""
    context = message.context or {}
    user = db.session.get(User, context.get("user_id") or 0)
    if user is None:
        return False
    message.user_id = user.id
    return write_email(
        message,
        user.email,
        user.locale,
        _l("Your password was changed"),
        PASSWORD_CHANGED,
        user=user,
        link=external_url("auth.reset_password_request"),
        when=datetime.fromisoformat(context["when"]),
    )
