"""The circuit: a server outage holds the mail back, and a probe that gets through sends it all.

The apps here run their worker threads and probe often (MAIL_PROBE_MIN_DELAY)
so that the tests need not wait; the servers are real (aiosmtpd, or a raw
socket that answers 421 to everyone).
"""

import logging

import pytest

from microblog import clock
from microblog.mail.circuit import Circuit
from microblog.mail.workers import dispatcher
from support.app import build_app, close_app
from support.outbox import outbox_rows, queue_emails
from support.smtp import RawServer, SmtpServer
from support.workers import records_of, wait_until

pytestmark = pytest.mark.settings(
    MAIL_WORKERS=2, MAIL_POLL_INTERVAL=0.05, MAIL_PROBE_MIN_DELAY=0.05, MAIL_PROBE_MAX_DELAY=0.4
)


@pytest.fixture
def down():
    """An SMTP server that is not running yet: connections to its port are refused."""
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def refusing():
    """A server that answers every connection "421 Service not available" and hangs up."""
    server = RawServer(b"421 4.3.2 Service not available, closing channel\r\n")
    yield server
    server.close()


@pytest.fixture
def cut_off(database_url, down):
    """An app whose SMTP server is down (until the test starts it)."""
    app = build_app(
        database_url,
        down,
        MAIL_WORKERS=2,
        MAIL_POLL_INTERVAL=0.05,
        MAIL_PROBE_MIN_DELAY=0.05,
        MAIL_PROBE_MAX_DELAY=0.4,
        MAIL_RETRY_DEADLINE=3600,
    )
    yield app
    close_app(app)


def held_back(app):
    """Wait until the circuit is open and no message is in a worker's hands."""
    wait_until(lambda: dispatcher(app).circuit.is_open, what="the circuit to open")
    wait_until(lambda: {r.state for r in outbox_rows(app)} == {"pending"}, what="held back")


def test_held_back_mail_leaves_at_once_when_a_probe_gets_through(cut_off, down, caplog):
    queue_emails(cut_off, 3)
    held_back(cut_off)
    rows = outbox_rows(cut_off)
    assert all(row.next_attempt_at <= clock.utcnow() for row in rows)  # due, not backed off
    assert sum(row.attempts for row in rows) == 0  # refused before any claim: none charged

    down.start()
    messages = down.wait_for(3, timeout=10)
    assert len({m["Message-ID"] for m in messages}) == 3
    wait_until(lambda: {r.state for r in outbox_rows(cut_off)} == {"sent"}, what="rows sent")
    assert [row.attempts for row in outbox_rows(cut_off)] == [1, 1, 1]  # no retries wasted
    wait_until(lambda: records_of(caplog, "Mail server back after"), what="the log record")


def test_while_the_circuit_is_open_only_probes_reach_the_server(app, database_url, refusing):
    server = refusing
    broken = build_app(
        database_url,
        server,
        MAIL_WORKERS=2,
        MAIL_POLL_INTERVAL=0.05,
        MAIL_PROBE_MIN_DELAY=0.01,
        MAIL_PROBE_MAX_DELAY=0.02,
    )
    try:
        queue_emails(broken, 4)
        held_back(broken)
        attempts = [row.attempts for row in outbox_rows(app)]
        tries = len(server.connections)
        wait_until(lambda: len(server.connections) >= tries + 5, what="five probes")
        rows = outbox_rows(app)
        assert [row.attempts for row in rows] == attempts  # probes, not messages
        assert {row.state for row in rows} == {"pending"}
    finally:
        close_app(broken, drop=False)


def test_mail_held_back_by_one_process_is_sent_by_another_that_gets_through(
    app, database_url, refusing, smtp
):
    """The held-back messages stay due: any process whose server answers sends them."""
    server = refusing
    cut_off = build_app(database_url, server, MAIL_WORKERS=2, MAIL_POLL_INTERVAL=0.05)
    try:
        queue_emails(cut_off, 3)
        wait_until(lambda: dispatcher(cut_off).circuit.is_open, what="the circuit to open")
        assert len(smtp.messages) == 0
        dispatcher(app).start()  # the other process, whose server answers
        assert len(smtp.wait_for(3)) == 3
        wait_until(lambda: {r.state for r in outbox_rows(app)} == {"sent"}, what="rows sent")
    finally:
        close_app(cut_off, drop=False)


def test_a_long_outage_still_fails_messages_past_their_deadline(cut_off, shifted, caplog):
    queue_emails(cut_off, 2)
    held_back(cut_off)
    shifted(3601)  # the server stays down past the deadline (MAIL_RETRY_DEADLINE)
    # The log line comes after the commit: wait for it, not for the rows (they come first).
    wait_until(lambda: records_of(caplog, "past their retry deadline"), what="the log record")
    assert {r.state for r in outbox_rows(cut_off)} == {"failed"}
    [record] = records_of(caplog, "past their retry deadline")
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith("2 email(s) failed for good")


def test_after_a_ten_minute_outage_the_mail_leaves_as_after_a_short_one(cut_off, down, shifted):
    queue_emails(cut_off, 2)
    wait_until(lambda: dispatcher(cut_off).circuit.is_open, what="the circuit to open")
    for _ in range(20):  # ten minutes of probes, 30 s apart
        shifted(30)
    down.start()
    assert len(down.wait_for(2, timeout=10)) == 2
    wait_until(lambda: {r.state for r in outbox_rows(cut_off)} == {"sent"}, what="rows sent")


def test_probes_back_off_from_a_refusing_server_but_not_from_a_silent_port(shifted):
    circuit = Circuit(min_delay=1, max_delay=30)

    def delays(answered, count):
        seen = []
        for _ in range(count):
            seen.append(round(circuit.seconds_to_probe()))
            shifted(circuit.seconds_to_probe())
            assert circuit.take_probe()
            assert not circuit.take_probe()  # one prober at a time
            circuit.probe_failed(answered)
        return seen

    assert circuit.trip("SMTPConnectError 421", answered=True)
    assert not circuit.trip("again", answered=True)  # already open
    assert delays(True, 7) == [1, 2, 4, 8, 16, 30, 30]
    circuit.close()
    assert not circuit.is_open
    circuit.trip("ConnectionRefusedError", answered=False)
    assert delays(False, 4) == [30, 1, 1, 1]  # still backing off once, then every second
    circuit.close()
    circuit.delivered()  # a message went out: the next outage starts from scratch
    circuit.trip("SMTPConnectError 421", answered=True)
    assert round(circuit.seconds_to_probe()) == 1
