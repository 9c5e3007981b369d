"""The outbox: every email is a row first, written in the transaction that caused it.

A message is `pending` until a worker claims it (`sending`, with a lease),
then `sent`, `failed` (permanent error or deadline passed) or `dropped` (a
deferred message whose composer decided there was nothing to send). A
claim whose lease ran out (its process died) is claimed again, so delivery
is at-least-once.
"""

import json
import uuid
from datetime import timedelta
from email.utils import make_msgid, parseaddr

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app

from microblog import clock
from microblog.extensions import db
from microblog.models import User

PENDING, SENDING, SENT, FAILED, DROPPED = "pending", "sending", "sent", "failed", "dropped"
STATES = (PENDING, SENDING, SENT, FAILED, DROPPED)


class OutboxMessage(db.Model):
    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_due", "state", "next_attempt_at"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    # "email", or the name of a composer that writes the message in the worker.
    kind: so.Mapped[str] = so.mapped_column(sa.String(32), default="email")
    # What the message is about, for counting and audit ("password_reset", ...).
    tag: so.Mapped[str | None] = so.mapped_column(sa.String(32))
    user_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("user.id"), index=True)
    message_id: so.Mapped[str] = so.mapped_column(sa.String(255))
    sender: so.Mapped[str] = so.mapped_column(sa.String(320))
    recipients: so.Mapped[str] = so.mapped_column(sa.Text)  # JSON list
    subject: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    text_body: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    html_body: so.Mapped[str | None] = so.mapped_column(sa.Text)
    state: so.Mapped[str] = so.mapped_column(sa.String(16), default=PENDING)
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    created_at: so.Mapped[sa.DateTime] = so.mapped_column(sa.DateTime, default=clock.utcnow)
    next_attempt_at: so.Mapped[sa.DateTime] = so.mapped_column(sa.DateTime, default=clock.utcnow)
    # Temporary failures are retried until then; after it, the message is failed.
    deadline_at: so.Mapped[sa.DateTime] = so.mapped_column(sa.DateTime)
    lease_until: so.Mapped[sa.DateTime | None] = so.mapped_column(sa.DateTime)
    claim_token: so.Mapped[str | None] = so.mapped_column(sa.String(32))
    sent_at: so.Mapped[sa.DateTime | None] = so.mapped_column(sa.DateTime)
    last_error: so.Mapped[str | None] = so.mapped_column(sa.String(500))
    # "account" (always tried) or "activity" (not sent to an undeliverable address).
    category: so.Mapped[str] = so.mapped_column(
        sa.String(16), default="account", server_default="account"
    )
    # What a composer needs that it cannot look up (the user row may be gone by then).
    context: so.Mapped[dict | None] = so.mapped_column(sa.JSON)

    def __repr__(self):
        return f"<OutboxMessage {self.id} {self.kind} {self.state}>"

    @property
    def recipient_list(self):
        return json.loads(self.recipients)


def message_domain():
    """The right-hand side of Message-IDs: the public host, else the sender's domain.

    Never the machine's name, which says nothing of the site and may be private.
    """
    config = current_app.config
    sender_domain = parseaddr(config["MAIL_DEFAULT_SENDER"])[1].rpartition("@")[2]
    server = config.get("SERVER_NAME") or sender_domain
    return server.split(":")[0] or "localhost"


def new_message(subject, sender, recipients, text_body, html_body, **fields):
    """An outbox row, not yet added to any session."""
    if isinstance(recipients, str):
        recipients = [recipients]  # one address, not a list of its characters
    return OutboxMessage(
        subject=subject,
        sender=sender or current_app.config["MAIL_DEFAULT_SENDER"],
        recipients=json.dumps(list(recipients)),
        text_body=text_body,
        html_body=html_body,
        # Fixed once, so that a retried message keeps its identity downstream.
        message_id=make_msgid(domain=message_domain()),
        deadline_at=clock.utcnow() + timedelta(seconds=current_app.config["MAIL_RETRY_DEADLINE"]),
        **fields,
    )


def send_email(
    subject,
    sender,
    recipients,
    text_body,
    html_body,
    *,
    tag=None,
    user_id=None,
    category="account",
):
    """Queue an email in the caller's transaction; it leaves after the commit.

    Returns at once: a request never waits for SMTP. The workers of this
    process are woken when the transaction commits, and get the real app
    object, never the `current_app` proxy. `category` "activity" (notifications,
    digests) is not sent to an address marked undeliverable; "account" always is.
    """
    return _enqueue(
        new_message(
            subject,
            sender,
            recipients,
            text_body,
            html_body,
            tag=tag,
            user_id=user_id,
            category=category,
        )
    )


