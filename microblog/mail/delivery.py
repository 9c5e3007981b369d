"""Taking messages out of the outbox and handing them to SMTP (or to the log).

Used by the worker threads and by `flask mail send-pending`; both call
`deliver_due`, which sends everything due over one SMTP connection.
"""

import logging
import random
import smtplib
from datetime import timedelta
from functools import partial

import flask_mail
import sqlalchemy as sa
from flask import current_app

from microblog import clock
from microblog.extensions import db, mail
from microblog.mail.outbox import DROPPED, FAILED, PENDING, SENT, claim_next, settle
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


# 5xx answers about authentication (RFC 4954): the configuration is wrong, not the message.
AUTHENTICATION_CODES = {530, 534, 535, 538}


def is_permanent(exc):
    """5xx answers about the message or its recipients will not change on retry.

    Everything else is temporary: refused or dropped connections, timeouts,
    4xx, and 5xx answers about the connection or the account (a greeting or
    HELO refused, STARTTLS or authentication failing), which a fixed server
    or configuration cures; taken as permanent, one such answer would fail
    the whole queue. So is a database that is briefly unavailable. What is
    left is a bug (a composer that raises, a bad header): retrying won't help.
    """
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, (smtplib.SMTPSenderRefused, smtplib.SMTPDataError)):
        return exc.smtp_code >= 500 and exc.smtp_code not in AUTHENTICATION_CODES
    return not isinstance(exc, (OSError, smtplib.SMTPException, sa.exc.OperationalError))


def describe(exc):
    """A reason fit for a log line: the error's class and SMTP code, never the message."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return f"SMTPRecipientsRefused {codes}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__} {exc.smtp_code}"
    return type(exc).__name__


def retry_delay(attempts):
    """Exponential backoff with jitter (half to all of the step), so retries don't stampede."""
    config = current_app.config
    ceiling = min(config["MAIL_RETRY_MAX_DELAY"], config["MAIL_RETRY_BASE_DELAY"] * 2**attempts)
    return random.uniform(ceiling / 2, ceiling)


# The SMTP exchanges one message may need, each bounded by MAIL_TIMEOUT: connect,
# greeting, EHLO, STARTTLS and its handshake, EHLO again, AUTH (two), MAIL FROM,
# RCPT TO (up to three recipients), DATA, the content, its answer, and QUIT.
EXCHANGES_PER_MESSAGE = 16


def lease_seconds(config):
    """How long a claim holds a message: never less than one send may take.

    The invariant: a worker still sending legitimately must not lose its lease,
    or another worker would send the message a second time. MAIL_TIMEOUT bounds
    each exchange, so a lease of EXCHANGES_PER_MESSAGE x MAIL_TIMEOUT covers the
    slowest send that can still succeed; a shorter MAIL_LEASE_SECONDS is raised
    to it (only the recovery of a dead worker's message waits longer). Beyond
    the invariant (a server that trickles bytes, more recipients, hosts whose
    clocks disagree by more than the margin), the claim token still keeps the
    outcome consistent: the worker that lost its lease records nothing.
    """
    return max(config["MAIL_LEASE_SECONDS"], EXCHANGES_PER_MESSAGE * config["MAIL_TIMEOUT"])


def open_smtp(state, timeout):
    """Flask-Mail's `Connection.configure_host`, with a timeout from the first byte.

    Flask-Mail connects without one: a server that accepts the connection and
    never greets would hold the worker, and its lease, forever.
    """
    factory = smtplib.SMTP_SSL if state.use_ssl else smtplib.SMTP
    host = factory(state.server, state.port, timeout=timeout)
    host.set_debuglevel(int(state.debug))
    if state.use_tls:
        host.starttls()
    if state.username and state.password:
        host.login(state.username, state.password)
    return host


class SmtpLink:
    """One SMTP connection, opened on first use and kept for the next messages."""

    def __init__(self, timeout):
        self.timeout = timeout
        self.connection = None

    def send(self, message):
        if self.connection is None:
            connection = mail.connect()
            # Also used by Flask-Mail when it reconnects after MAIL_MAX_EMAILS.
            connection.configure_host = partial(open_smtp, connection.mail, self.timeout)
            connection.__enter__()
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
    """SMTP when a server is configured, otherwise the log."""
    config = current_app.config
    return SmtpLink(config["MAIL_TIMEOUT"]) if config.get("MAIL_SERVER") else LogLink()


def as_flask_mail(row):
    """The row as a Flask-Mail message, keeping its Message-ID across retries."""
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
    lease = lease_seconds(current_app.config)
    link = new_link()
    settled = 0
    try:
        while stop is None or not stop.is_set():
            row = claim_next(session, lease)
            if row is None:
                break
            claim = row.claim_token
            try:
                if row.kind == "email" or compose(session, row):
                    link.send(as_flask_mail(row))
                    record_sent(session, row, claim)
            except Exception as exc:  # every failure is classified and kept, none lost
                session.rollback()
                link.close()
                if not record_failure(session, row, claim, exc):
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


def record_sent(session, row, claim):
    """Mark the message sent, if this worker still holds its claim, and drop its body."""
    row_id, tag, user_id = row.id, row.tag, row.user_id
    # The body (a reset link, say) has no use once delivered: don't keep it.
    if settle(
        session,
        row_id,
        claim,
        state=SENT,
        sent_at=clock.utcnow(),
        lease_until=None,
        text_body="",
        html_body=None,
    ):
        audit.info("email.sent id=%s tag=%s user=%s", row_id, tag, user_id)
    else:
        warn_lease_lost(row_id)


def record_failure(session, row, claim, exc):
    """Reschedule the message, or fail it for good; returns True in the latter case."""
    now = clock.utcnow()
    attempts = row.attempts
    delay = retry_delay(attempts)
    retry_at = now + timedelta(seconds=delay)
    give_up = is_permanent(exc) or retry_at > row.deadline_at
    reason = describe(exc)
    recipients = ", ".join(mask_email(r) for r in row.recipient_list)
    if not settle(
        session,
        row.id,
        claim,
        state=FAILED if give_up else PENDING,
        next_attempt_at=retry_at,
        lease_until=None,
        last_error=reason,
    ):
        warn_lease_lost(row.id)
    elif give_up:
        log.error(
            "Email %s to %s failed for good after %d attempt(s): %s",
            row.id,
            recipients,
            attempts,
            reason,
            exc_info=not isinstance(exc, (OSError, smtplib.SMTPException)),
        )
    else:
        log.warning(
            "Email %s to %s failed (attempt %d): %s; next try in %.0fs",
            row.id,
            recipients,
            attempts,
            reason,
            delay,
        )
    return give_up


def warn_lease_lost(row_id):
    """Another worker owns the message now: say so, and let it record the outcome."""
    log.warning(
        "Email %s: the lease ran out before the outcome was recorded; "
        "the worker that claimed it again records its own",
        row_id,
    )
