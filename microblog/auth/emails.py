"""What the auth blueprint sends, and how addresses are compared."""

import json
import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from email_validator import validate_email
from flask import current_app, render_template
from flask_babel import lazy_gettext as _l

from microblog import clock, i18n
from microblog.auth.tokens import make_reset_token
from microblog.extensions import db
from microblog.mail.delivery import as_flask_mail, composer
from microblog.mail.outbox import DROPPED, OutboxMessage, defer_email
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
        rehearse_sending(message, subject, text_body, html_body)
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


def rehearse_sending(message, subject, text_body, html_body):
    """Build the MIME message a send would build, and throw it away.

    Building it is most of the CPU time a sent email costs the worker (about
    ten times the composing), in the process that answers the next requests.
    """
    draft = OutboxMessage(
        subject=subject,
        sender=message.sender,
        recipients=message.recipients,
        text_body=text_body,
        html_body=html_body,
        message_id=message.message_id,
    )
    as_flask_mail(draft).as_bytes()


def write_reset_email(user):
    """Subject, text and HTML of the reset email for this user, with a fresh link."""
    link = external_url("auth.reset_password_link", token=make_reset_token(user))
    return render_email(
        user.locale, _l("Reset your password"), "reset_password", user=user, link=link
    )


def count_recent_emails(user, tag):
    """Emails of this tag the account was sent, or is about to be, in the past hour.

    Writing the user's row first serialises concurrent composers for one
    account, across threads, processes and hosts, so the count holds.
    """
    db.session.execute(sa.update(User).where(User.id == user.id).values(id=User.id))
    since = clock.utcnow() - timedelta(hours=1)
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(OutboxMessage)
        .where(
            OutboxMessage.tag == tag,
            OutboxMessage.user_id == user.id,
            OutboxMessage.kind == "email",
            OutboxMessage.state != DROPPED,
            OutboxMessage.created_at >= since,
        )
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
