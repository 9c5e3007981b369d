"""The adaptive pool: more connections while a backlog lasts, fewer when the server says so."""

import smtplib
import threading

import pytest

from microblog.extensions import db
from microblog.mail.delivery import claim_size
from microblog.mail.pool import ConnectionLimit
from microblog.mail.workers import dispatcher
from support.outbox import outbox_rows, queue_emails
from support.workers import wait_until, worker_threads

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


def test_the_pool_grows_at_the_pace_of_the_server_s_answers_not_of_the_batches(app, smtp):
    """While the server holds every message, no batch ends: only accepted connections add more."""
    smtp.mailbox.max_connections = 5
    smtp.mailbox.gate = threading.Event()
    limit = dispatcher(app).limit
    try:
        queue_emails(app, 100)
        wait_until(lambda: limit.found is not None, what="a 6th connection to be refused")
        assert len(limit.working) == 5  # 2, then one more per accepted connection, up to the cap
        assert smtp.mailbox.refused == 1
    finally:
        smtp.mailbox.gate.set()
    messages = smtp.wait_for(100, timeout=60)
    assert len({message["Message-ID"] for message in messages}) == 100  # nothing twice


def test_a_cap_left_by_another_client_grows_back_once_it_lets_go(app, smtp, shifted):
    """Another process holds 3 of the server's 5 connections; then it stops sending."""
    smtp.mailbox.max_connections = 5
    smtp.mailbox.delay = 0.02
    others = [smtplib.SMTP(smtp.host, smtp.port) for _ in range(3)]
    limit = dispatcher(app).limit
    queue_emails(app, 300)
    wait_until(lambda: limit.found is not None, what="the cap to be found")
    assert limit.current() == 2
    for other in others:
        other.quit()
    wait_until(lambda: smtp.mailbox.active <= 2, what="the server to see them go")
    shifted(1.01)  # MAIL_PROBE_MIN_DELAY later, growth is tried again
    wait_until(lambda: len(limit.working) == 5, what="the pool to use the freed connections")
    messages = smtp.wait_for(300, timeout=60)
    ids = [message["Message-ID"] for message in messages]
    assert len(ids) == len(set(ids)) == 300
    wait_until(lambda: {r.state for r in outbox_rows(app)} == {"sent"}, what="all rows sent")


@pytest.mark.settings(MAIL_WORKERS=0)  # nothing sends them while the test counts
def test_the_last_messages_of_a_burst_are_shared_among_the_senders(app):
    queue_emails(app, 30)
    with app.app_context():
        assert claim_size(db.session, 5, 1) == 5  # one sender takes a whole batch
        assert claim_size(db.session, 5, 3) == 5  # a backlog: full batches
        assert claim_size(db.session, 5, 4) == 4  # 30 due for 4 senders: half a share, 4
        assert claim_size(db.session, 5, 10) == 2
        assert claim_size(db.session, 5, 30) == 1


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


def test_a_cap_found_is_kept_for_a_back_off_that_doubles_while_the_server_refuses(shifted):
    limit = ConnectionLimit(floor=2, ceiling=10, memory=300, retry=1)
    for worker in "abcd":
        assert limit.admit(worker, want_more=True)
        limit.connected(worker, True)
    assert limit.current() == 10
    assert limit.admit("e", want_more=True)  # "e" opens a 5th connection: refused with a 421
    assert limit.throttled("e")  # the others work: the server's cap for us is 4; "e" retires
    assert (limit.current(), limit.running) == (4, 4)
    assert not limit.admit("f", want_more=True)
    shifted(1.01)  # growth is tried again after `retry`...
    assert limit.current() == 10
    assert limit.admit("f", want_more=True)
    assert limit.throttled("f")  # ...refused again: kept twice as long
    shifted(1.99)
    assert limit.current() == 4
    shifted(0.02)
    assert limit.current() == 10


def test_the_back_off_starts_afresh_once_the_server_accepts_one_more(shifted):
    """The cap was what another process left us: when it stops, ours grows back soon."""
    limit = ConnectionLimit(floor=2, ceiling=10, memory=300, retry=1)
    for worker in "abc":
        assert limit.admit(worker, want_more=True)
        limit.connected(worker, True)
    for attempt, wait in (("d", 1.01), ("e", 2.01)):
        assert limit.admit(attempt, want_more=True)
        assert limit.throttled(attempt)
        shifted(wait)
    assert limit.admit("f", want_more=True)
    assert limit.connected("f", True)  # the other process let go: a 4th connection works
    assert limit.admit("g", want_more=True)
    assert limit.throttled("g")
    shifted(1.01)  # back to `retry`, not 4 s
    assert limit.current() == 10


def test_the_back_off_never_exceeds_mail_throttle_memory(shifted):
    limit = ConnectionLimit(floor=1, ceiling=10, memory=3, retry=1)
    assert limit.admit("a", want_more=False)
    limit.connected("a", True)
    for attempt, kept in (("b", 1), ("c", 2), ("d", 3), ("e", 3)):  # 1, 2, 4 would be 3
        assert limit.admit(attempt, want_more=True)
        assert limit.throttled(attempt)
        shifted(kept - 0.01)
        assert limit.current() == 1
        shifted(0.02)
        assert limit.current() == 10


def test_a_refusal_with_no_working_connection_is_an_outage_not_a_cap():
    limit = ConnectionLimit(floor=2, ceiling=10, memory=300, retry=1)
    assert limit.admit("a", want_more=False)
    assert not limit.throttled("a")  # nothing of ours gets through: the circuit's business
    assert limit.current() == 10
    assert limit.running == 1  # "a" stays, to probe under the circuit


def test_growth_waits_for_the_server_to_answer_the_last_new_connection():
    limit = ConnectionLimit(floor=2, ceiling=10, memory=300, retry=1)
    assert limit.admit("a", want_more=False) and limit.admit("b", want_more=False)  # the floor
    assert not limit.admit("x", want_more=False)  # no backlog, no growth
    assert limit.admit("c", want_more=True)
    assert not limit.admit("x", want_more=True)  # until the server answers "c"
    assert not limit.connected("a", True)  # an older connection says nothing about "c"
    assert not limit.admit("x", want_more=True)
    assert limit.connected("c", True)  # accepted: the caller may try the next at once
    assert limit.admit("d", want_more=True)


def test_over_the_cap_the_thread_still_connecting_retires_not_one_that_works(shifted):
    limit = ConnectionLimit(floor=2, ceiling=10, memory=300, retry=1)
    for worker in "abcde":
        assert limit.admit(worker, want_more=True)
        limit.connected(worker, True)
    assert limit.admit("f", want_more=True)  # "f" and "g" claimed batches, then connect
    limit.connected("f", True)
    assert limit.admit("g", want_more=True)
    limit.connected("a", False)  # "a" hangs up between batches; "g" is refused meanwhile
    assert limit.throttled("g")
    assert limit.current() == 5 and limit.running == 6
    assert not limit.leave("b", idle=False)  # five connections work: "b" keeps sending
    assert limit.leave("a", idle=False)  # six threads for five: the one without a connection


def test_extra_threads_retire_when_idle_but_the_floor_stays():
    limit = ConnectionLimit(floor=2, ceiling=10, memory=300, retry=1)
    for worker in "abcd":
        assert limit.admit(worker, want_more=True)
        limit.connected(worker, True)
    assert limit.leave("c", idle=True)
    assert limit.leave("d", idle=True)
    assert not limit.leave("a", idle=True)
    assert not limit.leave("b", idle=True)
    assert limit.running == 2