def defer_email(kind, recipient, *, tag=None, context=None, category="account"):
    """Queue a message that the composer registered for `kind` writes in the worker.

    The request path then does the same work whatever the outcome (an
    unknown address, a throttled account): it writes one row.
    """
    return _enqueue(
        new_message(
            "", None, [recipient], "", None, kind=kind, tag=tag, context=context, category=category
        )
    )


def count_recent_requests(user, tag):
    """Messages of this tag queued for the account in the past hour, whatever became of them.

    A quota charged when asked, before anything looks at the recipient: the
    count cannot depend on what the composer later finds. Locks the user's
    row, like `count_recent_emails`, so concurrent requests count in turn.
    """
    return _count_recent(user, tag)


def count_recent_emails(user, tag):
    """Emails of this tag the account was sent, or is about to be, in the past hour.

    Writing the user's row first serialises concurrent composers for one
    account, across threads, processes and hosts, so the count holds.
    """
    return _count_recent(user, tag, OutboxMessage.kind == "email", OutboxMessage.state != DROPPED)


def _count_recent(user, tag, *conditions):
    """Rows of this tag for the account in the past hour, its user row locked first."""
    db.session.execute(sa.update(User).where(User.id == user.id).values(id=User.id))
    since = clock.utcnow() - timedelta(hours=1)
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(OutboxMessage)
        .where(
            OutboxMessage.tag == tag,
            OutboxMessage.user_id == user.id,
            OutboxMessage.created_at >= since,
            *conditions,
        )
    )


def drop_account_mail(user_id, address):
    """Delete an account's mail in the caller's transaction, so none is sent after it goes.

    Composed rows carry the account's id; deferred rows still waiting for
    their composer carry only the address.
    """
    db.session.execute(
        sa.delete(OutboxMessage).where(
            sa.or_(
                OutboxMessage.user_id == user_id,
                sa.and_(
                    OutboxMessage.recipients == json.dumps([address]),
                    OutboxMessage.state != SENT,
                ),
            )
        )
    )


def drop_queued_mail(tags, user_id, address):
    """Drop, in the caller's transaction, the account's mail of these tags not yet claimed.

    Rows still waiting for their composer may carry only the address; composed
    rows waiting for a retry carry the account's id and a body, erased here.
    """
    db.session.execute(
        sa.update(OutboxMessage)
        .where(
            OutboxMessage.state == PENDING,
            OutboxMessage.tag.in_(tags),
            sa.or_(
                OutboxMessage.user_id == user_id,
                OutboxMessage.recipients == json.dumps([address]),
            ),
        )
        .values(state=DROPPED, text_body="", html_body=None)
        .execution_options(synchronize_session=False)
    )


def _enqueue(message):
    db.session.add(message)
    db.session.info["outbox_app"] = current_app._get_current_object()
    return message


def _due(now):
    return sa.or_(
        sa.and_(OutboxMessage.state == PENDING, OutboxMessage.next_attempt_at <= now),
        sa.and_(OutboxMessage.state == SENDING, OutboxMessage.lease_until < now),
    )


