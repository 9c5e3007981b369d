"""Taking messages out of the outbox and handing them to SMTP (or to the log).

Used by the worker threads (`deliver_batch`, one batch at a time, under the
circuit of their process) and by `flask mail send-pending` (`deliver_due`,
everything due over one SMTP connection).
"""

import logging
import random
import smtplib
import time
from contextlib import nullcontext
from datetime import timedelta
from functools import partial

import sqlalchemy as sa
from flask import current_app

from microblog import clock
from microblog.extensions import db, mail
from microblog.mail import bounces, metrics, mime, signing
from microblog.mail.outbox import (
    DROPPED,
    FAILED,
    PENDING,
    OutboxMessage,
    claim_batch,
    count_due,
    fail_expired,
    release,
    renew_lease,
    settle,
    settle_sent,
)
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
# "Try later": the server is busy, or limits this client (connections, rate).
THROTTLE_CODES = {421, 451, 454}

# What a failure says: about the server (hold all mail back and probe it), about this
# message (retry it later, alone), or nothing that a retry would change.
SERVER, MESSAGE, PERMANENT = "server", "message", "permanent"


def classify(exc):
    """Server, message or permanent failure.

    The server: refused or dropped connections, timeouts, any 421, answers
    to the greeting, EHLO, STARTTLS, AUTH or MAIL FROM (4xx, and 5xx about
    authentication): every message would fail the same way, and a fixed
    server or configuration cures them all. The message: a 4xx to its
    recipients or its content, and a database briefly unavailable. Permanent:
    5xx answers about the message or its recipients, and anything else (a
    composer that raises, a bad header: a bug that retrying won't fix).
    """
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        if 421 in codes:
            return SERVER
        return PERMANENT if all(code >= 500 for code in codes) else MESSAGE
    if isinstance(exc, smtplib.SMTPDataError):
        if code == 421:
            return SERVER
        return PERMANENT if code >= 500 else MESSAGE
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return PERMANENT if code >= 500 and code not in AUTHENTICATION_CODES else SERVER
    if isinstance(exc, (OSError, smtplib.SMTPException)):
        return SERVER
    if isinstance(exc, sa.exc.OperationalError):
        return MESSAGE
    return PERMANENT


def is_throttling(exc):
    """The server asks this client to slow down ("421 too many connections", 451, 454)."""
    return getattr(exc, "smtp_code", None) in THROTTLE_CODES


def server_answered(exc):
    """The server is up and said no (back off), rather than silent or unreachable."""
    return isinstance(exc, smtplib.SMTPResponseException)


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


def send_bound(config):
    """The longest one send can take and still succeed."""
    return EXCHANGES_PER_MESSAGE * config["MAIL_TIMEOUT"]


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
        self.on_connect = None  # called once the server has accepted the connection

    def send(self, row):
        """Send the row: 8-bit only to a server that announced 8BITMIME, and then declared."""
        self.open()
        host = self.connection.host
        host.ehlo_or_helo_if_needed()
        eight_bit = host.has_extn("8bitmime") and not signing.signer_of(current_app)
        data = wire_bytes(as_email(row, eight_bit))
        host.sendmail(
            envelope_sender(current_app.config, row),
            row.recipient_list,
            data,
            mime.mail_options(data),
        )
        self.count_sent()

    def count_sent(self):
        """Flask-Mail's MAIL_MAX_EMAILS: a new connection after that many messages."""
        connection = self.connection
        connection.num_emails += 1
        if connection.num_emails == connection.mail.max_emails:
            connection.num_emails = 0
            connection.host.quit()
            connection.host = connection.configure_host()

    def open(self):
        """Connect, if not connected: the server's greeting comes before any claim."""
        if self.connection is None:
            connection = mail.connect()
            # Also used by Flask-Mail when it reconnects after MAIL_MAX_EMAILS.
            connection.configure_host = partial(open_smtp, connection.mail, self.timeout)
            connection.__enter__()
            self.connection = connection
            if self.on_connect is not None:
                self.on_connect()

    def close(self):
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.host.quit()
            except (OSError, smtplib.SMTPException):
                connection.host.close()


