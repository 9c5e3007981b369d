"""Accounts: registration, login, logout and password recovery."""

from microblog.auth.routes import bp

__all__ = ["bp"]
