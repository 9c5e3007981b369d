"""Error pages, for the whole app."""

from microblog.errors.handlers import bp

__all__ = ["bp"]
