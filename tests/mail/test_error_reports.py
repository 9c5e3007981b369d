"""Errors mailed to ADMINS through the outbox: without blocking, and without loops."""

import logging
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from microblog import clock
from microblog.extensions import db
from microblog.mail.error_reports import OutboxHandler
from microblog.mail.outbox import OutboxMessage
from microblog.mail.workers import dispatcher
from microblog.models import User
from support.app import build_app, close_app
from support.outbox import outbox_rows

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
    """On SQLite the failed request holds the write lock until it ends: the report waits, not it.

    The writer is held back until the request has answered: had the request
    waited for the report to be written, it could not have answered.
    """
    handler = reports_of(app)
    request_done = threading.Event()
    real_save = handler.save

    def save_after_the_request(*report):
        assert request_done.wait(10), "the request waited for its own report"
        real_save(*report)

    handler.save = save_after_the_request
    add_failing_view(app, write_first=True)
    assert app.test_client().get("/fail/x").status_code == 500
    request_done.set()

    handler.reports.join()
    deliver()
    assert "RuntimeError: the view broke" in smtp.wait_for(1)[0].get_body().get_content()
    with app.app_context():
        assert db.session.scalar(sa.select(User).filter_by(username="half")) is None


def fail_times(app, count, path="/fail/x"):
    client = app.test_client()
    for _ in range(count):
        assert client.get(path).status_code == 500
    reports_of(app).reports.join()


def report_rows(app):
    return [row for row in outbox_rows(app) if row.tag == "error_report"]


def test_repeats_of_one_failure_are_mailed_once_and_counted_into_the_next_report(app, monkeypatch):
    add_failing_view(app)
    fail_times(app, 5)
    [first] = report_rows(app)
    assert "more time" not in first.text_body

    later = clock.utcnow() + timedelta(seconds=app.config["ERROR_REPORT_WINDOW"] - 5)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    fail_times(app, 1)
    assert len(report_rows(app)) == 1  # still within the window

    later += timedelta(seconds=10)
    fail_times(app, 1)
    first, second = report_rows(app)
    assert "happened 5 more time(s) since the last report" in second.text_body


def test_another_exception_on_the_same_route_is_another_report(app):
    def fail(kind):
        raise {"value": ValueError, "key": KeyError}.get(kind, RuntimeError)("broke")

    app.add_url_rule("/fail/<kind>", view_func=fail)
    fail_times(app, 3, "/fail/value")
    fail_times(app, 3, "/fail/key")
    fail_times(app, 3, "/fail/value")
    bodies = [row.text_body for row in report_rows(app)]
    assert len(bodies) == 2
    assert "ValueError" in bodies[0] and "KeyError" in bodies[1]


@pytest.mark.settings(ERROR_REPORTS_PER_HOUR=2)
def test_the_hourly_cap_holds_across_kinds(app):
    for number in range(5):
        app.logger.error("failure number %s of kind %s", number, number)  # same template
        app.logger.error(f"a failure of its own kind {number}")
    reports_of(app).reports.join()
    assert len(report_rows(app)) == 2


@pytest.mark.settings(ERROR_REPORTS_PER_HOUR=2)
def test_the_hourly_cap_counts_the_last_hour_only(app, monkeypatch):
    for number in range(3):
        app.logger.error(f"a failure of its own kind {number}")
    reports_of(app).reports.join()
    assert len(report_rows(app)) == 2

    later = clock.utcnow() + timedelta(minutes=61)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    app.logger.error("a failure of its own kind, an hour later")
    reports_of(app).reports.join()
    assert len(report_rows(app)) == 3


def test_one_writer_thread_serves_every_error_of_the_process(app):
    handler = reports_of(app)
    writers = set()
    for number in range(3):
        app.logger.error(f"a failure of its own kind {number}")
        writers.add(handler.writer)
    handler.reports.join()
    [writer] = writers
    assert writer.is_alive() and writer.daemon  # a daemon: it never holds the process open


def test_stopping_writes_the_queued_reports_then_ends_the_writer(app):
    handler = reports_of(app)
    for number in range(3):
        app.logger.error(f"a failure of its own kind {number}")
    writer = handler.writer
    handler.stop()
    assert not writer.is_alive()
    assert len(report_rows(app)) == 3


@pytest.mark.settings(MAIL_WORKERS=1, MAIL_POLL_INTERVAL=60)
def test_a_report_wakes_the_mail_worker_instead_of_waiting_for_its_poll(app, smtp, caplog):
    add_failing_view(app)
    assert app.test_client().get("/fail/x").status_code == 500
    [message] = smtp.wait_for(1, timeout=10)  # the next poll is a minute away
    assert message["To"] == "admin@example.com"
    assert "could not be queued" not in caplog.text


def test_sql_parameters_never_reach_the_report(app):
    def leak(token):
        db.session.execute(sa.text("SELECT * FROM no_such_table WHERE x = :v"), {"v": token})

    app.add_url_rule("/leak/<token>", view_func=leak)
    assert app.test_client().get("/leak/s3cret-value").status_code == 500
    reports_of(app).reports.join()
    [report] = report_rows(app)
    assert "no_such_table" in report.text_body
    assert "s3cret-value" not in report.text_body
    assert "SQL parameters hidden" in report.text_body


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


@pytest.mark.parametrize(
    "settings",
    [{"ADMINS": []}, {"MAIL_SERVER": None}, {"DEBUG": True}],
    ids=["no admins", "no mail server", "debug"],
)
def test_no_reports_without_admins_or_a_mail_server_or_in_debug(database_url, smtp, settings):
    app = build_app(database_url, smtp, **settings)
    try:
        handlers = [c for c in dispatcher(app).companions if isinstance(c, OutboxHandler)]
        assert handlers == []
        app.logger.error("a failure nobody is told of")
        assert report_rows(app) == []
    finally:
        close_app(app)


def test_the_same_exception_on_another_route_is_another_report(app):
    """A kind is the route and the exception: one broken page does not hide another."""

    def fail():
        raise RuntimeError("broke")

    app.add_url_rule("/a", "fail_a", fail)
    app.add_url_rule("/b", "fail_b", fail)
    fail_times(app, 1, "/a")
    fail_times(app, 1, "/b")
    subjects = [row.subject for row in report_rows(app)]
    assert subjects == ["Microblog failure at GET /a", "Microblog failure at GET /b"]
