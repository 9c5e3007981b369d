"""The sender threads: requests never wait for SMTP, and nothing queued is lost.

Each app here runs its own small pool (MAIL_WORKERS=2), polling often so that
the tests need not wait; `close_app` stops the threads after every test.
"""

import logging
import threading

import pytest
from flask import current_app

from microblog.extensions import db
from microblog.mail import delivery
from microblog.mail.outbox import defer_email
from microblog.mail.workers import dispatcher
from support.app import build_app, close_app
from support.auth import reset_link
from support.outbox import outbox_rows, queue_emails
from support.smtp import SmtpServer
from support.workers import records_of, wait_until

pytestmark = pytest.mark.settings(MAIL_WORKERS=2, MAIL_POLL_INTERVAL=0.05)


def test_a_request_does_not_wait_for_a_slow_mail_server(app, auth, make_user, smtp):
    make_user("susan")
    smtp.mailbox.gate = threading.Event()  # the server holds every message until told
    try:
        response = auth.request_reset("susan@example.com")
        assert response.headers["Location"] == "/auth/login"
        assert smtp.mailbox.receiving.wait(5), "the worker never started the send"
        assert smtp.messages == []  # the request answered while the send was in progress
        [row] = outbox_rows(app)
        assert row.state == "sending"
    finally:
        smtp.mailbox.gate.set()
    [message] = smtp.wait_for(1, timeout=5)
    assert message["To"] == "susan@example.com"


def test_the_workers_run_with_the_real_app_object(app, monkeypatch):
    seen = []
    done = threading.Event()

    def probe(message):
        seen.append((threading.current_thread().name, current_app._get_current_object()))
        done.set()
        return False  # nothing to send

    monkeypatch.setitem(delivery.composers, "probe", probe)
    with app.test_request_context():  # queued where only the proxy is at hand
        defer_email("probe", "nobody@example.com")
        db.session.commit()
    assert done.wait(5), "no worker ran the composer"
    [(thread, worker_app)] = seen
    assert thread.startswith("mail-worker-")
    assert worker_app is app
    assert type(worker_app) is type(app)  # the object itself: a LocalProxy has its own type
    assert dispatcher(app).app is app


def test_a_failing_mail_server_leaves_the_request_alone(app, auth, make_user, smtp, caplog):
    smtp.mailbox.max_connections = 0  # "421 Too many connections" to everyone
    make_user("susan")
    response = auth.request_reset("susan@example.com")
    assert response.headers["Location"] == "/auth/login"

    wait_until(lambda: records_of(caplog, "Mail server unavailable"), what="the log record")
    wait_until(lambda: dispatcher(app).circuit.is_open, what="the circuit to open")
    wait_until(lambda: outbox_rows(app)[0].state == "pending", what="the email given back")
    [row] = outbox_rows(app)
    assert (row.state, row.attempts) == ("pending", 0)  # the server's failure, not the email's
    [record] = records_of(caplog, "Mail server unavailable")
    assert record.name == "microblog.mail"
    assert record.levelno == logging.WARNING
    assert "(SMTPConnectError 421): holding mail back" in record.getMessage()
    assert "/auth/reset_password/" not in caplog.text
    assert "susan@example.com" not in caplog.text


class TestServerOutage:
    """The mail server is down when the request is made, and comes back later."""

    @pytest.fixture
    def smtp(self):
        server = SmtpServer()  # not started yet
        yield server
        server.stop()

    @pytest.mark.settings(MAIL_PROBE_MIN_DELAY=0.05)
    def test_mail_queued_during_an_outage_goes_out_when_the_server_is_back(
        self, app, client, auth, make_user, smtp, caplog
    ):
        make_user("susan")
        assert auth.request_reset("susan@example.com").headers["Location"] == "/auth/login"
        wait_until(lambda: dispatcher(app).circuit.is_open, what="a refused connection")
        wait_until(lambda: outbox_rows(app)[0].state == "pending", what="the email given back")

        smtp.start()
        [message] = smtp.wait_for(1, timeout=5)
        assert message["To"] == "susan@example.com"
        wait_until(lambda: outbox_rows(app)[0].state == "sent", what="the row to be sent")
        assert outbox_rows(app)[0].attempts == 1  # the send; the outage charged nothing
        # The link composed before the outage still works once it arrives.
        opened = client.get(reset_link(message))
        assert opened.headers["Location"] == "/auth/reset_password"
        form = client.get("/auth/reset_password")
        assert form.status_code == 200
        assert 'name="password2"' in form.text
        wait_until(lambda: records_of(caplog, "Mail server back after"), what="the log record")


@pytest.mark.settings(MAIL_WORKERS=0)
def test_a_restarted_app_sends_what_was_left_pending(app, database_url, smtp, auth, make_user):
    make_user("susan")
    auth.request_reset("susan@example.com")  # queued, then the process stops
    assert outbox_rows(app)[0].state == "pending"

    restarted = build_app(database_url, smtp, MAIL_WORKERS=2, MAIL_POLL_INTERVAL=0.05)
    try:
        restarted.test_client().get("/auth/login")  # its first request, no new mail
        [message] = smtp.wait_for(1, timeout=5)
        assert message["To"] == "susan@example.com"
    finally:
        close_app(restarted, drop=False)


def test_stop_finishes_the_message_in_hand_and_gives_back_the_rest(app, smtp):
    smtp.mailbox.gate = threading.Event()
    queue_emails(app, 12)  # more than the workers can hold at once: some are never in hand
    assert smtp.mailbox.receiving.wait(5), "no send started"

    stopping = threading.Thread(target=dispatcher(app).stop, kwargs={"timeout": 10})
    stopping.start()
    wait_until(dispatcher(app).stopping.is_set, what="stop() to begin")
    smtp.mailbox.gate.set()  # the message in hand is accepted
    stopping.join(10)
    assert not stopping.is_alive()
    assert not any(thread.is_alive() for thread in dispatcher(app).threads)
    rows = outbox_rows(app)
    sent = [row for row in rows if row.state == "sent"]
    # Each worker finishes the message it had in hand (both may hold one: a claim takes a
    # share of what is due) and gives the rest back untried.
    assert 1 <= len(sent) <= len(dispatcher(app).threads)
    assert all(row.attempts == 1 for row in sent)
    assert {(row.state, row.attempts) for row in rows if row not in sent} == {("pending", 0)}
    assert sorted(m["Message-ID"] for m in smtp.messages) == sorted(r.message_id for r in sent)


def test_stop_gives_up_waiting_within_its_timeout(app, smtp, caplog):
    """gunicorn's graceful timeout is the limit: stop() returns even if a send hangs."""
    smtp.mailbox.gate = threading.Event()  # never released during stop()
    try:
        queue_emails(app, 1)
        assert smtp.mailbox.receiving.wait(5), "no send started"
        dispatcher(app).stop(timeout=0.25)
        assert any(thread.is_alive() for thread in dispatcher(app).threads)
        assert "Mail workers still busy at shutdown: mail-worker-" in caplog.text
    finally:
        smtp.mailbox.gate.set()
