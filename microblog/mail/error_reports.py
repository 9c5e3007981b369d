"""ERROR log records mailed to ADMINS, through the outbox.

Unlike logging's SMTPHandler, this never blocks the request that failed. The
handler only formats the record and hands it to a writer thread, which adds
the outbox row in a transaction of its own: the request's transaction may be
the one that broke, and on SQLite it may hold the write lock until the
request ends, so writing from the request would wait for itself. Records
from the mail machinery itself, and from the writer, are not mailed, so a
failing mail server or database cannot feed a loop.
"""

import atexit
import logging
import os
import queue
import threading

from flask import has_request_context, request
from sqlalchemy.orm import Session

from microblog.extensions import db
from microblog.mail.outbox import new_message
from microblog.mail.workers import dispatcher

log = logging.getLogger("microblog.mail.error_reports")

# Reports waiting for the writer; in an error storm the first ones tell the story.
BACKLOG = 100
_STOP = object()


class OutboxHandler(logging.Handler):
    """ERROR records to the outbox, written by a thread of its own, off the request."""

    microblog = True  # removed by configure_logging when another app is configured

    def __init__(self, app):
        super().__init__(level=logging.ERROR)
        self.app = app
        self.reports = queue.Queue(maxsize=BACKLOG)
        self.writer = None
        self.pid = None
        self.addFilter(lambda record: not record.name.startswith("microblog.mail"))

    def emit(self, record):
        """Queue the report for the writer thread: never wait, never raise."""
        if threading.current_thread() is self.writer:
            return  # the writer's own trouble: reporting it could loop
        try:
            self.reports.put_nowait((subject(), self.format(record)))
        except queue.Full:
            return  # the record still reaches the other handlers (the log file)
        except Exception:
            self.handleError(record)
            return
        self.start()

    def start(self):
        """Start the writer in this process, once (after a fork, again)."""
        if self.pid == os.getpid():
            return
        with self.lock:  # logging.Handler's own (reentrant) lock
            if self.pid == os.getpid():
                return
            self.writer = threading.Thread(
                target=self.write_reports, name="mail-error-reports", daemon=True
            )
            self.writer.start()
            self.pid = os.getpid()
            atexit.register(self.stop)

    def write_reports(self):
        """The writer thread: one row per report, until `stop`; `reports.join()` waits for it."""
        while True:
            report = self.reports.get()
            try:
                if report is _STOP:
                    return
                self.save(*report)
            except Exception as exc:
                # Logged under microblog.mail, so never mailed. Not the SQL error's
                # text: it would repeat the report, parameters and all.
                log.error("An error report could not be queued: %s", type(exc).__name__)
            finally:
                self.reports.task_done()

    def save(self, title, body):
        with self.app.app_context():
            config = self.app.config
            message = new_message(
                title,
                config["MAIL_DEFAULT_SENDER"],
                config["ADMINS"],
                body,
                None,
                tag="error_report",
            )
            with Session(db.engine) as session:
                session.add(message)
                session.commit()
        dispatcher(self.app).notify()

    def stop(self, timeout=None):
        """Write the reports already queued, then stop the writer."""
        if timeout is None:
            timeout = self.app.config["MAIL_SHUTDOWN_TIMEOUT"]
        atexit.unregister(self.stop)
        writer = self.writer
        if writer is None or not writer.is_alive():
            return
        try:
            self.reports.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        writer.join(timeout)


def subject():
    """Where it failed: the route, not the path, which may carry a token."""
    if not has_request_context():
        return "Microblog failure"
    where = request.url_rule.rule if request.url_rule else "(no route)"
    return f"Microblog failure at {request.method} {where}"


def init_app(app):
    """Mail errors to the admins when there is a mail server to send them with."""
    if app.config["MAIL_SERVER"] and app.config["ADMINS"] and not app.debug:
        handler = OutboxHandler(app)
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s [in %(pathname)s:%(lineno)d]"
            )
        )
        app.logger.addHandler(handler)
        dispatcher(app).companions.append(handler)
