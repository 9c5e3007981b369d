"""A batch that outlives its lease renews it, so no other worker sends its messages again.

A worker checks its lease before each send of a batch; near its end, it
renews the lease on everything the claim still holds, the messages already
sent (recorded at the end of the batch) included. Here each send moves the
clock on, as a slow server would, and another worker claims whatever is due
at that moment.
"""

from datetime import timedelta

import pytest
import sqlalchemy.orm as so

from microblog import clock
from microblog.extensions import db
from microblog.mail import delivery
from microblog.mail.delivery import lease_seconds, send_bound
from microblog.mail.outbox import claim_batch, renew_lease
from support.app import delivering
from support.outbox import outbox_rows, queue_emails


class SlowSends:
    """Each send takes `step`; another worker then claims what is due: `taken`, by id."""

    def __init__(self, app, monkeypatch):
        self.now = clock.utcnow() + timedelta(minutes=1)  # after what the test queues
        monkeypatch.setattr(clock, "utcnow", lambda: self.now)
        self.lease = lease_seconds(app.config) + send_bound(app.config)  # a batch's lease
        self.step = timedelta(seconds=lease_seconds(app.config) + 1)  # a renewal each send
        self.taken = []
        real = delivery.as_email

        def as_email(row, *args, **kwargs):
            self.now += self.step
            with so.Session(db.engine) as other_worker:
                self.taken.extend(row.id for row in claim_batch(other_worker, self.lease, 10))
            return real(row, *args, **kwargs)

        monkeypatch.setattr(delivery, "as_email", as_email)


@pytest.fixture
def slow_sends(app, monkeypatch):
    return SlowSends(app, monkeypatch)


def test_a_long_batch_keeps_every_message_to_itself(app, smtp, slow_sends):
    queue_emails(app, 3)
    assert delivering(app)() == 3
    assert slow_sends.taken == []  # nothing was due to anyone else at any moment
    assert len(smtp.wait_for(3)) == 3
    assert [(row.state, row.attempts) for row in outbox_rows(app)] == [("sent", 1)] * 3


def test_a_message_another_worker_took_over_is_left_to_it(app, smtp, slow_sends, caplog):
    """The first send outlasts the whole lease (a paused process): too late to renew."""
    slow_sends.step = timedelta(seconds=slow_sends.lease + 1)
    queue_emails(app, 2)
    delivering(app)()
    assert slow_sends.taken == [1, 2]  # both leases had run out
    assert len(smtp.wait_for(1)) == 1
    assert len(smtp.messages) == 1  # the message in hand went; the next one is the taker's
    rows = outbox_rows(app)
    assert [row.state for row in rows] == ["sending", "sending"]  # the taker records them
    assert caplog.text.count("the lease ran out before the outcome was recorded") == 2


def test_a_renewed_lease_ends_one_lease_from_now(app, monkeypatch):
    """Not never: a worker that dies after renewing leaves its messages due again."""
    queue_emails(app, 1)
    now = clock.utcnow() + timedelta(minutes=1)
    monkeypatch.setattr(clock, "utcnow", lambda: now)
    with app.app_context():
        [row] = claim_batch(db.session, 10, 1)
        assert renew_lease(db.session, [row.id], row.claim_token, 100) == {row.id}
    assert outbox_rows(app)[0].lease_until == now + timedelta(seconds=100)


def test_a_message_sent_again_after_its_lease_ran_out_keeps_its_message_id(app, smtp, slow_sends):
    """The duplicate of a send whose outcome was lost folds into the first in a mail client."""
    slow_sends.step = timedelta(seconds=slow_sends.lease + 1)
    queue_emails(app, 1)
    delivering(app)()  # sent, but the lease ran out before the outcome was recorded
    assert slow_sends.taken == [1]

    slow_sends.step = timedelta(0)
    slow_sends.now += timedelta(seconds=slow_sends.lease + 1)  # the taker's lease runs out too
    assert delivering(app)() == 1
    first, again = smtp.wait_for(2)
    [row] = outbox_rows(app)
    assert first["Message-ID"] == again["Message-ID"] == row.message_id
