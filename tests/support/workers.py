"""The mail worker threads, watched from a test: wait for them, find them, read their log."""

import threading
import time


def wait_until(condition, timeout=5, what="the condition"):
    """Poll for something the worker threads are expected to do soon."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def worker_threads():
    return [t for t in threading.enumerate() if t.name.startswith("mail-worker")]


def records_of(caplog, text):
    return [r for r in list(caplog.records) if text in r.getMessage()]
