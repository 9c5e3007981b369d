"""Per-account sign-in throttling, counted in the database.

Per-IP limits (Flask-Limiter) count per worker with `memory://` and do
nothing against guesses spread over many addresses. This counts failures
per account, in the database, so it holds across workers and hosts and
whether or not RATELIMIT_ENABLED: after LOGIN_FAILURES_PER_ACCOUNT failures
within LOGIN_FAILURE_WINDOW seconds the account's sign-in pauses, right
password or not, for LOGIN_PAUSE_SECONDS, doubled with every further pause
(up to LOGIN_PAUSE_MAX_SECONDS) until the owner signs in or resets the
password. The owner is emailed once per pause.

Failures are counted per identifier typed: the username and the address
of one account are two buckets, each with the same limit as an unknown
spelling's, and with the same statements, so a pause says nothing about
whether the account exists nor links a public name to a private address
(an account allows at most twice the limit per window). A bucket's row is
kept only while it holds failures: a right password deletes it, an attempt
whose password was never checked (the hashing bound was full) takes its
count back, and housekeeping deletes rows whose window and pause have
passed. Keys are hashes, so no typed name or address is stored.

A browser the account knows (a signed device cookie, devices.py) counts
in a bucket of its own instead, with LOGIN_FAILURES_PER_DEVICE: others'
guesses never pause the owner's browser, and a stolen device cookie alone
allows only a few.

Current passwords typed by a signed-in session (change password, change
email, delete account) count in a bucket of the account's own: at the
limit both sign-in buckets pause with it, the owner is emailed and the
session that guessed is signed out.
"""

import enum
import hashlib
import json
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from microblog import clock
from microblog.auth import audit
from microblog.auth.emails import PAUSE_TAG
from microblog.auth.models import LoginThrottle
from microblog.auth.passwords import HashingBusy, verify_password
from microblog.extensions import db
from microblog.mail import defer_email
from microblog.redact import mask_address

MAX_ADDRESSES = 10  # masked addresses remembered for the owner's email


class PasswordCheck(enum.Enum):
    RIGHT = "right"
    WRONG = "wrong"
    PAUSED = "paused"  # the guesses reached the limit: the session is to be signed out


def _digest(material):
    return hashlib.sha256(material.encode()).hexdigest()


def identifier_key(folded_identifier):
    """The bucket of one identifier as typed (folded), whether or not an account has it."""
    return _digest(f"id:{folded_identifier}")


def account_key(user):
    """The bucket of the current passwords typed by the account's own sessions."""
    return _digest(f"account:{user.id}")


def device_key(device_hash):
    """The bucket of one known browser of one account (its KnownDevice fingerprint)."""
    return _digest(f"device:{device_hash}")


def pause_length(pauses):
    """LOGIN_PAUSE_SECONDS, doubling with every pause in a row, capped."""
    config = current_app.config
    seconds = config["LOGIN_PAUSE_SECONDS"] * 2 ** min(pauses - 1, 20)
    return timedelta(seconds=min(seconds, config["LOGIN_PAUSE_MAX_SECONDS"]))


