"""The microblog itself: timelines, profiles, following."""

from microblog.main.routes import bp

__all__ = ["bp"]
