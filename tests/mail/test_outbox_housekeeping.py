"""What the workers' expiry sweep and `flask mail purge` may touch, and what they must not.

The sweep fails only pending mail whose retry deadline passed: a message in
a worker's hands, or already settled, keeps its state. The purge never
deletes the past hour's messages, which the per-account reset limit counts.
"""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.extensions import db
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
