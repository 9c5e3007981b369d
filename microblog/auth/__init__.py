"""Accounts: registration, sign-in and sign-out, devices, password recovery, the address's
lifecycle."""

from microblog.auth import (
    cli,  # noqa: F401  (its command registers on bp)
    devices,
    sessions,
    throttle,
)
from microblog.auth.routes import bp
from microblog.mail import add_chore

__all__ = ["bp"]


@bp.record_once
def keep_tables_bounded(state):
    """The account-side tables' housekeeping, run by the mail workers (mail/housekeeping.py)."""
    add_chore(state.app, "login_throttle", throttle.expire)
    add_chore(state.app, "known_device", devices.forget_expired)
    add_chore(state.app, "session_record", sessions.forget_ended)