class LogLink:
    """Development without a mail server: the whole email goes to the log."""

    on_connect = None

    def open(self):
        pass

    def send(self, row):
        log.info(
            "Email not sent: MAIL_SERVER is unset. It would have been:\n"
            "From: %s\nTo: %s\nSubject: %s\n\n%s",
            row.sender,
            ", ".join(row.recipient_list),
            row.subject,
            row.text_body,
        )

    def close(self):
        pass


def new_link():
    """SMTP when a server is configured, otherwise the log."""
    config = current_app.config
    return SmtpLink(config["MAIL_TIMEOUT"]) if config.get("MAIL_SERVER") else LogLink()


def as_email(row, eight_bit=False):
    """The row as the message to send; its Message-ID is the row's, the same across retries."""
    return mime.build(
        row.sender,
        row.recipient_list,
        row.subject,
        row.text_body,
        row.html_body,
        row.message_id,
        eight_bit=eight_bit,
    )


def wire_bytes(message):
    """The bytes that go after DATA: flattened, then signed when DKIM is configured.

    A signed message is always built 7-bit: a relay further on that must
    downgrade an 8-bit body would break its signature.
    """
    data = mime.as_bytes(message)
    signer = signing.signer_of(current_app)
    return data if signer is None else signer.sign(data)


def envelope_sender(config, row):
    """MAIL FROM: where bounces go (MAIL_RETURN_PATH, VERP-encoded or not)."""
    return bounces.envelope_sender(config, row.recipient_list, mime.address_of(row.sender))


def rehearse_send(message, subject, text_body, html_body):
    """Build the MIME message a send of `message` would build, and throw it away.

    Building it is most of the CPU time a sent email costs the worker (about
    ten times the composing): a composer that drops a message rehearses its
    send, so that what it did not send does not show in the next requests' time.
    """
    draft = OutboxMessage(
        subject=subject,
        sender=message.sender,
        recipients=message.recipients,
        text_body=text_body,
        html_body=html_body,
        message_id=message.message_id,
    )
    wire_bytes(as_email(draft))


def probe_server():
    """Connect, EHLO (STARTTLS and AUTH when configured), NOOP, QUIT; raises on failure."""
    config = current_app.config
    if not config.get("MAIL_SERVER"):
        return
    host = open_smtp(current_app.extensions["mail"], config["MAIL_TIMEOUT"])
    try:
        host.ehlo_or_helo_if_needed()
        code, _ = host.noop()
        if code != 250:
            raise smtplib.SMTPResponseException(code, "NOOP refused")
        host.quit()
    finally:
        host.close()


class Outcome:
    """What one batch did: claimed, settled for good, sent; the server failure that ended it."""

    def __init__(self):
        self.claimed = self.settled = self.sent = 0
        self.failure = None


