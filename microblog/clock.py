"""The one source of "now", so that tests can move time instead of waiting for it."""

import time
from datetime import UTC, datetime


def utcnow():
    """Naive UTC: stored the same way in SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


def monotonic():
    """Seconds for measuring delays (probe back-off, remembered caps); tests may shift it."""
    return time.monotonic()