def _insert_missing(key, user_id):
    """Create the key's row unless it exists, without failing when a racer made it."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {"key": key, "user_id": user_id, "failures": 0, "pauses": 0, "addresses": "[]"}
    db.session.execute(insert(LoginThrottle).values(**values).on_conflict_do_nothing())


def count_attempt(key, user, address, limit=None, notify=True):
    """Count a sign-in attempt before its password is checked: (refused until, paused until).

    The first is set when the key is paused: refuse without checking. The
    second when this attempt reached the limit and started a pause (and
    queued the owner's email); it is still checked, and a right password
    lifts the pause again. Counting first, under a lock on the key's row (an
    UPDATE: a row lock on PostgreSQL, the write lock on SQLite), means that
    however many guesses arrive at once, in any worker, at most
    `limit` (default LOGIN_FAILURES_PER_ACCOUNT) passwords are checked per window.
    `notify` False (a known browser's own budget): the account is not paused
    for anyone else, so its owner gets no pause email.
    """
    config = current_app.config
    limit = config["LOGIN_FAILURES_PER_ACCOUNT"] if limit is None else limit
    user_id = user.id if user is not None else None
    _insert_missing(key, user_id)
    db.session.execute(
        sa.update(LoginThrottle)
        .where(LoginThrottle.key == key)
        .values(failures=LoginThrottle.failures, user_id=user_id)
        .execution_options(synchronize_session=False)
    )
    row = db.session.execute(
        sa.select(LoginThrottle)
        .where(LoginThrottle.key == key)
        .execution_options(populate_existing=True)
    ).scalar_one()
    now = clock.utcnow()
    if row.paused_until is not None and row.paused_until > now:
        until = row.paused_until
        db.session.commit()
        return until, None
    window = timedelta(seconds=config["LOGIN_FAILURE_WINDOW"])
    if row.window_started_at is None or now - row.window_started_at >= window:
        row.failures, row.window_started_at = 0, now
        row.addresses = "[]"
    row.failures += 1
    addresses = json.loads(row.addresses or "[]")
    masked = mask_address(address)
    if masked not in addresses:
        row.addresses = json.dumps([*addresses, masked][-MAX_ADDRESSES:])
    started = None
    if row.failures >= limit:
        row.pauses += 1
        started = now + pause_length(row.pauses)
        row.paused_at, row.paused_until = now, started
        row.failures, row.window_started_at = 0, None
        # One email per pause, composed in the mail worker; for an unknown
        # name the composer finds no account and drops it (same writes here).
        if notify:
            defer_email(PAUSE_TAG, key, tag=PAUSE_TAG)
        audit.warning("login.paused", user=row.user_id, pauses=row.pauses, device=not notify)
    db.session.commit()
    return None, started


def uncount(key):
    """The attempt counted was never checked (the hashing bound refused it): take it back.

    A row left with nothing in it goes, so a flood answered with 503s stores nothing.
    """
    db.session.rollback()
    db.session.execute(
        sa.update(LoginThrottle)
        .where(LoginThrottle.key == key, LoginThrottle.failures > 0)
        .values(failures=LoginThrottle.failures - 1)
        .execution_options(synchronize_session=False)
    )
    _delete_if_empty(key)
    db.session.commit()


def _delete_if_empty(key):
    db.session.execute(
        sa.delete(LoginThrottle)
        .where(
            LoginThrottle.key == key,
            LoginThrottle.failures == 0,
            LoginThrottle.paused_until.is_(None),
            LoginThrottle.pauses == 0,
        )
        .execution_options(synchronize_session=False)
    )


def record_success(key):
    """A right password while not paused: the streak (and any pause it just started) is over."""
    clear(key)


def lift(user):
    """A completed password reset: the owner proved they hold the mailbox; sign-in resumes."""
    db.session.execute(
        sa.delete(LoginThrottle)
        .where(LoginThrottle.user_id == user.id)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def clear(key):
    """Forget the bucket: a row exists only while it holds failures or a pause."""
    db.session.execute(
        sa.delete(LoginThrottle)
        .where(LoginThrottle.key == key)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def check_current_password(user, password, address):
    """A signed-in session typed the account's password: RIGHT, WRONG, or PAUSED.

    Counted like a sign-in, in the account's own bucket, before the hash
    is checked. PAUSED when the bucket was paused already or this guess
    reached the limit: then both sign-in buckets of the account pause too
    (whoever holds the session may not sign in again), the owner's email
    is queued, and the caller signs the session out.
    """
    key = account_key(user)
    stored_hash = user.password_hash
    refused_until, started = count_attempt(key, user, address)
    if refused_until is not None:
        return PasswordCheck.PAUSED
    try:
        right = verify_password(stored_hash, password)
    except HashingBusy:
        uncount(key)
        raise
    if right:  # as at sign-in, the right password lifts the pause this guess started
        clear(key)
        return PasswordCheck.RIGHT
    if started is not None:
        pause_sign_in(user, started)
        return PasswordCheck.PAUSED
    return PasswordCheck.WRONG


def pause_sign_in(user, until):
    """Pause both sign-in buckets of the account (its name's and its address's) until `until`."""
    now = clock.utcnow()
    for key in (identifier_key(user.username_key), identifier_key(user.email)):
        _insert_missing(key, user.id)
        db.session.execute(
            sa.update(LoginThrottle)
            .where(
                LoginThrottle.key == key,
                sa.or_(LoginThrottle.paused_until.is_(None), LoginThrottle.paused_until < until),
            )
            .values(
                user_id=user.id,
                paused_at=now,
                paused_until=until,
                pauses=LoginThrottle.pauses + 1,
                failures=0,
                window_started_at=None,
            )
            .execution_options(synchronize_session=False)
        )
    db.session.commit()


def expire(now=None):
    """Delete the rows that count nothing any more: window over, pause long over.

    A pause's row is kept LOGIN_PAUSE_MAX_SECONDS after it ended, so that
    guessing resumed the next day still meets a doubled pause. Returns the
    number deleted (housekeeping).
    """
    config = current_app.config
    now = clock.utcnow() if now is None else now
    window_start = now - timedelta(seconds=config["LOGIN_FAILURE_WINDOW"])
    pause_end = now - timedelta(seconds=config["LOGIN_PAUSE_MAX_SECONDS"])
    deleted = db.session.execute(
        sa.delete(LoginThrottle)
        .where(
            sa.or_(
                LoginThrottle.window_started_at.is_(None),
                LoginThrottle.window_started_at < window_start,
            ),
            sa.or_(LoginThrottle.paused_until.is_(None), LoginThrottle.paused_until < pause_end),
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return deleted.rowcount