def claim_size(session, batch_size, senders):
    """A batch, or less as the backlog drains: half of a fair share of what is due.

    The last messages of a burst are spread over the `senders` in ever
    smaller claims (guided self-scheduling) rather than left in one batch
    that a single connection sends while the others idle: the burst ends
    when its last message does.
    """
    due = count_due(session, 2 * batch_size * max(1, senders))
    if not due:
        return 0  # nothing to send: no connection is opened for it
    if senders <= 1:
        return batch_size
    return max(1, min(batch_size, -(-due // (2 * senders))))


def deliver_batch(
    link,
    batch_size,
    stop=None,
    on_server_failure=None,
    circuit=None,
    on_full_claim=None,
    senders=1,
):
    """Claim up to `batch_size` due messages and send them over `link`.

    A server failure ends the batch: the message in hand and the untried
    ones are due again at once (the circuit, not a per-message back-off,
    decides when to try again), and `Outcome.failure` says why. Message
    failures are rescheduled or failed one by one, and the batch goes on.
    Sent messages are settled together, with their counters, before any
    failure is recorded and at the end: one UPDATE per batch, not per message.
    `on_server_failure(exc)` runs before the messages are given back, so
    that the workers stop claiming before the messages are due again; with
    a `circuit`, nothing is claimed while it is open. `on_full_claim()`
    runs when the claim took `batch_size` messages (a backlog), before sending.
    With several `senders`, a claim takes no more than its share of what is due.
    """
    session = db.session
    config = current_app.config
    lease = lease_seconds(config) + send_bound(config)
    outcome = Outcome()
    size = claim_size(session, batch_size, senders)  # a read: outside the circuit's lock
    # With a backlog, connect before claiming: a refused sender never holds mail that
    # another could be sending. A lone message is claimed first: of the senders woken
    # for it, only the one that gets it opens a connection.
    if size and (circuit is None or not circuit.is_open) and count_due(session, 2) > 1:
        try:
            link.open()
        except Exception as exc:  # the server's failure, not a message's: none is charged
            session.rollback()
            link.close()
            if on_server_failure is not None:
                on_server_failure(exc)
            fail_overdue(session)  # an outage still ends at each message's deadline
            outcome.failure = exc
            return outcome
    with circuit.claiming() if circuit is not None else nullcontext(True) as allowed:
        rows = claim_batch(session, lease, size) if allowed and size else []
    outcome.claimed = len(rows)
    if not rows:
        return outcome
    if len(rows) == batch_size and on_full_claim is not None:
        on_full_claim()
    claim = rows[0].claim_token
    lease_until = rows[0].lease_until
    sent, tally = [], metrics.Tally()
    handled = 0  # rows[:handled] are sent, settled or rescheduled; the rest go back
    for index, row in enumerate(rows):
        if stop is not None and stop.is_set():
            break
        handled = index + 1
        if clock.utcnow() + timedelta(seconds=send_bound(config)) > lease_until:
            # Sent rows too: recorded only at the end, they must not be claimed again.
            held = renew_lease(session, [r.id for r in sent + rows[index:]], claim, lease)
            lease_until = clock.utcnow() + timedelta(seconds=lease)
            if row.id not in held:
                warn_lease_lost(row.id)
                continue
        try:
            if row.kind != "email" and not compose(session, row):
                outcome.settled += 1  # its composer dropped it
            elif suppress(session, row, claim):
                outcome.settled += 1
            else:
                started = time.perf_counter()
                link.send(row)
                tally.sent(row.tag, time.perf_counter() - started)
                sent.append(row)
        except Exception as exc:  # every failure is classified and kept, none lost
            refused = getattr(link, "connection", True) is None  # it never connected
            session.rollback()
            link.close()
            outcome.settled += record_sent(session, sent, claim, tally)
            outcome.sent += len(sent)
            sent, tally = [], metrics.Tally()
            kind = classify(exc)
            if kind == SERVER:
                if on_server_failure is not None:
                    on_server_failure(exc)
                if refused:  # nothing of the message was sent: none is charged
                    release(session, [r.id for r in rows[index:]], claim)
                    fail_overdue(session)
                else:
                    hold_back(session, row, claim, exc)
                    release(session, [r.id for r in rows[index + 1 :]], claim)
                outcome.failure = exc
                return outcome
            outcome.settled += record_failure(session, row, claim, exc, kind)
    outcome.settled += record_sent(session, sent, claim, tally)
    outcome.sent += len(sent)
    release(session, [r.id for r in rows[handled:]], claim)
    return outcome


def deliver_due(stop=None):
    """Send every due message, batch after batch; returns how many were settled.

    Settled means sent, dropped or failed for good. Stops early when `stop`
    is set, or at the first server failure: the messages stay due for the
    next round (cron, `flask mail send-pending`, or the workers' circuit).
    """
    link = new_link()
    settled = 0
    batch_size = current_app.config["MAIL_BATCH_SIZE"]
    try:
        while stop is None or not stop.is_set():
            outcome = deliver_batch(link, batch_size, stop)
            settled += outcome.settled
            if outcome.failure is not None:
                log_server_failure(outcome.failure)
                break
            if outcome.claimed == 0:
                break
    finally:
        link.close()
    return settled


def fail_overdue(session):
    """Fail for good the mail that an outage kept past its retry deadline, and say so."""
    expired = fail_expired(session)
    if expired:
        log.error(
            "%d email(s) failed for good: the server stayed unavailable past their retry deadline",
            len(expired),
        )
    return expired


def log_server_failure(exc):
    log.warning("Mail server unavailable (%s): the mail stays queued", describe(exc))


def compose(session, row):
    """Write a deferred message; False when there is nothing to send.

    `row` is detached (claimed in a batch): the composer fills in the
    attached copy, and `row` takes its values for the send.
    """
    attached = session.get(OutboxMessage, row.id)
    if not composers[row.kind](attached):
        attached.state = DROPPED
        session.commit()
        return False
    attached.kind = "email"  # composed once: a retry sends the same message
    for field in (
        "kind",
        "tag",
        "user_id",
        "sender",
        "recipients",
        "subject",
        "text_body",
        "html_body",
    ):
        setattr(row, field, getattr(attached, field))
    session.commit()
    return True


def suppress(session, row, claim):
    """Drop activity mail to an address that failed for good (see bounces); True if dropped."""
    if not bounces.suppressed(session, row):
        return False
    if settle(
        session,
        row.id,
        claim,
        state=DROPPED,
        lease_until=None,
        text_body="",
        html_body=None,
        last_error="suppressed: undeliverable address",
    ):
        audit.info("email.suppressed id=%s tag=%s user=%s", row.id, row.tag, row.user_id)
    else:
        warn_lease_lost(row.id)
    return True


def record_sent(session, rows, claim, tally):
    """Mark sent the rows this claim still holds, with their counters; how many."""
    if not rows:
        return 0
    settled = set(settle_sent(session, [row.id for row in rows], claim))
    metrics.add(session, tally)
    session.commit()
    for row in rows:
        if row.id in settled:
            audit.info("email.sent id=%s tag=%s user=%s", row.id, row.tag, row.user_id)
        else:
            warn_lease_lost(row.id)
    return len(rows)


def hold_back(session, row, claim, exc):
    """A server failure: the message is due again at once, unless its deadline passed."""
    now = clock.utcnow()
    expired = now > row.deadline_at
    tally = metrics.Tally()
    (tally.failed if expired else tally.retried)(row.tag)
    if settle(
        session,
        row.id,
        claim,
        commit=False,
        state=FAILED if expired else PENDING,
        next_attempt_at=now,
        lease_until=None,
        last_error=describe(exc),
    ):
        metrics.add(session, tally)
        if expired:
            log.error("Email %s failed for good: retry deadline passed", row.id)
    session.commit()


def record_failure(session, row, claim, exc, kind=None):
    """Reschedule the message, or fail it for good; returns 1 in the latter case, else 0."""
    kind = kind or classify(exc)
    now = clock.utcnow()
    attempts = row.attempts
    delay = retry_delay(attempts)
    retry_at = now + timedelta(seconds=delay)
    give_up = kind == PERMANENT or retry_at > row.deadline_at
    reason = describe(exc)
    recipients = ", ".join(mask_email(r) for r in row.recipient_list)
    tally = metrics.Tally()
    (tally.failed if give_up else tally.retried)(row.tag)
    marked = []
    if isinstance(exc, smtplib.SMTPRecipientsRefused):  # a 5xx about the mailbox: mark it
        marked = bounces.mark_refused_recipients(session, exc.recipients)
    if not settle(
        session,
        row.id,
        claim,
        commit=False,
        state=FAILED if give_up else PENDING,
        next_attempt_at=retry_at,
        lease_until=None,
        last_error=reason,
    ):
        session.commit()
        warn_lease_lost(row.id)
        return 0
    metrics.add(session, tally)
    session.commit()
    for address in marked:
        audit.info("email.undeliverable address=%s reason=rcpt", mask_email(address))
    if give_up:
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
    return int(give_up)


def warn_lease_lost(row_id):
    """Another worker owns the message now: say so, and let it record the outcome."""
    log.warning(
        "Email %s: the lease ran out before the outcome was recorded; "
        "the worker that claimed it again records its own",
        row_id,
    )
