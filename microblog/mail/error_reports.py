"""ERROR log records mailed to ADMINS, through the outbox.

Unlike logging's SMTPHandler, this never blocks the request that failed. The
handler only formats the record and hands it to a writer thread, which adds
the outbox row in a transaction of its own: the request's transaction may be
the one that broke, and on SQLite it may hold the write lock until the
request ends, so writing from the request would wait for itself. Records
from the mail machinery itself, and from the writer, are not mailed, so a
failing mail server or database cannot feed a loop.

Reports cannot flood the admins: the decision is taken in the database, so
it holds across every process of the deployment. The first failure of a
kind (route and exception type) is mailed; repeats within
ERROR_REPORT_WINDOW seconds are only counted, and the count goes into the
next report of that kind; and no more than ERROR_REPORTS_PER_HOUR reports
are queued in any hour.
"""

import atexit
import hashlib
import logging
import os
import queue
import threading
from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import has_request_context, request
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from microblog import clock
from microblog.extensions import db
from microblog.mail.outbox import OutboxMessage, new_message
from microblog.mail.workers import dispatcher

log = logging.getLogger("microblog.mail.error_reports")

# Reports waiting for the writer; in an error storm the first ones tell the story.
BACKLOG = 100
_STOP = object()
NEVER = datetime(1970, 1, 1)  # a kind seen but never mailed (the hourly cap held it back)


class ErrorReportKind(db.Model):
    """A kind of failure (route and exception type): when last mailed, and repeats since."""

    __tablename__ = "error_report_kind"
    key: so.Mapped[str] = so.mapped_column(sa.String(64), primary_key=True)  # sha256 hex
    sent_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime)
    repeats: so.Mapped[int] = so.mapped_column(default=0)


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
            self.reports.put_nowait((subject(), kind_of(record), self.format(record)))
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

    def save(self, title, kind, body):
        """Queue the report if its kind is due and the hourly cap allows, in one transaction."""
        with self.app.app_context():
            config = self.app.config
            with Session(db.engine) as session:
                earlier = claim_report(session, kind, config)
                if earlier is None:
                    session.commit()
                    return
                if earlier:
                    body = (
                        f"{body}\n\nThe same failure happened {earlier} more time(s) "
                        "since the last report; those were not mailed."
                    )
                session.add(
                    new_message(
                        title,
                        config["MAIL_DEFAULT_SENDER"],
                        config["ADMINS"],
                        body,
                        None,
                        tag="error_report",
                    )
                )
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


def kind_of(record):
    """What makes two failures the same: where (the route) and what (exception type or message)."""
    if record.exc_info and record.exc_info[0] is not None:
        what = record.exc_info[0].__qualname__
    else:
        what = f"{record.name}: {record.msg}"  # the template, not the formatted values
    return hashlib.sha256(f"{subject()}\0{what}".encode()).hexdigest()


def claim_report(session, kind, config):
    """Count this failure; None if it must not be mailed now, else the repeats it reports.

    Every process goes through the same row: the counting UPDATE takes its
    lock (PostgreSQL's row lock, SQLite's write lock), so of the processes
    that fail at once exactly one finds the kind due and mails it.
    """
    now = clock.utcnow()
    insert = (postgresql if session.bind.dialect.name == "postgresql" else sqlite).insert
    session.execute(
        insert(ErrorReportKind)
        .values(key=kind, sent_at=NEVER, repeats=0)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    row = ErrorReportKind.__table__.c
    session.execute(
        sa.update(ErrorReportKind).where(row.key == kind).values(repeats=row.repeats + 1)
    )
    sent_at, repeats = session.execute(
        sa.select(row.sent_at, row.repeats).where(row.key == kind)
    ).one()
    if now - sent_at < timedelta(seconds=config["ERROR_REPORT_WINDOW"]):
        return None
    last_hour = session.scalar(
        sa.select(sa.func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.tag == "error_report")
        .where(OutboxMessage.created_at > now - timedelta(hours=1))
    )
    if last_hour >= config["ERROR_REPORTS_PER_HOUR"]:
        return None
    session.execute(
        sa.update(ErrorReportKind).where(row.key == kind).values(sent_at=now, repeats=0)
    )
    return repeats - 1


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
