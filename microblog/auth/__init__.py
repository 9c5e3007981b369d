"""Accounts: registration, sign-in and sign-out, devices, password recovery, the address's
lifecycle."""

from microblog.auth import (  # noqa: F401  (their views register on bp)
    deletion,
    devices,
    email_change,
    verification,
)
from microblog.auth.routes import bp

__all__ = ["bp"]
