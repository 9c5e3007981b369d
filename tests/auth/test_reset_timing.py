"""No timing oracle at the reset request: the same work whoever owns the address.

The request path writes one row whatever the address (test_reset_hardening.py);
these tests hold the two things that keep the mail worker's work out of the
request times: the workers see a request's message only once its response
is sent, and the worker does the same work for every address (lookup, lock,
count, token, both templates, the MIME message) until it sends or drops.
The figures are measured through gunicorn by
tests/benchmarks/bench_reset_enumeration.py.
"""

import pytest
import sqlalchemy as sa
from flask import template_rendered

from microblog.auth.emails import RESET_TAG, stand_in
from microblog.auth.recovery import request_password_reset
from microblog.auth.tokens import make_reset_token, user_for_reset_token
from microblog.extensions import db
from microblog.mail import delivery
from microblog.mail.outbox import OutboxMessage, defer_email
from microblog.mail.workers import dispatcher


@pytest.fixture
def notified(app, monkeypatch):
    """Every wake-up of the app's mail workers, recorded before it happens."""
    pool = dispatcher(app)
    calls = []
    real = pool.notify

    def notify():
        calls.append("notify")
        real()

    monkeypatch.setattr(pool, "notify", notify)
    return calls


@pytest.mark.settings(MAIL_WORKERS=2, MAIL_POLL_INTERVAL=3600)
def test_the_workers_see_a_reset_request_only_once_its_response_is_sent(
    app, client, make_user, notified, smtp
):
    make_user("susan")
    response = client.post("/auth/reset_password_request", data={"email": "susan@example.com"})
    assert response.headers["Location"] == "/auth/login"
    assert notified == []  # committed, answered, but not yet sent to the client
    response.close()  # what the server does once the last byte is written
    assert notified == ["notify"]
    [message] = smtp.wait_for(1)
    assert message["To"] == "susan@example.com"


@pytest.mark.settings(MAIL_WORKERS=2, MAIL_POLL_INTERVAL=3600)
def test_mail_queued_outside_a_request_wakes_the_workers_at_commit(app, notified):
    with app.app_context():
        defer_email(RESET_TAG, "nobody@example.com", tag=RESET_TAG)
        assert notified == []
        db.session.commit()
    assert notified == ["notify"]


@pytest.fixture
def worker_work(app, monkeypatch):
    """What the reset composer runs (SQL, templates) and the MIME messages built, per delivery."""
    work = {"sql": [], "templates": [], "mime": 0}
    composing = []
    real_composer = delivery.composers[RESET_TAG]

    def composer(message):
        composing.append(True)
        try:
            return real_composer(message)
        finally:
            composing.pop()

    def statement(conn, cursor, sql, parameters, context, executemany):
        if composing:
            work["sql"].append(sql)

    def rendered(sender, template, context, **extra):
        work["templates"].append(template.name)

    real_wire_bytes = delivery.wire_bytes

    def wire_bytes(message):
        work["mime"] += 1
        return real_wire_bytes(message)

    monkeypatch.setitem(delivery.composers, RESET_TAG, composer)
    monkeypatch.setattr(delivery, "wire_bytes", wire_bytes)
    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", statement)
    template_rendered.connect(rendered, app)
    yield work
    template_rendered.disconnect(rendered, app)
    sa.event.remove(engine, "before_cursor_execute", statement)


def work_for(app, deliver, work, address):
    """The worker's work for one reset request for `address`, and the row's final state."""
    for key in work:
        work[key] = [] if key != "mime" else 0
    with app.test_request_context():
        request_password_reset(address)  # the row, with the account's stamp if any
        row_id = db.session.scalar(sa.select(sa.func.max(OutboxMessage.id)))
    assert deliver() == 1
    with app.app_context():
        row = db.session.get(OutboxMessage, row_id)
        return dict(work), row.state


def test_the_worker_does_the_same_work_for_registered_unknown_and_throttled_addresses(
    app, make_user, deliver, smtp, worker_work
):
    make_user("susan")
    make_user("tom")
    for _ in range(app.config["ACCOUNT_EMAILS_PER_HOUR"]):
        work_for(app, deliver, worker_work, "tom@example.com")
    registered, sent = work_for(app, deliver, worker_work, "susan@example.com")
    unknown, dropped_unknown = work_for(app, deliver, worker_work, "nobody@example.com")
    throttled, dropped_throttled = work_for(app, deliver, worker_work, "tom@example.com")

    assert (sent, dropped_unknown, dropped_throttled) == ("sent", "dropped", "dropped")
    # The same statements, in the same order: lookup, lock of the account's row, count.
    assert len(registered["sql"]) == 3
    assert unknown["sql"] == registered["sql"]
    assert throttled["sql"] == registered["sql"]
    # The same email written, and the same MIME message built (sent, or thrown away).
    assert registered["templates"] == ["email/reset_password.txt", "email/reset_password.html"]
    assert unknown["templates"] == registered["templates"]
    assert throttled["templates"] == registered["templates"]
    assert registered["mime"] == unknown["mime"] == throttled["mime"] == 1
    assert len(smtp.wait_for(4)) == 4  # tom's three, susan's one


def test_a_dropped_reset_keeps_no_email_and_no_link(app, make_user, deliver, smtp, worker_work):
    make_user("tom")
    for _ in range(app.config["ACCOUNT_EMAILS_PER_HOUR"]):
        work_for(app, deliver, worker_work, "tom@example.com")
    smtp.wait_for(3)
    for address in ("tom@example.com", "nobody@example.com"):
        _work, state = work_for(app, deliver, worker_work, address)
        assert state == "dropped"
        with app.app_context():
            row = db.session.scalars(
                sa.select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(1)
            ).one()
            assert (row.user_id, row.subject, row.text_body, row.html_body) == (None, "", "", None)
            assert row.recipient_list == [address]
    assert len(smtp.messages) == 3


def test_the_stand_in_account_of_an_unknown_address_gets_no_working_link(app, make_user):
    make_user("susan")
    with app.test_request_context():
        token = make_reset_token(stand_in("nobody@example.com"))
        assert user_for_reset_token(token) is None
        # Not even for an address that has an account meanwhile.
        assert user_for_reset_token(make_reset_token(stand_in("susan@example.com"))) is None
