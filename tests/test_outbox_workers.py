"""The sender threads: requests never wait for SMTP, and nothing queued is lost.

Each app here runs its own small pool (MAIL_WORKERS=2), polling often so that
the tests need not wait; `close_app` stops the threads after every test.
"""

import logging
import threading
import time

import pytest
from flask import current_app
from test_outbox_delivery import outbox_rows, queue_emails

from conftest import build_app, close_app
from microblog.extensions import db
from microblog.mail import delivery
from microblog.mail.outbox import defer_email
from microblog.mail.workers import dispatcher
from smtp_server import SmtpServer

pytestmark = pytest.mark.settings(MAIL_WORKERS=2, MAIL_POLL_INTERVAL=0.05)


def wait_until(condition, timeout=5, what="the condition"):
    """Poll for something the worker threads are expected to do soon."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def worker_threads():
    return [t for t in threading.enumerate() if t.name.startswith("mail-worker")]


def test_a_request_does_not_wait_for_a_slow_mail_server(app, auth, make_user, smtp):
    make_user("susan")
    smtp.mailbox.delay = 1.0
    started = time.monotonic()
    response = auth.request_reset("susan@example.com")
    elapsed = time.monotonic() - started
    assert response.headers["Location"] == "/auth/login"
    assert elapsed < smtp.mailbox.delay / 3
    [message] = smtp.wait_for(1, timeout=5)  # the worker sends it meanwhile
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

    wait_until(lambda: outbox_rows(app)[0].attempts == 1, what="the first attempt")
    wait_until(lambda: outbox_rows(app)[0].last_error, what="the failure to be recorded")
    [row] = outbox_rows(app)
    assert (row.state, row.last_error) == ("pending", "SMTPConnectError 421")
    assert "/auth/reset_password/" in row.text_body  # composed, kept for the next try
    failures = [r for r in caplog.records if r.name == "microblog.mail"]
    assert [r.levelno for r in failures] == [logging.WARNING]
    assert "s***@example.com failed (attempt 1): SMTPConnectError 421" in failures[0].getMessage()
    assert "/auth/reset_password/" not in caplog.text
    assert "susan@example.com" not in caplog.text


class TestServerOutage:
    """The mail server is down when the request is made, and comes back later."""

    @pytest.fixture
    def smtp(self):
        server = SmtpServer()  # not started yet
        yield server
        server.stop()

    @pytest.mark.settings(MAIL_RETRY_BASE_DELAY=0.05, MAIL_RETRY_MAX_DELAY=0.2)
    def test_mail_queued_during_an_outage_goes_out_when_the_server_is_back(
        self, app, auth, make_user, smtp
    ):
        make_user("susan")
        assert auth.request_reset("susan@example.com").headers["Location"] == "/auth/login"
        wait_until(lambda: outbox_rows(app)[0].last_error, what="a refused connection")
        assert outbox_rows(app)[0].last_error == "ConnectionRefusedError"

        smtp.start()
        [message] = smtp.wait_for(1, timeout=5)
        assert message["To"] == "susan@example.com"
        wait_until(lambda: outbox_rows(app)[0].state == "sent", what="the row to be sent")
        assert outbox_rows(app)[0].attempts >= 2


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


def test_a_burst_of_200_emails_respects_the_server_connection_limit(app, smtp):
    smtp.mailbox.max_connections = 5
    threads_before = threading.active_count()
    peak_threads = threads_before

    queue_emails(app, 200, commit_each=True)  # 200 requests' worth of commits
    deadline = time.monotonic() + 20
    while len(smtp.messages) < 200 and time.monotonic() < deadline:
        peak_threads = max(peak_threads, threading.active_count())
        time.sleep(0.005)

    messages = smtp.wait_for(200, timeout=1)
    assert len({message["Message-ID"] for message in messages}) == 200
    assert smtp.mailbox.refused == 0
    assert smtp.mailbox.peak <= 2  # one connection per worker
    assert peak_threads <= threads_before + 2
    assert len(worker_threads()) == 2


def test_stop_finishes_the_messages_in_hand_and_claims_no_more(app, smtp):
    smtp.mailbox.delay = 0.4
    queue_emails(app, 4)
    wait_until(
        lambda: [row.state for row in outbox_rows(app)].count("sending") == 2,
        what="both workers to be sending",
    )
    in_hand = {row.id for row in outbox_rows(app) if row.state == "sending"}

    started = time.monotonic()
    dispatcher(app).stop(timeout=5)
    assert time.monotonic() - started < 1
    assert not any(thread.is_alive() for thread in dispatcher(app).threads)
    rows = outbox_rows(app)
    assert {row.id for row in rows if row.state == "sent"} == in_hand
    assert [(row.state, row.attempts) for row in rows if row.id not in in_hand] == [
        ("pending", 0)
    ] * 2
    assert len(smtp.messages) == 2


def test_stop_gives_up_waiting_within_its_timeout_in_all(app, smtp, caplog):
    """gunicorn's graceful timeout covers the whole pool, not each thread in turn."""
    smtp.mailbox.delay = 0.8
    queue_emails(app, 2)
    wait_until(
        lambda: [row.state for row in outbox_rows(app)].count("sending") == 2,
        what="both workers to be sending",
    )
    started = time.monotonic()
    dispatcher(app).stop(timeout=0.25)
    assert time.monotonic() - started < 0.45
    assert "Mail workers still busy at shutdown: mail-worker-" in caplog.text
