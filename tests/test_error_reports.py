"""Errors mailed to ADMINS through the outbox: without blocking, and without loops."""

import logging
import time

import pytest
from sqlalchemy import event
from test_outbox_delivery import outbox_rows

from microblog.extensions import db
from microblog.mail.error_reports import OutboxHandler
from microblog.mail.outbox import OutboxMessage
from microblog.mail.workers import dispatcher
from microblog.models import User

pytestmark = pytest.mark.settings(
    ADMINS=["admin@example.com"],
    PROPAGATE_EXCEPTIONS=False,  # log and answer 500, as in production
    MAIL_WORKERS=0,
)


def reports_of(app):
    """The app's error-report handler; `.reports.join()` waits until it wrote them."""
    [handler] = [c for c in dispatcher(app).companions if isinstance(c, OutboxHandler)]
    return handler


def add_failing_view(app, write_first=False):
    def fail(token):
        if write_first:  # the request holds SQLite's write lock when the error is logged
            db.session.add(User(username="half", email="half@example.com", password_hash="x"))
            db.session.flush()
        raise RuntimeError("the view broke")

    app.add_url_rule("/fail/<token>", view_func=fail)


@pytest.mark.settings(MAIL_WORKERS=2, MAIL_POLL_INTERVAL=0.05)
def test_an_error_in_a_request_is_mailed_to_the_admins(app, smtp):
    add_failing_view(app)
    assert app.test_client().get("/fail/s3cret-token").status_code == 500

    [message] = smtp.wait_for(1, timeout=5)
    assert message["To"] == "admin@example.com"
    assert message["Subject"] == "Microblog failure at GET /fail/<token>"  # the route, not the path
    assert "RuntimeError: the view broke" in message.get_body().get_content()
    assert outbox_rows(app)[0].tag == "error_report"


def test_an_error_does_not_wait_for_the_request_s_own_transaction(app, deliver, smtp):
    """On SQLite the failed request holds the write lock until it ends: don't wait for it."""
    add_failing_view(app, write_first=True)
    started = time.monotonic()
    assert app.test_client().get("/fail/x").status_code == 500
    assert time.monotonic() - started < 2  # SQLite's busy timeout is 10 s

    reports_of(app).reports.join()
    deliver()
    assert "RuntimeError: the view broke" in smtp.wait_for(1)[0].get_body().get_content()


def test_errors_of_the_mail_machinery_are_not_mailed(app):
    logging.getLogger("microblog.mail").error("SMTP server unreachable")
    logging.getLogger("microblog.mail.delivery").error("still unreachable")
    assert reports_of(app).writer is None  # nothing was ever queued
    assert outbox_rows(app) == []


def test_an_undeliverable_report_does_not_report_itself(app, smtp, deliver, caplog):
    smtp.mailbox.rejected_recipients.add("admin@example.com")
    app.logger.error("disk full")
    reports_of(app).reports.join()
    [report] = outbox_rows(app)

    assert deliver() == 1
    assert "failed for good" in caplog.text
    reports_of(app).reports.join()
    assert [(row.id, row.state) for row in outbox_rows(app)] == [(report.id, "failed")]
    assert deliver() == 0


def test_a_failing_outbox_insert_does_not_recurse(app, caplog):
    calls = []

    def broken_database(mapper, connection, target):
        calls.append(target)
        logging.getLogger("microblog").error("insert failed")  # would be reported in turn
        raise RuntimeError("database is gone")

    event.listen(OutboxMessage, "before_insert", broken_database)
    try:
        app.logger.error("the first error")
        reports_of(app).reports.join()
    finally:
        event.remove(OutboxMessage, "before_insert", broken_database)
    assert len(calls) == 1
    assert "An error report could not be queued: RuntimeError" in caplog.text
    assert outbox_rows(app) == []
