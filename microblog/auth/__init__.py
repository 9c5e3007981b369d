"""Accounts: registration, sign-in and sign-out, devices, and password recovery."""

from microblog.auth import devices  # noqa: F401  (registers the devices page on bp)
from microblog.auth.routes import bp

__all__ = ["bp"]
