"""The sender threads of one process: an adaptive pool under a circuit.

Started lazily, with the real app object (never the `current_app` proxy):
by the first transaction that queues mail, or by the first request, so that
a restarted process also sends what its predecessor left pending (or by
`flask mail worker`, for a process of its own). The threads are daemons so
that they never hold a process open, and an exit hook asks them to finish
the message in hand and stop, within gunicorn's graceful timeout. How many
threads run is `pool.ConnectionLimit`'s; whether they deliver or probe a
server that is down is `circuit.Circuit`'s.
"""

import atexit
import itertools
import logging
import os
import threading
import time
from functools import partial

from flask import after_this_request, has_request_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from microblog import clock
from microblog.extensions import db
from microblog.mail import metrics
from microblog.mail.circuit import Circuit
from microblog.mail.delivery import (
    deliver_batch,
    describe,
    fail_overdue,
    is_throttling,
    new_link,
    probe_server,
    server_answered,
)
from microblog.mail.housekeeping import Schedule
from microblog.mail.pool import ConnectionLimit

log = logging.getLogger("microblog.mail")

# Seconds between two writes, during an outage, of the circuit's state and of the
# messages whose deadline passed (the probes themselves may come every second).
OUTAGE_RECORD_INTERVAL = 10


class Dispatcher:
    """The mail worker threads of one app in one process (`app.extensions["outbox"]`)."""

    def __init__(self, app):
        config = app.config
        self.app = app
        self.size = config["MAIL_WORKERS"]
        self.limit = ConnectionLimit(
            self.size,
            config["MAIL_MAX_CONNECTIONS"],
            config["MAIL_THROTTLE_MEMORY"],
            config["MAIL_PROBE_MIN_DELAY"],
        )
        self.circuit = Circuit(config["MAIL_PROBE_MIN_DELAY"], config["MAIL_PROBE_MAX_DELAY"])
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.threads = []
        # Other background threads of this app's mail (the error reports), stopped with it.
        self.companions = []
        self.pid = None
        self.lock = threading.RLock()  # start() holds it while spawning
        self.numbers = itertools.count()
        self.backlog = False  # the last claim was a full batch
        self.sent = 0  # messages delivered by this process, for `flask mail worker`'s log
        self.recorded = float("-inf")  # when the open circuit was last written to the database
        self.housekeeping = Schedule()  # the tables' trimming, when idle (housekeeping.py)

    def notify(self):
        """New mail was committed: start the pool if needed and wake it."""
        if self.size <= 0:
            return  # synchronous mode: `flask mail send-pending` or the tests deliver
        self.start()
        self.wake.set()

    def running(self):
        return self.pid == os.getpid()

    def start(self, size=None):
        """Start the pool in this process, once; cheap enough to call on every request.

        After a fork (gunicorn --preload) the threads did not come along, so
        the child starts its own. After `stop()` the pool stays stopped.
        `size` overrides MAIL_WORKERS (`flask mail worker`).
        """
        if size is not None:
            self.size = self.limit.floor = size
            self.limit.ceiling = max(size, self.limit.ceiling)
        if self.size <= 0 or self.running():
            return
        with self.lock:
            if self.running():
                return
            self.stopping.clear()
            self.pid = os.getpid()
            for _ in range(self.size):
                self.spawn(want_more=False)
            for companion in self.companions:  # other work of this process (run_beside_workers)
                getattr(companion, "start", lambda: None)()
            atexit.register(self.stop)

    def spawn(self, want_more=True):
        """One more sender thread, if the limit has room for it."""
        name = f"mail-worker-{next(self.numbers)}"
        if self.stopping.is_set() or not self.limit.admit(name, want_more):
            return
        thread = threading.Thread(target=self.run, args=(self.app,), name=name, daemon=True)
        with self.lock:
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def connected(self, me):
        """The server accepted a connection: if it was the one added for a backlog, try the next.

        So the pool grows at the pace of the server's answers, not of the batches.
        """
        if self.limit.connected(me, True) and self.backlog:
            self.spawn()

    def grow(self):
        """A full batch: a backlog. Try one more connection, and wake any sleeping sender."""
        self.backlog = True
        self.spawn()
        self.wake.set()

    def run(self, app):
        """Deliver batches while there are any; probe while the server is down; then sleep."""
        me = threading.current_thread().name
        link = None
        try:
            while not self.stopping.is_set():
                if self.circuit.is_open:
                    link = self.close_link(link, me)
                    if self.circuit.take_probe():
                        with app.app_context():
                            self.probe()
                    else:
                        self.wake.wait(min(self.circuit.seconds_to_probe(), 1.0))
                    continue
                self.wake.clear()
                retire = []
                with app.app_context():
                    if link is None:
                        link = new_link()
                        link.on_connect = partial(self.connected, me)
                    try:
                        outcome = deliver_batch(
                            link,
                            app.config["MAIL_BATCH_SIZE"],
                            self.stopping,
                            lambda exc, retire=retire: retire.append(self.server_failed(me, exc)),
                            self.circuit,
                            self.grow,
                            senders=self.limit.running,
                        )
                    except Exception:
                        log.exception("Mail worker failed; it will try again")
                        outcome = None
                if outcome is None or outcome.claimed < app.config["MAIL_BATCH_SIZE"]:
                    self.backlog = False
                if outcome is not None and outcome.failure is not None and not outcome.claimed:
                    link = self.close_link(link, me)
                    if any(retire):
                        return  # refused before claiming: the server's cap for us is full
                    continue
                if outcome is None or outcome.claimed == 0:
                    link = self.close_link(link, me)
                    if self.limit.leave(me, idle=True):
                        return
                    self.housekeeping.maybe_run(app)
                    self.wake.wait(app.config["MAIL_POLL_INTERVAL"])
                    continue
                self.sent += outcome.sent
                if outcome.sent:
                    self.limit.connected(me, True)
                    self.circuit.delivered()
                if outcome.failure is not None:
                    link = self.close_link(link, me)
                    if any(retire):
                        return  # retired: the server has a connection cap for us
                    continue
                if self.limit.leave(me, idle=False):
                    return
        except BaseException:
            self.limit.exit(me)
            raise
        finally:
            self.close_link(link, me)
        self.limit.exit(me)

    def close_link(self, link, me):
        if link is not None:
            link.close()
        self.limit.connected(me, False)
        return None

    def server_failed(self, me, exc):
        """Throttled while other connections work: retire (True). Else trip the circuit."""
        if is_throttling(exc) and self.limit.throttled(me):
            log.info(
                "Mail server throttles (%s): %d connection(s) from this process for now",
                describe(exc),
                self.limit.current(),
            )
            return True
        if self.circuit.trip(describe(exc), server_answered(exc)):
            self.recorded = clock.monotonic()
            metrics.set_circuit(db.session, True)
        return False

    def probe(self):
        """Test the server; on success every sender resumes and the held mail leaves at once."""
        try:
            probe_server()
        except Exception as exc:
            self.circuit.probe_failed(server_answered(exc))
            if clock.monotonic() - self.recorded < OUTAGE_RECORD_INTERVAL:
                return  # probes of a silent port come every second: the database need not
            self.recorded = clock.monotonic()
            try:
                fail_overdue(db.session)
                metrics.set_circuit(db.session, True)
            except Exception:
                db.session.rollback()
                log.exception("Could not record the mail circuit")
            return
        self.circuit.close()
        self.wake.set()
        try:
            metrics.set_circuit(db.session, False)
        except Exception:
            db.session.rollback()
            log.exception("Could not record the mail circuit")

    def stop(self, timeout=None):
        """Let each worker finish the message in hand, then return within `timeout` in all."""
        if timeout is None:
            timeout = self.app.config["MAIL_SHUTDOWN_TIMEOUT"]
        deadline = time.monotonic() + timeout
        for companion in self.companions:  # first, so that what they queue is not left behind
            companion.stop(max(0.0, deadline - time.monotonic()))
        self.stopping.set()
        self.wake.set()
        for thread in list(self.threads):
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
