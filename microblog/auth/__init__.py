"""Accounts: registration, sign-in and sign-out, devices, password recovery, the address's
lifecycle."""

from microblog.auth import cli  # noqa: F401  (its command registers on bp)
from microblog.auth.routes import bp

__all__ = ["bp"]
