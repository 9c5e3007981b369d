"""Per-account sign-in throttling, counted in the database.

Per-IP limits (Flask-Limiter) count per worker with `memory://` and do
nothing against guesses spread over many addresses. This counts failures
per account, in the database, so it holds across workers and hosts and
whether or not RATELIMIT_ENABLED: after LOGIN_FAILURES_PER_ACCOUNT failures
within LOGIN_FAILURE_WINDOW seconds the account's sign-in pauses, right
password or not, for LOGIN_PAUSE_SECONDS, doubled with every further pause
(up to LOGIN_PAUSE_MAX_SECONDS) until the owner signs in or resets the
password. The owner is emailed once per pause.

Unknown identifiers are counted too, under a key of their own, with the
same statements: a pause says nothing about whether the account exists.
Keys are hashes, so no typed name or address is stored.
"""

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
from microblog.extensions import db
from microblog.mail import defer_email
from microblog.redact import mask_address

MAX_ADDRESSES = 10  # masked addresses remembered for the owner's email


def throttle_key(user, folded_identifier):
    """The account's key when it exists, else the typed identifier's."""
    material = f"user:{user.id}" if user is not None else f"name:{folded_identifier}"
    return hashlib.sha256(material.encode()).hexdigest()


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


def count_attempt(key, user, address):
    """Count a sign-in attempt before its password is checked: (refused until, paused until).

    The first is set when the key is paused: refuse without checking. The
    second when this attempt reached the limit and started a pause (and
    queued the owner's email); it is still checked, and a right password
    lifts the pause again. Counting first, under a lock on the key's row (an
    UPDATE: a row lock on PostgreSQL, the write lock on SQLite), means that
    however many guesses arrive at once, in any worker, at most
    LOGIN_FAILURES_PER_ACCOUNT passwords are checked per window.
    """
    config = current_app.config
    _insert_missing(key, user.id if user is not None else None)
    db.session.execute(
        sa.update(LoginThrottle)
        .where(LoginThrottle.key == key)
        .values(failures=LoginThrottle.failures)
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
    if row.failures >= config["LOGIN_FAILURES_PER_ACCOUNT"]:
        row.pauses += 1
        started = now + pause_length(row.pauses)
        row.paused_at, row.paused_until = now, started
        row.failures, row.window_started_at = 0, None
        # One email per pause, composed in the mail worker; for an unknown
        # name the composer finds no account and drops it (same writes here).
        defer_email(PAUSE_TAG, key, tag=PAUSE_TAG)
        audit.warning("login.paused", user=row.user_id, pauses=row.pauses)
    db.session.commit()
    return None, started


def record_success(key):
    """A right password while not paused: the streak (and any pause it just started) is over."""
    clear(key)


def lift(user):
    """A completed password reset: the owner proved they hold the mailbox; sign-in resumes."""
    clear(throttle_key(user, None))


def clear(key):
    db.session.execute(
        sa.update(LoginThrottle)
        .where(LoginThrottle.key == key)
        .values(
            failures=0,
            window_started_at=None,
            paused_until=None,
            paused_at=None,
            pauses=0,
            addresses="[]",
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
