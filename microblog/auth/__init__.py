"""Accounts: registration, login, logout, password recovery, the address's lifecycle."""

from microblog.auth import deletion, email_change, verification  # noqa: F401 (their views)
from microblog.auth.routes import bp

__all__ = ["bp"]
