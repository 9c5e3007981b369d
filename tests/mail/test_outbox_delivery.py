"""Delivery from the outbox: one round of `deliver_due`, as a worker or cron runs it.

Everything goes to a real aiosmtpd server (or a raw socket that misbehaves
the way broken servers do) and is read back from it.
"""

import logging
import smtplib
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.extensions import db
from microblog.mail import send_email
from microblog.mail.delivery import (
    MESSAGE,
    PERMANENT,
    SERVER,
    classify,
    lease_seconds,
    record_failure,
)
from microblog.mail.outbox import OutboxMessage, claim_next
from support.app import build_app, close_app, delivering
from support.outbox import outbox_rows, queue_emails
from support.smtp import RawServer


def message_ids(messages):
    return [message["Message-ID"] for message in messages]


def in_threads(*functions, timeout=20):
    """Run the functions at the same moment, each in its own thread; their results."""
    start = threading.Barrier(len(functions))
    results = [None] * len(functions)

    def run(index, function):
        start.wait()
        results[index] = function()

    threads = [
        threading.Thread(target=run, args=item, daemon=True) for item in enumerate(functions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a delivery never finished"
    return results


@pytest.fixture
def other_app(database_url, smtp):
    """A second app instance on the same database: another process, or another host."""
    apps = []

    def make(**overrides):
        apps.append(build_app(database_url, smtp, **overrides))
        return apps[-1]

    yield make
    for app in apps:
        close_app(app, drop=False)


@pytest.fixture
def raw_server():
    servers = []

    def make(greeting=None):
        servers.append(RawServer(greeting))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_an_email_is_a_row_until_it_is_delivered(app, smtp, deliver):
    queue_emails(app, 1, recipients=["reader@example.com"])
    [row] = outbox_rows(app)
    assert (row.state, row.attempts) == ("pending", 0)
    assert smtp.messages == []

    assert deliver() == 1
    [message] = smtp.wait_for(1)
    assert message["To"] == "reader@example.com"
    assert message["Subject"] == "Message 0"
    assert message["Message-ID"] == row.message_id
    [row] = outbox_rows(app)
    assert (row.state, row.attempts) == ("sent", 1)
    assert row.sent_at is not None


def test_a_rolled_back_transaction_sends_nothing(app, smtp, deliver):
    with app.app_context():
        send_email("Never", None, ["reader@example.com"], "Never sent", None)
        db.session.rollback()
    assert outbox_rows(app) == []
    assert deliver() == 0
    assert smtp.messages == []


def test_a_single_address_is_one_recipient(app, smtp, deliver):
    with app.app_context():
        send_email("Hello", None, "reader@example.com", "Hello", None)
        db.session.commit()
    deliver()
    assert smtp.wait_for(1)[0].envelope_recipients == ["reader@example.com"]


def test_a_delivered_body_is_not_kept(app, deliver):
    queue_emails(app, 1)
    deliver()
    [row] = outbox_rows(app)
    assert (row.state, row.text_body, row.html_body) == ("sent", "", None)


def test_the_messages_of_one_round_share_one_connection(app, smtp, deliver):
    queue_emails(app, 5)
    assert deliver() == 5
    assert len(smtp.wait_for(5)) == 5
    assert smtp.mailbox.connections == 1


def test_a_rejected_recipient_fails_at_once_and_the_others_still_go(app, smtp, deliver, caplog):
    smtp.mailbox.rejected_recipients.add("gone@example.com")
    queue_emails(app, 1, recipients=["gone@example.com"])
    queue_emails(app, 1, recipients=["reader@example.com"])

    assert deliver() == 2
    [message] = smtp.wait_for(1)
    assert message["To"] == "reader@example.com"
    rejected, delivered = outbox_rows(app)
    assert (rejected.state, rejected.attempts) == ("failed", 1)
    assert rejected.last_error == "SMTPRecipientsRefused [550]"
    assert delivered.state == "sent"
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.name == "microblog.mail"
    assert "failed for good after 1 attempt(s): SMTPRecipientsRefused [550]" in record.getMessage()
    assert "g***@example.com" in record.getMessage()
    assert "gone@example.com" not in caplog.text
    assert "Body of message" not in caplog.text


def test_a_refused_connection_holds_the_mail_back_due_and_the_round_stops(
    app, smtp, deliver, caplog
):
    """A server failure says nothing about the messages: none is claimed, tried or backed off.

    The connection comes before the claim, so a refused sender holds no mail
    that another sender (another process) could be sending meanwhile.
    """
    smtp.mailbox.max_connections = 0  # every connection gets "421 Too many connections"
    queue_emails(app, 3)

    assert deliver() == 0
    rows = outbox_rows(app)
    assert [(row.state, row.attempts, row.last_error) for row in rows] == [("pending", 0, None)] * 3
    assert all(row.next_attempt_at <= clock.utcnow() for row in rows)  # due when the server is
    assert smtp.mailbox.refused == 1
    [record] = [r for r in caplog.records if r.name == "microblog.mail"]
    assert record.levelno == logging.WARNING
    assert "Mail server unavailable (SMTPConnectError 421)" in record.getMessage()
    assert "Body of message" not in caplog.text

    smtp.mailbox.max_connections = None  # back
    assert deliver() == 3
    assert len(smtp.wait_for(3)) == 3


def test_a_recipient_answered_try_later_is_retried_alone_and_the_others_go(
    app, smtp, deliver, caplog, monkeypatch
):
    smtp.mailbox.deferred_recipients.add("busy@example.com")
    queue_emails(app, 1, recipients=["busy@example.com"])
    queue_emails(app, 2)
    now = clock.utcnow()
    monkeypatch.setattr(clock, "utcnow", lambda: now)

    assert deliver() == 2
    assert len(smtp.wait_for(2)) == 2
    deferred, *delivered = outbox_rows(app)
    assert (deferred.state, deferred.attempts) == ("pending", 1)
    assert deferred.last_error == "SMTPRecipientsRefused [450]"
    step = timedelta(seconds=app.config["MAIL_RETRY_BASE_DELAY"] * 2)  # after one attempt
    assert now + step / 2 <= deferred.next_attempt_at <= now + step
    assert [row.state for row in delivered] == ["sent", "sent"]
    assert "b***@example.com failed (attempt 1): SMTPRecipientsRefused [450]" in caplog.text


def test_a_failed_send_is_never_recorded_as_sent(app, smtp, deliver):
    """Sends are settled in batches: a failure in the middle must not join the sent ones."""
    smtp.mailbox.rejected_recipients.add("gone@example.com")
    smtp.mailbox.deferred_recipients.add("busy@example.com")
    queue_emails(app, 1)
    queue_emails(app, 1, recipients=["gone@example.com"])
    queue_emails(app, 1)
    queue_emails(app, 1, recipients=["busy@example.com"])
    queue_emails(app, 1)

    deliver()
    arrived = {message["Message-ID"] for message in smtp.wait_for(3)}
    rows = outbox_rows(app)
    assert {row.message_id for row in rows if row.state == "sent"} == arrived
    assert [row.state for row in rows] == ["sent", "failed", "sent", "pending", "sent"]
    assert rows[1].sent_at is None and rows[3].sent_at is None
    assert rows[3].text_body == "Body of message 0"  # kept for the retry


def test_an_outage_past_the_deadline_fails_the_mail_even_without_a_claim(
    app, smtp, deliver, monkeypatch, caplog
):
    """`flask mail send-pending` from cron, the server down for longer than MAIL_RETRY_DEADLINE."""
    smtp.mailbox.max_connections = 0
    queue_emails(app, 2)
    assert deliver() == 0
    assert {row.state for row in outbox_rows(app)} == {"pending"}  # within the deadline

    later = clock.utcnow() + timedelta(seconds=app.config["MAIL_RETRY_DEADLINE"] + 1)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    assert deliver() == 0
    assert {row.state for row in outbox_rows(app)} == {"failed"}
    assert any("2 email(s) failed for good" in r.getMessage() for r in caplog.records)


def test_a_5xx_greeting_is_the_server_s_problem_not_the_message_s(app, database_url, raw_server):
    """Taken as permanent, one "554 no service" would fail every queued message."""
    server = raw_server(b"554 5.3.2 Not accepting mail today\r\n")
    broken = build_app(database_url, server, MAIL_WORKERS=0)
    try:
        queue_emails(broken, 2)
        assert delivering(broken)() == 0
    finally:
        close_app(broken, drop=False)
    rows = outbox_rows(app)
    assert [(row.state, row.attempts) for row in rows] == [("pending", 0)] * 2


def test_a_server_that_never_answers_costs_one_timeout(app, database_url, raw_server):
    """Flask-Mail connects without a timeout; the worker must not wait forever."""
    server = raw_server(greeting=None)
    silent = build_app(database_url, server, MAIL_WORKERS=0, MAIL_TIMEOUT=0.3)
    try:
        queue_emails(silent, 1)
        [settled] = in_threads(delivering(silent), timeout=10)  # returns: it gave up
    finally:
        close_app(silent, drop=False)
    assert settled == 0
    assert server.accepted.acquire(timeout=5)  # the accepting thread may lag the client
    assert len(server.connections) == 1  # one try, then the mail waits for the server
    [row] = outbox_rows(app)
    assert (row.state, row.attempts) == ("pending", 0)


@pytest.mark.settings(MAIL_RETRY_BASE_DELAY=10, MAIL_RETRY_MAX_DELAY=80, MAIL_RETRY_DEADLINE=400)
def test_backoff_grows_until_the_deadline_fails_the_message(
    app, smtp, deliver, monkeypatch, caplog
):
    smtp.mailbox.deferred_recipients.add("busy@example.com")
    queue_emails(app, 1, recipients=["busy@example.com"])
    [row] = outbox_rows(app)
    now = clock.utcnow()
    monkeypatch.setattr(clock, "utcnow", lambda: now)

    delays = []
    while row.state == "pending" and len(delays) < 20:
        deliver()
        [row] = outbox_rows(app)
        delays.append((row.next_attempt_at - now).total_seconds())
        now = row.next_attempt_at  # time passes until the next try is due

    ceilings = [min(80, 10 * 2**attempt) for attempt in range(1, len(delays) + 1)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    assert delays[1] > delays[0] and delays[2] > delays[1]  # ceilings 20, 40, 80: no overlap
    assert (row.state, row.attempts, row.last_error) == (
        "failed",
        len(delays),
        "SMTPRecipientsRefused [450]",
    )
    assert row.next_attempt_at > row.deadline_at  # given up because the next try was too late
    assert smtp.mailbox.connections == len(delays)
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert f"failed for good after {len(delays)} attempt(s)" in record.getMessage()


def test_a_message_claimed_by_a_dead_worker_goes_once_its_lease_expires(
    app, smtp, deliver, monkeypatch
):
    queue_emails(app, 1)
    with app.app_context():
        claimed = claim_next(db.session, lease_seconds(app.config))  # ...and the process dies
        lease_until = claimed.lease_until
    assert deliver() == 0  # still leased: no one else touches it
    assert outbox_rows(app)[0].state == "sending"

    later = lease_until + timedelta(seconds=1)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    assert deliver() == 1
    assert len(smtp.wait_for(1)) == 1
    [row] = outbox_rows(app)
    assert (row.state, row.attempts) == ("sent", 2)


def test_a_worker_whose_lease_ran_out_records_nothing(app, smtp, deliver, monkeypatch, caplog):
    queue_emails(app, 1)
    with app.app_context():
        stale = claim_next(db.session, lease_seconds(app.config))
        stale_claim, later = stale.claim_token, stale.lease_until + timedelta(seconds=1)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    assert deliver() == 1  # another worker takes the message over and sends it

    with app.app_context():  # the first worker finally gives up on its own attempt
        row = db.session.get(OutboxMessage, stale.id)
        record_failure(db.session, row, stale_claim, ConnectionResetError())
    [row] = outbox_rows(app)
    assert (row.state, row.last_error) == ("sent", None)
    assert "the lease ran out before the outcome was recorded" in caplog.text


@pytest.mark.settings(MAIL_LEASE_SECONDS=0)
def test_a_slow_send_keeps_its_lease(app, smtp, other_app):
    """The lease outlasts MAIL_TIMEOUT, whatever MAIL_LEASE_SECONDS says."""
    smtp.mailbox.gate = threading.Event()  # the first send stays in progress
    second = other_app(MAIL_LEASE_SECONDS=0)
    queue_emails(app, 1)

    results = {}
    sending = threading.Thread(target=lambda: results.update(first=delivering(app)()))
    sending.start()
    try:
        assert smtp.mailbox.receiving.wait(5), "the first worker never started the send"
        assert delivering(second)() == 0  # contended: the lease is held mid-send
    finally:
        smtp.mailbox.gate.set()
    sending.join(10)
    assert results == {"first": 1}
    assert len(smtp.wait_for(1)) == 1
    assert len(smtp.messages) == 1  # both deliveries returned: a duplicate would be here


def test_two_app_instances_on_one_database_send_each_message_once(app, smtp, other_app):
    """Four senders, two per instance, each holding a claimed batch at the same moment."""
    smtp.mailbox.gate = threading.Event()  # each sender stops at its batch's first message
    second = other_app()
    queue_emails(app, 40)
    batch = app.config["MAIL_BATCH_SIZE"]

    def open_the_gate_once_all_four_hold_a_batch():
        deadline = time.monotonic() + 10
        try:
            while sum(row.state == "sending" for row in outbox_rows(app)) < 4 * batch:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
            return True
        finally:
            smtp.mailbox.gate.set()

    *settled, all_held = in_threads(
        delivering(app),
        delivering(second),
        delivering(app),
        delivering(second),
        open_the_gate_once_all_four_hold_a_batch,
    )
    assert all_held, "the four senders never held a batch each"
    assert sum(settled) == 40
    assert min(settled) >= batch  # each sender settled at least the batch it held
    ids = message_ids(smtp.wait_for(40))
    assert sorted(ids) == sorted(row.message_id for row in outbox_rows(app))
    assert len(set(ids)) == 40
    assert {row.state for row in outbox_rows(app)} == {"sent"}


@pytest.mark.settings(MAIL_SERVER=None)
def test_without_a_mail_server_the_whole_email_goes_to_the_log(app, deliver, caplog):
    caplog.set_level(logging.INFO, logger="microblog.mail")
    queue_emails(app, 1, recipients=["reader@example.com"])
    assert deliver() == 1
    [record] = [r for r in caplog.records if r.name == "microblog.mail"]
    text = record.getMessage()
    assert "MAIL_SERVER is unset" in text
    assert "From: Microblog <no-reply@example.com>" in text
    assert "To: reader@example.com" in text
    assert "Subject: Message 0" in text
    assert text.endswith("Body of message 0")
    assert outbox_rows(app)[0].state == "sent"


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (ConnectionRefusedError(), SERVER),
        (TimeoutError(), SERVER),
        (smtplib.SMTPServerDisconnected("gone"), SERVER),
        (smtplib.SMTPConnectError(421, b"too many connections"), SERVER),
        (smtplib.SMTPConnectError(554, b"no service"), SERVER),
        (smtplib.SMTPHeloError(450, b"later"), SERVER),
        (smtplib.SMTPAuthenticationError(454, b"temporary auth failure"), SERVER),
        (smtplib.SMTPSenderRefused(451, b"rate limited", "a@example.com"), SERVER),
        (smtplib.SMTPSenderRefused(530, b"authentication required", "a@example.com"), SERVER),
        (smtplib.SMTPSenderRefused(553, b"sender rejected", "a@example.com"), PERMANENT),
        (smtplib.SMTPRecipientsRefused({"b@example.com": (421, b"closing")}), SERVER),
        (smtplib.SMTPRecipientsRefused({"b@example.com": (450, b"greylisted")}), MESSAGE),
        (smtplib.SMTPRecipientsRefused({"b@example.com": (550, b"no such user")}), PERMANENT),
        (smtplib.SMTPDataError(421, b"closing"), SERVER),
        (smtplib.SMTPDataError(451, b"try later"), MESSAGE),
        (smtplib.SMTPDataError(554, b"spam"), PERMANENT),
        (sa.exc.OperationalError("SELECT 1", {}, Exception("database is locked")), MESSAGE),
        (ValueError("a composer's bug"), PERMANENT),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value,
)
def test_failures_are_told_apart_by_what_they_say_about_the_server(failure, kind):
    """The server's failures open the circuit; a message's own are retried alone."""
    assert classify(failure) == kind
