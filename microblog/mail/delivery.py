"""Taking messages out of the outbox and handing them to SMTP (or to the log).

Used by the worker threads and by `flask mail send-pending`; both call
`deliver_due`, which sends everything due over one SMTP connection.
"""

import logging
import random
import smtplib
from datetime import timedelta

import flask_mail
from flask import current_app

from microblog import clock
from microblog.extensions import db, mail
from microblog.mail.outbox import DROPPED, FAILED, PENDING, SENT, claim_next
from microblog.redact import mask_email

log = logging.getLogger("microblog.mail")
audit = logging.getLogger("microblog.audit")

# kind -> function(message) that fills in a deferred message; False drops it.
composers = {}


def composer(kind):
    """Register the function that writes deferred messages of this kind."""

    def register(function):
        composers[kind] = function
        return function

    return register


def is_permanent(exc):
    """5xx answers about the message or its recipients will not change on retry.

    Everything else (refused or dropped connections, timeouts, 4xx, and
    authentication failures, which a fixed configuration cures) is temporary.
    """
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return False
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500
    return not isinstance(exc, (OSError, smtplib.SMTPException))


def describe(exc):
    """A reason fit for a log line: the error's class and SMTP code, never the message."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return f"SMTPRecipientsRefused {codes}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__} {exc.smtp_code}"
    return type(exc).__name__


def retry_delay(attempts):
    """Exponential backoff with full jitter, so that retries do not stampede."""
    config = current_app.config
    ceiling = min(config["MAIL_RETRY_MAX_DELAY"], config["MAIL_RETRY_BASE_DELAY"] * 2**attempts)
    return random.uniform(ceiling / 2, ceiling)


class SmtpLink:
    """One SMTP connection, opened on first use and kept for the next messages."""

    def __init__(self):
        self.connection = None

    def send(self, message):
        if self.connection is None:
            connection = mail.connect()
            connection.__enter__()
            # Flask-Mail opens the socket without a timeout; bound each exchange.
            connection.host.sock.settimeout(current_app.config["MAIL_TIMEOUT"])
            self.connection = connection
        self.connection.send(message)

    def close(self):
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.host.quit()
            except (OSError, smtplib.SMTPException):
                connection.host.close()


class LogLink:
    """Development without a mail server: the whole email goes to the log."""

    def send(self, message):
        log.info(
            "Email not sent: MAIL_SERVER is unset. It would have been:\n"
            "From: %s\nTo: %s\nSubject: %s\n\n%s",
            message.sender,
            ", ".join(message.recipients),
            message.subject,
            message.body,
        )

    def close(self):
        pass


def new_link():
    return SmtpLink() if current_app.config.get("MAIL_SERVER") else LogLink()


def as_flask_mail(row):
    message = flask_mail.Message(
        row.subject,
        sender=row.sender,
        recipients=row.recipient_list,
        body=row.text_body,
        html=row.html_body,
    )
    message.msgId = row.message_id
    return message


def deliver_due(stop=None):
    """Send every due message over one connection; returns how many were settled.

    Settled means sent, dropped or failed for good. Stops early when `stop`
    is set, or at the first temporary failure: the server is down or busy,
    so the claimed message is rescheduled and the rest wait for the next round.
    """
    session = db.session
    link = new_link()
    settled = 0
    try:
        while stop is None or not stop.is_set():
            row = claim_next(session, current_app.config["MAIL_LEASE_SECONDS"])
            if row is None:
                break
            try:
                if row.kind == "email" or compose(session, row):
                    link.send(as_flask_mail(row))
                    record_sent(session, row)
            except Exception as exc:  # every failure is classified and kept, none lost
                session.rollback()
                link.close()
                if not record_failure(session, row, exc):
                    break
            settled += 1
    finally:
        link.close()
    return settled


def compose(session, row):
    """Write a deferred message; False when there is nothing to send."""
    if not composers[row.kind](row):
        row.state = DROPPED
        session.commit()
        return False
    row.kind = "email"  # composed once: a retry sends the same message
    session.commit()
    return True


def record_sent(session, row):
    row.state = SENT
    row.sent_at = clock.utcnow()
    row.lease_until = None
    # The body (a reset link, say) has no use once delivered: don't keep it.
    row.text_body, row.html_body = "", None
    session.commit()
    audit.info("email.sent id=%s tag=%s user=%s", row.id, row.tag, row.user_id)


def record_failure(session, row, exc):
    """Reschedule the message, or fail it for good; returns True in the latter case."""
    now = clock.utcnow()
    delay = retry_delay(row.attempts)
    permanent = is_permanent(exc)
    retry_at = now + timedelta(seconds=delay)
    give_up = permanent or retry_at > row.deadline_at
    row.state = FAILED if give_up else PENDING
    row.next_attempt_at = retry_at
    row.lease_until = None
    row.last_error = describe(exc)
    session.commit()
    recipients = ", ".join(mask_email(r) for r in row.recipient_list)
    if give_up:
        log.error(
            "Email %s to %s failed for good after %d attempt(s): %s",
            row.id,
            recipients,
            row.attempts,
            row.last_error,
            exc_info=not isinstance(exc, (OSError, smtplib.SMTPException)),
        )
    else:
        log.warning(
            "Email %s to %s failed (attempt %d): %s; next try in %.0fs",
            row.id,
            recipients,
            row.attempts,
            row.last_error,
            delay,
        )
    return give_up