def claim_batch(session, lease_seconds, limit):
    """Atomically take up to `limit` due messages under one new claim token; [] if none.

    One UPDATE whose WHERE picks the rows: SQLite runs it under its write
    lock, PostgreSQL skips rows another worker has locked (`SKIP LOCKED`). A
    row whose lease expired (its worker died) is due again, under a new
    `claim_token`: the lease must outlast the slowest send that can still
    succeed (see `delivery.lease_seconds`), or a live worker would share its
    message. The rows come back detached, their values read before the commit.
    """
    now = clock.utcnow()
    candidates = (
        sa.select(OutboxMessage.id)
        .where(_due(now))
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Locked first, in this transaction: PostgreSQL may run a LIMIT ... SKIP LOCKED
        # subquery once per row of the UPDATE, which then takes every due row.
        candidates = list(session.scalars(candidates))
    else:
        candidates = candidates.scalar_subquery()
    token = uuid.uuid4().hex
    rows = (
        session.execute(
            sa.update(OutboxMessage)
            .where(OutboxMessage.id.in_(candidates), _due(now))
            .values(
                state=SENDING,
                lease_until=now + timedelta(seconds=lease_seconds),
                claim_token=token,
                attempts=OutboxMessage.attempts + 1,
            )
            .returning(OutboxMessage)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        .scalars()
        .all()
    )
    for row in rows:
        session.expunge(row)  # keeps the values the UPDATE returned past the commit
    session.commit()
    return sorted(rows, key=lambda row: (row.next_attempt_at, row.id))


def count_due(session, at_most):
    """How many messages are due now, counting no further than `at_most` (a bounded read)."""
    due = sa.select(OutboxMessage.id).where(_due(clock.utcnow())).limit(at_most).subquery()
    return session.scalar(sa.select(sa.func.count()).select_from(due))


def claim_next(session, lease_seconds):
    """Take the next due message, or None (a batch of one)."""
    rows = claim_batch(session, lease_seconds, 1)
    return rows[0] if rows else None


def renew_lease(session, ids, claim_token, lease_seconds):
    """Extend the lease of claimed rows still held; returns the ids still held."""
    held = session.scalars(
        sa.update(OutboxMessage)
        .where(
            OutboxMessage.id.in_(ids),
            OutboxMessage.claim_token == claim_token,
            OutboxMessage.state == SENDING,
        )
        .values(lease_until=clock.utcnow() + timedelta(seconds=lease_seconds))
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return set(held)


def settle_sent(session, ids, claim_token):
    """Mark sent, in one UPDATE, the rows this claim still holds; their ids.

    The body (a reset link, say) has no use once delivered: it is erased.
    The caller commits, so that counters can join the same transaction.
    """
    if not ids:
        return []
    return session.scalars(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.claim_token == claim_token)
        .values(state=SENT, sent_at=clock.utcnow(), lease_until=None, text_body="", html_body=None)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()


def release(session, ids, claim_token):
    """Give back claimed rows that were never tried: due again, the attempt not counted."""
    if not ids:
        return 0
    result = session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.claim_token == claim_token)
        .values(
            state=PENDING,
            lease_until=None,
            claim_token=None,
            attempts=OutboxMessage.attempts - 1,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount


def fail_expired(session):
    """Fail the pending messages whose retry deadline passed (a long outage); their ids."""
    ids = session.scalars(
        sa.update(OutboxMessage)
        .where(OutboxMessage.state == PENDING, OutboxMessage.deadline_at < clock.utcnow())
        .values(state=FAILED)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return ids


def settle(session, row_id, claim_token, commit=True, **values):
    """Record the outcome of a claim (and commit); False if the claim was lost.

    The claim is lost when its lease ran out and another worker took the
    message: that worker's outcome is the one to keep, not this one.
    """
    result = session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == row_id, OutboxMessage.claim_token == claim_token)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if commit:
        session.commit()
    return result.rowcount == 1


def counts_by_state(session):
    """For `flask mail status`: every state, zero included."""
    rows = session.execute(
        sa.select(OutboxMessage.state, sa.func.count()).group_by(OutboxMessage.state)
    )
    counts = dict.fromkeys(STATES, 0)
    counts.update(dict(rows.all()))
    return counts


def oldest_unsent(session):
    """The message that has waited longest: the first sign of a stuck queue."""
    return session.scalar(
        sa.select(OutboxMessage)
        .where(OutboxMessage.state.in_([PENDING, SENDING]))
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
        .limit(1)
    )


def purge_settled(session, older_than):
    """Delete sent and dropped messages settled before `older_than` ago.

    Never less than an hour: the per-account reset limit counts the past
    hour's messages.
    """
    cutoff = clock.utcnow() - max(older_than, timedelta(hours=1))
    result = session.execute(
        sa.delete(OutboxMessage).where(
            OutboxMessage.state.in_([SENT, DROPPED]), OutboxMessage.created_at < cutoff
        )
    )
    session.commit()
    return result.rowcount


def requeue_failed(session):
    """Give failed messages a fresh start: due now, with a new deadline."""
    now = clock.utcnow()
    deadline = now + timedelta(seconds=current_app.config["MAIL_RETRY_DEADLINE"])
    result = session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.state == FAILED)
        .values(state=PENDING, next_attempt_at=now, deadline_at=deadline, lease_until=None)
    )
    session.commit()
    return result.rowcount
