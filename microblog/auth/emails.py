"""What the auth blueprint sends, and how addresses are compared."""

import json
import logging
from datetime import timedelta

import sqlalchemy as sa
from email_validator import validate_email
from flask import current_app, render_template

from microblog import clock
from microblog.auth.tokens import make_reset_token
from microblog.extensions import db
from microblog.mail import send_email
from microblog.mail.delivery import composer
from microblog.mail.outbox import DROPPED, OutboxMessage
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
    """Turn a queued reset request into an email, or drop it (unknown, throttled)."""
    address = message.recipient_list[0]
    user = db.session.scalar(sa.select(User).where(User.email == address))
    if user is None:
        audit.info("password_reset.unknown_address email=%s", mask_email(address))
        return False
    if count_recent_emails(user, RESET_TAG) >= current_app.config["RESET_EMAILS_PER_HOUR"]:
        audit.warning("password_reset.throttled user=%s", user.id)
        return False
    token = make_reset_token(user)
    link = external_url("auth.reset_password_link", token=token)
    message.user_id = user.id
    message.recipients = json.dumps([user.email])
    message.subject = "[Microblog] Reset your password"
    message.text_body = render_template("email/reset_password.txt", user=user, link=link)
    message.html_body = render_template("email/reset_password.html", user=user, link=link)
    return True


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


def write_email(message, recipient, subject, template, **context):
    """Fill in a deferred message: one recipient, text and HTML parts from one template name."""
    message.recipients = json.dumps([recipient])
    message.subject = f"[Microblog] {subject}"
    message.text_body = render_template(f"email/{template}.txt", **context)
    message.html_body = render_template(f"email/{template}.html", **context)
    return True


def send_password_changed_notice(user):
    """Tell the owner, so that a reset they did not ask for does not go unnoticed."""
    link = external_url("auth.reset_password_request")
    when = clock.utcnow()
    send_email(
        "[Microblog] Your password was changed",
        None,
        [user.email],
        render_template("email/password_changed.txt", user=user, link=link, when=when),
        render_template("email/password_changed.html", user=user, link=link, when=when),
        tag="password_changed",
        user_id=user.id,
    )
