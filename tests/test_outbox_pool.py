"""The adaptive pool: more connections while a backlog lasts, fewer when the server says so."""

import pytest
from test_outbox_circuit import shifted  # noqa: F401 (a fixture)
from test_outbox_delivery import outbox_rows, queue_emails
from test_outbox_workers import wait_until, worker_threads

from microblog.mail.pool import ConnectionLimit
from microblog.mail.workers import dispatcher

pytestmark = pytest.mark.settings(MAIL_WORKERS=2, MAIL_POLL_INTERVAL=0.05)


def test_a_burst_grows_the_pool_to_the_server_s_cap_and_loses_nothing(app, smtp):
    """Default MAIL_MAX_CONNECTIONS (10) against a server that admits 5 connections."""
    smtp.mailbox.max_connections = 5
    smtp.mailbox.delay = 0.01  # long enough for connections to overlap
    queue_emails(app, 200)

    messages = smtp.wait_for(200, timeout=60)
    ids = [message["Message-ID"] for message in messages]
    assert len(ids) == len(set(ids)) == 200  # nothing twice
    assert sorted(ids) == sorted(row.message_id for row in outbox_rows(app))  # nothing lost
    wait_until(lambda: {r.state for r in outbox_rows(app)} == {"sent"}, what="all rows sent")
    assert 2 < smtp.mailbox.peak <= 5  # grew past MAIL_WORKERS, never past the server's cap
    # Refused connections (if the pool tried a 6th) gave their messages back: none failed.
    assert all(row.last_error in (None, "SMTPConnectError 421") for row in outbox_rows(app))
    wait_until(lambda: len(worker_threads()) == 2, what="the extra threads to retire")
    assert not dispatcher(app).circuit.is_open


@pytest.mark.settings(MAIL_MAX_CONNECTIONS=3)
def test_the_pool_never_opens_more_than_mail_max_connections(app, smtp):
    smtp.mailbox.delay = 0.01
    queue_emails(app, 100)
    assert len(smtp.wait_for(100, timeout=60)) == 100
    assert smtp.mailbox.peak <= 3
    assert smtp.mailbox.refused == 0


@pytest.mark.settings(MAIL_WORKERS=0)
def test_mail_workers_zero_starts_no_thread(app, smtp):
    queue_emails(app, 1)
    dispatcher(app).start()
    assert worker_threads() == []
    assert outbox_rows(app)[0].state == "pending"


def test_a_throttled_limit_is_remembered_for_a_while_then_growth_is_tried_again(shifted):  # noqa: F811
    limit = ConnectionLimit(floor=2, ceiling=10, memory=300)
    for worker in "abcd":
        assert limit.admit(want_more=True)
        limit.connected(worker, True)
    assert limit.current() == 10
    assert limit.admit(want_more=True)  # "e" opens a 5th connection: refused with a 421
    assert limit.throttled("e")  # the others work: the server's cap for us is 4
    assert limit.current() == 4
    assert limit.leave("e", idle=False)  # so "e" retires
    assert not limit.admit(want_more=True)
    shifted(299)
    assert limit.current() == 4
    shifted(2)
    assert limit.current() == 10
    assert limit.admit(want_more=True)


def test_a_refusal_with_no_working_connection_is_an_outage_not_a_cap():
    limit = ConnectionLimit(floor=2, ceiling=10, memory=300)
    assert limit.admit(want_more=False)
    assert not limit.throttled("a")  # nothing of ours gets through: the circuit's business
    assert limit.current() == 10


def test_growth_waits_for_the_last_new_connection_to_be_accepted():
    limit = ConnectionLimit(floor=2, ceiling=10, memory=300)
    assert limit.admit(want_more=False) and limit.admit(want_more=False)  # the floor
    assert not limit.admit(want_more=False)  # no backlog, no growth
    assert limit.admit(want_more=True)  # "c"
    assert not limit.admit(want_more=True)  # until the server answers "c"
    limit.connected("c", True)
    assert limit.admit(want_more=True)  # "d"


def test_extra_threads_retire_when_idle_but_the_floor_stays():
    limit = ConnectionLimit(floor=2, ceiling=10, memory=300)
    for worker in "abcd":
        assert limit.admit(want_more=True)
        limit.connected(worker, True)
    assert limit.leave("c", idle=True)
    assert limit.leave("d", idle=True)
    assert not limit.leave("a", idle=True)
    assert not limit.leave("b", idle=True)
    assert limit.running == 2
