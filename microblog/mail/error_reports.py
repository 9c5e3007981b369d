"""ERROR log records mailed to ADMINS, through the outbox.

Unlike logging's SMTPHandler, this never blocks the request that failed: the
record becomes an outbox row, written in its own transaction (the request's
may be the one that broke), and the workers send it. Records from the mail
machinery itself are not mailed, so a failing mail server cannot feed a loop.
"""

import logging
import threading

from flask import has_request_context, request
from sqlalchemy.orm import Session

from microblog.extensions import db
from microblog.mail.outbox import new_message
from microblog.mail.workers import dispatcher


class OutboxHandler(logging.Handler):
    microblog = True  # removed by configure_logging when another app is configured

    def __init__(self, app):
        super().__init__(level=logging.ERROR)
        self.app = app
        self.busy = threading.local()
        self.addFilter(lambda record: not record.name.startswith("microblog.mail"))

    def emit(self, record):
        if getattr(self.busy, "active", False):
            return  # an error while reporting an error: stop here
        self.busy.active = True
        try:
            self.enqueue(record)
        except Exception:
            self.handleError(record)
        finally:
            self.busy.active = False

    def enqueue(self, record):
        where = f" at {request.method} {request.path}" if has_request_context() else ""
        with self.app.app_context():
            config = self.app.config
            message = new_message(
                f"Microblog failure{where}",
                config["MAIL_DEFAULT_SENDER"],
                config["ADMINS"],
                self.format(record),
                None,
                tag="error_report",
            )
            with Session(db.engine) as session:
                session.add(message)
                session.commit()
        dispatcher(self.app).notify()


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
