"""A small, bounded pool of sender threads per process.

Started lazily, with the real app object (never the `current_app` proxy):
by the first transaction that queues mail, or by the first request, so that
a restarted process also sends what its predecessor left pending. The
threads are daemons so that they never hold a process open, and an exit
hook asks them to finish the message in hand and stop, within gunicorn's
graceful timeout.
"""

import atexit
import logging
import os
import threading
import time
from functools import partial

from flask import after_this_request, has_request_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from microblog.mail.delivery import deliver_due

log = logging.getLogger("microblog.mail")


class Dispatcher:
    """The mail worker threads of one app in one process (`app.extensions["outbox"]`)."""

    def __init__(self, app):
        self.app = app
        self.size = app.config["MAIL_WORKERS"]
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.threads = []
        # Other background threads of this app's mail (the error reports), stopped with it.
        self.companions = []
        self.pid = None
        self.lock = threading.Lock()

    def notify(self):
        """New mail was committed: start the pool if needed and wake it."""
        if self.size <= 0:
            return  # synchronous mode: `flask mail send-pending` or the tests deliver
        self.start()
        self.wake.set()

    def running(self):
        return self.pid == os.getpid()

    def start(self):
        """Start the pool in this process, once; cheap enough to call on every request.

        After a fork (gunicorn --preload) the threads did not come along, so
        the child starts its own. After `stop()` the pool stays stopped.
        """
        if self.size <= 0 or self.running():
            return
        with self.lock:
            if self.running():
                return
            self.stopping.clear()
            self.threads = [
                threading.Thread(
                    target=self.run, args=(self.app,), name=f"mail-worker-{n}", daemon=True
                )
                for n in range(self.size)
            ]
            for thread in self.threads:
                thread.start()
            self.pid = os.getpid()
            atexit.register(self.stop)

    def run(self, app):
        """Deliver what is due, then sleep until woken or the poll interval passes."""
        interval = app.config["MAIL_POLL_INTERVAL"]
        while not self.stopping.is_set():
            self.wake.clear()
            handled = 0
            with app.app_context():
                try:
                    handled = deliver_due(stop=self.stopping)
                except Exception:
                    log.exception("Mail worker failed; it will try again")
            if not handled:
                self.wake.wait(interval)

    def stop(self, timeout=None):
        """Let each worker finish the message in hand, then return within `timeout` in all."""
        if timeout is None:
            timeout = self.app.config["MAIL_SHUTDOWN_TIMEOUT"]
        deadline = time.monotonic() + timeout
        for companion in self.companions:  # first, so that what they queue is not left behind
            companion.stop(max(0.0, deadline - time.monotonic()))
        self.stopping.set()
        self.wake.set()
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in self.threads if thread.is_alive()]
        if alive:
            log.warning("Mail workers still busy at shutdown: %s", ", ".join(alive))
        atexit.unregister(self.stop)


def dispatcher(app):
    """The app's pool: pass the real app object, never the `current_app` proxy."""
    return app.extensions["outbox"]


def init_app(app):
    """A pool per app, started by the first commit that queues mail or the first request."""
    app.extensions["outbox"] = Dispatcher(app)
    app.before_request(app.extensions["outbox"].start)


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session):
    """Mail queued in a transaction leaves only once that transaction is committed.

    Queued by a request, the workers are woken once the response is sent:
    their work on it (composing, dropping, sending) then does not overlap
    the request, whose time would show what became of the message. (A worker
    still busy with earlier mail may take it sooner; the poll takes it if
    no response is ever sent.)
    """
    app = session.info.pop("outbox_app", None)
    if app is None:
        return
    pool = dispatcher(app)
    if has_request_context():
        pool.start()
        after_this_request(partial(_wake_when_sent, pool))
    else:
        pool.notify()


def _wake_when_sent(pool, response):
    response.call_on_close(pool.notify)
    return response


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session):
    session.info.pop("outbox_app", None)
