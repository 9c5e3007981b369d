"""Bounces: a permanent failure (a report on `flask mail bounce`, a 5xx at RCPT) stops
activity email to the address while account email still goes; nothing else changes it."""

import pytest
import sqlalchemy as sa

from microblog.auth.recovery import request_password_reset
from microblog.extensions import db
from microblog.mail import ACTIVITY, defer_email, delivery, send_email
from microblog.mail.bounces import UndeliverableAddress, permanent_at_rcpt
from support.auth import email_link
from support.outbox import outbox_rows


def report(
    recipient="susan@example.com", action="failed", status="5.1.1", to="bounces@blog.example"
):
    """A delivery status notification (RFC 3464) as an MTA writes it."""
    return (
        "From: MAILER-DAEMON@mx.example.com\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n"
        "--B\r\n"
        "Content-Type: text/plain\r\n\r\n"
        "Your message could not be delivered.\r\n"
        "--B\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: smtp; {status[0]}50 {status} mailbox\r\n"
        "--B--\r\n"
    ).encode()


def feed(app, data, *args):
    return app.test_cli_runner().invoke(args=["mail", "bounce", *args], input=data)


def marked(app):
    with app.app_context():
        return set(db.session.scalars(sa.select(UndeliverableAddress.address)))


def queue_activity(app, address="susan@example.com"):
    with app.app_context():
        send_email("New follower", None, [address], "bob follows you.\n", None, category=ACTIVITY)
        db.session.commit()


def test_a_dsn_stops_activity_mail_while_a_reset_still_goes(app, smtp, deliver, make_user):
    make_user()
    result = feed(app, report())
    assert result.exit_code == 0, result.output
    assert "failed for good: s***@example.com" in result.output
    assert marked(app) == {"susan@example.com"}
    queue_activity(app)
    with app.app_context():
        request_password_reset("susan@example.com")
    assert deliver() == 2
    (message,) = smtp.wait_for(1)
    assert "/auth/reset_password/" in message.get_body(("plain",)).get_content()
    assert [row.state for row in outbox_rows(app)] == ["dropped", "sent"]


def test_activity_mail_to_other_addresses_still_goes(app, smtp, deliver):
    feed(app, report())
    queue_activity(app, "bob@example.com")
    assert deliver() == 1
    assert smtp.wait_for(1)[0]["To"] == "bob@example.com"


def test_a_temporary_failure_changes_nothing(app, smtp, deliver):
    result = feed(app, report(action="delayed", status="4.2.2"))
    assert result.exit_code == 0
    assert "temporary failure; nothing changed" in result.output
    assert marked(app) == set()
    queue_activity(app)
    assert deliver() == 1
    assert len(smtp.wait_for(1)) == 1


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "empty input"),
        (b"\x00\xff\xfe garbage", "not an email message"),
        (b"From: a@example.com\r\nSubject: hello\r\n\r\nJust a note.\r\n", "no failed address"),
    ],
)
def test_input_that_is_no_bounce_says_so_in_one_line_and_changes_nothing(app, data, says):
    result = feed(app, data)
    assert says in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(result.output.strip().splitlines()) == 1
    assert marked(app) == set()


@pytest.mark.settings(MAIL_RETURN_PATH="bounces@blog.example")
def test_mail_leaves_from_the_return_path(app, smtp, deliver):
    queue_activity(app)
    deliver()
    assert smtp.wait_for(1)[0].envelope_sender == "bounces@blog.example"


@pytest.mark.settings(MAIL_RETURN_PATH="bounces@blog.example", MAIL_VERP=True)
def test_with_verp_a_poor_report_still_names_its_address(app, smtp, deliver):
    queue_activity(app)
    deliver()
    verp = smtp.wait_for(1)[0].envelope_sender
    assert verp == "bounces+susan=example.com@blog.example"
    # The report names a rewritten address no one sent to; its envelope names the real one.
    result = feed(
        app,
        report(recipient="x7f3@relay.internal", to="bounces@blog.example"),
        "--delivered-to",
        verp,
    )
    assert result.exit_code == 0, result.output
    assert "susan@example.com" in marked(app)


def test_a_5xx_about_the_mailbox_at_rcpt_marks_the_address(app, smtp, deliver):
    smtp.mailbox.rejected_recipients.add("susan@example.com")  # "550 5.1.1"
    queue_activity(app)
    deliver()
    assert marked(app) == {"susan@example.com"}


def test_a_4xx_at_rcpt_marks_nothing(app, smtp, deliver):
    smtp.mailbox.deferred_recipients.add("susan@example.com")
    queue_activity(app)
    deliver()
    assert marked(app) == set()


@pytest.mark.parametrize(
    ("code", "text", "permanent"),
    [
        (550, b"5.1.1 User unknown", True),
        (550, b"5.2.1 Mailbox disabled", True),
        (550, b"User unknown", True),
        (550, b"5.7.1 Relaying denied", False),  # a policy: our fault, not the address's
        (554, b"Transaction failed", False),
        (452, b"4.2.2 Mailbox full", False),
    ],
)
def test_which_refusals_at_rcpt_say_the_address_is_gone(code, text, permanent):
    assert permanent_at_rcpt(code, text) is permanent


def test_the_owner_sees_a_banner_and_can_keep_the_address(app, client, auth, make_user):
    make_user()
    auth.login()
    assert 'id="undeliverable"' not in client.get("/index").text
    feed(app, report())
    page = client.get("/index").text
    assert 'id="undeliverable"' in page
    assert "susan@example.com could not be delivered" in page
    response = client.post("/auth/keep_address")
    assert response.headers["Location"].endswith("/index") or response.headers["Location"] == "/"
    assert marked(app) == set()
    assert 'id="undeliverable"' not in client.get("/index").text


def test_keeping_the_address_is_a_post_only(app, client, auth, make_user):
    make_user()
    auth.login()
    feed(app, report())
    assert client.get("/auth/keep_address").status_code == 405
    assert marked(app) == {"susan@example.com"}


def test_verifying_the_address_again_lifts_the_mark(app, client, auth, smtp, deliver):
    auth.register()
    deliver()
    (message,) = smtp.wait_for(1)
    feed(app, report())
    assert marked(app) == {"susan@example.com"}
    auth.verify(email_link(message, "verify_email"))
    assert marked(app) == set()


def test_deferred_activity_mail_is_dropped_after_its_composer_too(app, smtp, deliver, monkeypatch):
    """A notification composed in the worker: the mark is read when it would be sent."""

    def compose_digest(message):  # a composer of the kind an activity feature registers
        message.subject, message.text_body = "Your week", "bob posted twice.\n"
        return True

    monkeypatch.setitem(delivery.composers, "test_digest", compose_digest)
    with app.app_context():
        defer_email("test_digest", "susan@example.com", tag="digest", category=ACTIVITY)
        db.session.commit()
    feed(app, report())  # the bounce arrives after the digest was queued
    assert deliver() == 1
    assert [row.state for row in outbox_rows(app)] == ["dropped"]
    assert smtp.messages == []
