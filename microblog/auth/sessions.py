"""Server-side sessions: one record per sign-in, so that signing out ends something.

The id Flask-Login keeps in the session cookie and in the remember-me cookie
is a session record's random id; only its SHA-256 is stored, so a copy of the
database cannot be replayed as cookies. The user loader accepts the id only
while its record is live: not revoked (sign-out, "sign out" on the devices
page), not past its server-side expiry (REMEMBER_COOKIE_DURATION when
remembered, SESSION_IDLE_TIMEOUT / SESSION_MAX_AGE otherwise), and made
under the user's current `session_token` (a password change or reset rotates
it, which ends every record at once).
"""

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, g, session
from flask_login import current_user, login_user, logout_user

from microblog import clock
from microblog.auth import audit, security_stamp
from microblog.auth.models import SessionRecord
from microblog.auth.user_agents import describe_browser
from microblog.extensions import db, login
from microblog.models import User
from microblog.redact import mask_address

# What survives the session.clear() of a sign-in: the flashed messages only.
KEPT_AT_SIGN_IN = ("_flashes",)


def digest(session_id):
    return hashlib.sha256(session_id.encode()).hexdigest()


def sign_in(user, remember, user_agent, address):
    """Start a session record and put its id in the cookies.

    `user_agent` and `address` are the browser's, for the devices page.

    The old session is cleared first (keeping only the flashed messages), so
    the session id and the CSRF secret change and nothing from before
    (an opened reset link) carries over into the signed-in session.
    """
    kept = {key: session[key] for key in KEPT_AT_SIGN_IN if key in session}
    session.clear()
    session.update(kept)
    config = current_app.config
    now = clock.utcnow()
    lifetime = config["REMEMBER_COOKIE_DURATION"] if remember else config["SESSION_MAX_AGE"]
    session_id = secrets.token_urlsafe(32)
    record = SessionRecord(
        token_hash=digest(session_id),
        user_id=user.id,
        user_token=user.session_token,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=_seconds(lifetime)),
        remembered=bool(remember),
        device=describe_browser(user_agent)[:64],
        address=mask_address(address),
    )
    forget_ended_records(user, now)
    make_room(user, config["MAX_SESSIONS_PER_ACCOUNT"] - 1)
    db.session.add(record)
    db.session.commit()
    user.session_id = session_id
    g.session_record = record
    login_user(user, remember=remember, duration=timedelta(seconds=_seconds(lifetime)))
    return record


def forget_ended_records(user, now):
    """Delete the user's records that can never sign in again, so the table stays small."""
    db.session.execute(
        sa.delete(SessionRecord)
        .where(
            SessionRecord.user_id == user.id,
            sa.or_(
                SessionRecord.revoked_at.is_not(None),
                SessionRecord.expires_at <= now,
                SessionRecord.user_token != user.session_token,
            ),
        )
        .execution_options(synchronize_session=False)
    )


def make_room(user, keep):
    """Leave at most `keep` of the user's records: the least recently used end first.

    MAX_SESSIONS_PER_ACCOUNT bounds the table whatever a client does (a
    script signing in in a loop); a person's own devices are far fewer.
    """
    oldest = db.session.scalars(
        sa.select(SessionRecord.id)
        .where(SessionRecord.user_id == user.id)
        .order_by(SessionRecord.last_seen_at.desc(), SessionRecord.id.desc())
        .offset(max(keep, 0))
    ).all()
    if oldest:
        db.session.execute(
            sa.delete(SessionRecord)
            .where(SessionRecord.id.in_(oldest))
            .execution_options(synchronize_session=False)
        )
        audit.record("session.evicted", user=user.id, count=len(oldest))


def forget_ended(now):
    """Housekeeping: delete every account's records that can never sign in again."""
    idle_since = now - timedelta(seconds=current_app.config["SESSION_IDLE_TIMEOUT"])
    current_token = (
        sa.select(User.session_token).where(User.id == SessionRecord.user_id).scalar_subquery()
    )
    deleted = db.session.execute(
        sa.delete(SessionRecord)
        .where(
            sa.or_(
                SessionRecord.revoked_at.is_not(None),
                SessionRecord.expires_at <= now,
                sa.and_(
                    SessionRecord.remembered.is_(False), SessionRecord.last_seen_at < idle_since
                ),
                SessionRecord.user_token != current_token,
            )
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return deleted.rowcount


def _seconds(lifetime):
    return lifetime.total_seconds() if isinstance(lifetime, timedelta) else float(lifetime)


@login.user_loader
def load_user(session_id):
    """Flask-Login's loader: the user of a live record, or nobody (the session ends)."""
    row = db.session.execute(
        sa.select(SessionRecord, User)
        .join(User, User.id == SessionRecord.user_id)
        .where(SessionRecord.token_hash == digest(session_id))
    ).first()
    if row is None:
        return None
    record, user = row
    now = clock.utcnow()
    if not record.is_live(user, now):
        return None
    interval = timedelta(seconds=current_app.config["LAST_SEEN_INTERVAL"])
    if now - record.last_seen_at >= interval:  # a write a minute at most, not per request
        record.last_seen_at = now
        db.session.commit()
    user.session_id = session_id
    g.session_record = record
    return user


def current_record():
    """The record of this request's signed-in session, or None."""
    return g.get("session_record") if current_user.is_authenticated else None


def revoke(records):
    """End these records now: their cookies stop working on the next request."""
    now = clock.utcnow()
    ids = [record.id for record in records]
    if ids:
        db.session.execute(
            sa.update(SessionRecord)
            .where(SessionRecord.id.in_(ids), SessionRecord.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()


def sign_out():
    """Revoke this session's record and forget everything the session held."""
    record = current_record()
    if record is not None:
        revoke([record])
    logout_user()
    remember = session.get("_remember")
    session.clear()
    if remember:
        session["_remember"] = remember  # Flask-Login then deletes the remember cookie


def live_records(user):
    """The user's signed-in devices, most recently seen first."""
    now = clock.utcnow()
    records = db.session.scalars(
        sa.select(SessionRecord)
        .where(
            SessionRecord.user_id == user.id,
            SessionRecord.user_token == user.session_token,
            SessionRecord.revoked_at.is_(None),
            SessionRecord.expires_at > now,
        )
        .order_by(SessionRecord.last_seen_at.desc(), SessionRecord.id.desc())
    )
    return [record for record in records if record.is_live(user, now)]


def record_of(user, record_id):
    """One of the user's own records by its id, or None (another user's is none of theirs)."""
    return db.session.scalar(
        sa.select(SessionRecord).where(
            SessionRecord.id == record_id, SessionRecord.user_id == user.id
        )
    )


def sign_out_device(user, record):
    """Sign one other device of the user out."""
    revoke([record])
    audit.record("session.revoked", user=user.id, session=record.id)


def sign_out_other_devices(user):
    """Sign out every device of the user but this one, and every link emailed so far."""
    this = current_record()
    others = [record for record in live_records(user) if record.id != this.id]
    security_stamp.bump(user)  # committed by revoke()
    revoke(others)
    audit.record("session.revoked_others", user=user.id, count=len(others))


def sign_out_other_sessions(user):
    """End every session of the user but this request's, if it is theirs (an address change)."""
    this = current_record()
    keep = this.id if this is not None and this.user_id == user.id else None
    others = [record for record in live_records(user) if record.id != keep]
    revoke(others)
    return len(others)


def no_store_when_signed_in(response):
    """A signed-in user's pages are theirs: no shared cache, no back-button copy after sign-out."""
    if current_user.is_authenticated:
        response.headers["Cache-Control"] = "private, no-store"
    return response
