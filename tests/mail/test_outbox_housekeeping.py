"""What the workers' expiry sweep, their housekeeping and `flask mail purge` may touch.

The sweep fails only pending mail whose retry deadline passed: a message in
a worker's hands, or already settled, keeps its state. The purge never
deletes the past hour's messages, which the per-account reset limit counts.
"""

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.extensions import db
from microblog.mail.housekeeping import run_round
from microblog.mail.outbox import (
    DROPPED,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    OutboxMessage,
    fail_expired,
    new_message,
    purge_settled,
)
from microblog.mail.workers import dispatcher
from support.app import build_app, close_app


@pytest.fixture
def now(monkeypatch):
    frozen = clock.utcnow()
    monkeypatch.setattr(clock, "utcnow", lambda: frozen)
    return frozen


def add_rows(app, *rows):
    """Outbox rows with the given fields; their ids, in order."""
    with app.app_context():
        messages = []
        for fields in rows:
            messages.append(new_message("s", None, ["a@example.com"], "t", None))
            for name, value in fields.items():
                setattr(messages[-1], name, value)
        db.session.add_all(messages)
        db.session.commit()
        return [message.id for message in messages]


def states(app, ids):
    with app.app_context():
        by_id = dict(db.session.execute(sa.select(OutboxMessage.id, OutboxMessage.state)).all())
    return [by_id.get(row_id) for row_id in ids]


def test_the_sweep_fails_only_pending_mail_past_its_deadline(app, now):
    passed, due_now = now - timedelta(seconds=1), now
    ids = add_rows(
        app,
        {"state": PENDING, "deadline_at": passed},
        {"state": PENDING, "deadline_at": due_now},  # not yet passed
        {"state": PENDING, "deadline_at": now + timedelta(hours=1)},
        {"state": SENDING, "deadline_at": passed, "lease_until": now + timedelta(minutes=1)},
        {"state": SENT, "deadline_at": passed},
        {"state": DROPPED, "deadline_at": passed},
    )
    with app.app_context():
        assert fail_expired(db.session) == [ids[0]]
    assert states(app, ids) == [FAILED, PENDING, PENDING, SENDING, SENT, DROPPED]


@pytest.mark.parametrize("older_than", [timedelta(0), timedelta(minutes=30)])
def test_the_purge_keeps_the_past_hour_whatever_it_is_asked(app, now, older_than):
    ids = add_rows(
        app,
        {"state": SENT, "created_at": now - timedelta(minutes=50)},
        {"state": DROPPED, "created_at": now - timedelta(minutes=59)},
        {"state": SENT, "created_at": now - timedelta(minutes=61)},
        {"state": DROPPED, "created_at": now - timedelta(minutes=90)},
        {"state": FAILED, "created_at": now - timedelta(days=2)},
    )
    with app.app_context():
        assert purge_settled(db.session, older_than) == 2
    assert states(app, ids) == [SENT, DROPPED, None, None, FAILED]


# The workers keep house: on a schedule, in one process at a time.


def housekeeping_round(app):
    with app.app_context():
        return run_round()


@pytest.mark.settings(MAIL_KEEP_SENT=3 * 24 * 3600)
def test_a_round_purges_settled_mail_older_than_mail_keep_sent(app, now):
    ids = add_rows(
        app,
        {"state": SENT, "created_at": now - timedelta(days=4)},
        {"state": DROPPED, "created_at": now - timedelta(days=4)},
        {"state": SENT, "created_at": now - timedelta(days=2)},
        {"state": FAILED, "created_at": now - timedelta(days=4)},
        {"state": PENDING, "created_at": now - timedelta(days=4)},
    )
    assert housekeeping_round(app)["outbox"] == 2
    assert states(app, ids) == [None, None, SENT, FAILED, PENDING]


def test_one_round_per_interval_however_many_processes_ask(app, database_url, smtp, now, request):
    """Two apps on one database (two processes): the lease row lets one of them in."""
    other = build_app(database_url, smtp)
    request.addfinalizer(lambda: close_app(other, drop=False))
    start = threading.Barrier(2)
    rounds = []

    def ask(an_app):
        start.wait()
        rounds.append(housekeeping_round(an_app))

    threads = [threading.Thread(target=ask, args=(a,)) for a in (app, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r is not None for r in rounds) == 1
    assert housekeeping_round(app) is None  # not due again within the hour


def test_the_next_round_comes_an_interval_later(app, monkeypatch, now):
    assert housekeeping_round(app) is not None
    later = now + timedelta(seconds=app.config["HOUSEKEEPING_INTERVAL"])
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    assert housekeeping_round(app) is not None


@pytest.mark.settings(MAIL_WORKERS=1, HOUSEKEEPING_INTERVAL=1, MAIL_POLL_INTERVAL=0.1)
def test_the_mail_workers_keep_house_by_themselves(app):
    """The outbox stops growing with nothing scheduled outside the app: the workers purge it."""
    old = clock.utcnow() - timedelta(days=8)
    ids = add_rows(app, *({"state": SENT, "created_at": old} for _ in range(5)))
    dispatcher(app).start()
    deadline = time.monotonic() + 10
    while states(app, ids) != [None] * 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert states(app, ids) == [None] * 5
