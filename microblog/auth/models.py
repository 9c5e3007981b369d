"""The account-side tables: sign-in records, the sign-in throttle, known browsers.

`User` itself lives in `microblog.models`, beside the posts it owns.
"""

from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app

from microblog import clock
from microblog.extensions import db
from microblog.models import User


class SessionRecord(db.Model):
    __tablename__ = "session_record"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    # SHA-256 (hex) of the id the cookies carry; never the id itself.
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey(User.id, ondelete="CASCADE"), index=True
    )
    # The user's session_token when the record was made: a rotation ends it.
    user_token: so.Mapped[str] = so.mapped_column(sa.String(64))
    created_at: so.Mapped[sa.DateTime] = so.mapped_column(sa.DateTime, default=clock.utcnow)
    last_seen_at: so.Mapped[sa.DateTime] = so.mapped_column(sa.DateTime, default=clock.utcnow)
    expires_at: so.Mapped[sa.DateTime] = so.mapped_column(sa.DateTime)
    revoked_at: so.Mapped[sa.DateTime | None] = so.mapped_column(sa.DateTime)
    remembered: so.Mapped[bool] = so.mapped_column(default=False)
    device: so.Mapped[str] = so.mapped_column(sa.String(64), default="")
    address: so.Mapped[str] = so.mapped_column(sa.String(64), default="")

    def __repr__(self):
        return f"<SessionRecord {self.id} user={self.user_id}>"

    def is_live(self, user, now):
        """Usable now: not revoked, not expired, not ended by a password change."""
        if self.revoked_at is not None or now >= self.expires_at:
            return False
        if user.session_token != self.user_token:
            return False
        idle = timedelta(seconds=current_app.config["SESSION_IDLE_TIMEOUT"])
        return self.remembered or now - self.last_seen_at < idle


class LoginThrottle(db.Model):
    __tablename__ = "login_throttle"

    # SHA-256 of the bucket: "id:<folded identifier>" (a name or an address as typed),
    # "account:<user id>" (current passwords), "device:<known browser's hash>".
    key: so.Mapped[str] = so.mapped_column(sa.String(64), primary_key=True)
    user_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey(User.id, ondelete="CASCADE"), index=True
    )
    failures: so.Mapped[int] = so.mapped_column(default=0)
    window_started_at: so.Mapped[sa.DateTime | None] = so.mapped_column(sa.DateTime)
    paused_until: so.Mapped[sa.DateTime | None] = so.mapped_column(sa.DateTime)
    paused_at: so.Mapped[sa.DateTime | None] = so.mapped_column(sa.DateTime)
    # Pauses since the last success or reset: each one lasts twice as long.
    pauses: so.Mapped[int] = so.mapped_column(default=0)
    addresses: so.Mapped[str] = so.mapped_column(sa.Text, default="[]")  # JSON, masked

    def __repr__(self):
        return f"<LoginThrottle user={self.user_id} failures={self.failures}>"


class KnownDevice(db.Model):
    __tablename__ = "known_device"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey(User.id, ondelete="CASCADE"), index=True
    )
    # SHA-256 (hex) of the user id and the browser's device id; never the id itself.
    device_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    first_seen_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=clock.utcnow)
    last_seen_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=clock.utcnow)

    def __repr__(self):
        return f"<KnownDevice {self.id} user={self.user_id}>"
