"""Account deletion: gone at once for everyone, its rows removed in the background.

Why a tombstone and not the user row deleted at once: posts and follows
point at the user row (foreign keys without ON DELETE), and the timeline rows
cascade from it, so deleting the row first means deleting a million rows in
the same statement, which is the lock this design avoids. So the request, in
one transaction, makes the account gone in everything a person or an attacker
can reach: the row keeps only its id and `deleted_at`; its name and address
are replaced by values no sign-up, rename or sign-in can produce (so both are
free for reuse at once); it is no longer verified, its password hash is
empty, its session token and security stamp change; its sessions, known
devices, throttle rows and queued mail go. Every page leaves a deleted
account's posts out (`models.visible_author`) and its profile, lists and
follow buttons are 404s (`main.routes.VISIBLE`).

The rest (the follows, with the counts of the people on either side, the
timeline rows, the posts, then the row) is deleted by the `account.purge`
job in bounded batches of TIMELINE_DELETE_BATCH rows, each committed with the
job's state: a crash loses at most one batch, which the next run redoes.
Running a batch twice does nothing more: each count moves only for a follow
row this run's own DELETE removed (DELETE ... RETURNING, so two runs racing
over one batch cannot both count it), and a run for an id that is no longer
a tombstone (purged already, or the id reused) does nothing. One batch runs
inside the request, as an unfollow does, so a small account (an unverified
sign-up always) is gone completely before the answer, with no job at all.

The goodbye email is composed in the mail worker like every other email, but
from the outbox row's `context` (emails.py): by then the account is gone.
"""

import sqlalchemy as sa
from flask import current_app

from microblog import clock, jobs
from microblog.auth import audit, security_stamp
from microblog.auth.emails import GOODBYE
from microblog.auth.models import KnownDevice, LoginThrottle, SessionRecord
from microblog.extensions import db
from microblog.mail import defer_email, drop_account_mail
from microblog.models import Post, TimelineEntry, User, followers, new_session_token

PURGE = "account.purge"


def tombstone_name(user_id):
    """A name and key no sign-up or rename can take (a colon is not allowed in usernames)."""
    return f"deleted:{user_id}"


def erase_account(user, *only_if):
    """Make the account gone in the caller's transaction; its rows follow in a job.

    Mail about the account (composed rows carry its id) goes, and so does mail
    still waiting for its address (deferred rows carry only the address), so
    nothing queued before the deletion is sent after it. `only_if` are
    conditions on the user row, checked as it is marked deleted: False when
    they no longer hold, and the caller then rolls back.
    """
    user_id, address = user.id, user.email
    security_stamp.bump(user)
    name = tombstone_name(user_id)
    marked = db.session.execute(
        sa.update(User)
        .where(User.id == user_id, User.deleted_at.is_(None), *only_if)
        .values(
            deleted_at=clock.utcnow(),
            username=name,
            username_key=name,
            email=name,
            email_verified_at=None,
            password_hash="",
            session_token=new_session_token(),
            about_me=None,
        )
        .execution_options(synchronize_session=False)
    )
    if marked.rowcount != 1:
        return False
    drop_account_mail(user_id, address)
    db.session.execute(sa.delete(SessionRecord).where(SessionRecord.user_id == user_id))
    db.session.execute(sa.delete(KnownDevice).where(KnownDevice.user_id == user_id))
    db.session.execute(sa.delete(LoginThrottle).where(LoginThrottle.user_id == user_id))
    if user in db.session:
        db.session.expire(user)
    if not purge_account(user_id):
        jobs.enqueue(PURGE, user_id=user_id)
    return True


def _batch():
    return current_app.config["TIMELINE_DELETE_BATCH"]


def _own_timeline(user_id, batch):
    """The rows of the account's own home timeline."""
    rows = sa.select(TimelineEntry.post_id).where(TimelineEntry.owner_id == user_id).limit(batch)
    deleted = db.session.execute(
        sa.delete(TimelineEntry)
        .where(TimelineEntry.owner_id == user_id, TimelineEntry.post_id.in_(rows))
        .execution_options(synchronize_session=False)
    )
    return deleted.rowcount < batch


def _follows(user_id, batch, side, other, count):
    """Follow rows on one side, each taking one from the count of the person on the other.

    The counts move for the rows this DELETE removed (RETURNING), never for a
    row a concurrent run of the same batch removed first.
    """
    rows = sa.select(other).where(side == user_id).limit(batch)
    gone = db.session.scalars(
        sa.delete(followers).where(side == user_id, other.in_(rows)).returning(other)
    ).all()
    if gone:
        db.session.execute(
            sa.update(User)
            .where(User.id.in_(gone))
            .values({count: getattr(User, count) - 1})
            .execution_options(synchronize_session=False)
        )
    return len(gone) < batch


def _posts(user_id, batch):
    """Posts newest first (explore skips fewer rows soonest), each post's timeline rows first."""
    newest = db.session.scalars(
        sa.select(Post.id)
        .where(Post.user_id == user_id)
        .order_by(Post.timestamp.desc(), Post.id.desc())
        .limit(batch)
    ).all()
    if not newest:
        return True
    copies = (
        sa.select(TimelineEntry.owner_id, TimelineEntry.post_id)
        .where(TimelineEntry.post_id.in_(newest))
        .limit(batch)
    )
    deleted = db.session.execute(
        sa.delete(TimelineEntry)
        .where(sa.tuple_(TimelineEntry.owner_id, TimelineEntry.post_id).in_(copies))
        .execution_options(synchronize_session=False)
    )
    if deleted.rowcount >= batch:  # more copies of these posts: the posts wait for the next run
        return False
    db.session.execute(
        sa.delete(Post).where(Post.id.in_(newest)).execution_options(synchronize_session=False)
    )
    return len(newest) < batch


@jobs.handler(PURGE)
def purge_account(user_id):
    """One bounded batch of a deleted account's rows; True once the row itself is gone.

    The steps run in order and a run stops at the first with rows left, so a
    run deletes at most a few batches of rows, and a rerun redoes nothing.
    """
    tombstone = sa.and_(User.id == user_id, User.deleted_at.is_not(None))
    if db.session.scalar(sa.select(User.id).where(tombstone)) is None:
        return True  # purged already (or the id now names someone else)
    batch = _batch()
    steps = (
        lambda: _own_timeline(user_id, batch),
        lambda: _follows(
            user_id, batch, followers.c.followed_id, followers.c.follower_id, "following_count"
        ),
        lambda: _follows(
            user_id, batch, followers.c.follower_id, followers.c.followed_id, "followers_count"
        ),
        lambda: _posts(user_id, batch),
    )
    for step in steps:
        if not step():
            return False
    db.session.execute(sa.delete(User).where(tombstone))
    return True


def delete_account_and_say_goodbye(user):
    """Erase the account and queue the goodbye, committed together.

    The goodbye is written in the account's language, kept in the row: by
    the time the worker composes it, the account is gone.
    """
    username, address, user_id, locale = user.username, user.email, user.id, user.locale
    if not erase_account(user):  # a request a moment before deleted it, and said goodbye
        db.session.rollback()
        return
    context = {"username": username, "locale": locale}
    defer_email(GOODBYE, address, tag=GOODBYE, context=context)
    db.session.commit()
    audit.record("account.deleted", user=user_id)
