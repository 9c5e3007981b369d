"""Password recovery against its attackers: races, leaks, enumeration, and what follows a reset."""

import logging
import threading
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from microblog.auth import recovery
from microblog.auth.passwords import hash_password, verify_password
from microblog.auth.tokens import make_reset_token
from microblog.extensions import db
from microblog.mail.outbox import OutboxMessage
from microblog.models import User
from support.auth import PASSWORD, AuthActions, flashes, reset_link
from support.smtp import html_of, text_of

NEW_PASSWORD = "a brand new passphrase, never used"


@pytest.fixture
def emailed_link(auth, make_user, deliver, smtp):
    """Susan asks for a reset; the path of the link she is sent."""
    make_user("susan")
    auth.request_reset()
    deliver()
    [message] = smtp.wait_for(1)
    smtp.mailbox.clear()
    return urlsplit(reset_link(message)).path


def open_link(client, path):
    first = client.get(path)
    assert first.headers["Location"] == "/auth/reset_password"
    return first, client.get("/auth/reset_password")


def submit_new_password(client, password=NEW_PASSWORD):
    return client.post("/auth/reset_password", data={"password": password, "password2": password})


def password_works(app, password, username="susan"):
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == username))
        return verify_password(user.password_hash, password)


# --- Django's trick: the token leaves the URL before any page shows -----------------------


def test_the_link_moves_the_token_into_the_session_and_out_of_the_url(client, emailed_link):
    token = emailed_link.rsplit("/", 1)[1]
    redirect, form = open_link(client, emailed_link)

    assert token not in redirect.headers["Location"]
    assert redirect.headers["Referrer-Policy"] == "no-referrer"
    assert redirect.headers["Cache-Control"] == "no-store"

    assert 'name="password2"' in form.text
    assert token not in form.text
    assert form.headers["Cache-Control"] == "no-store"
    # A page that sends a Referer to this origin only (see test_csrf for why not no-referrer).
    assert form.headers["Referrer-Policy"] == "same-origin"

    refused = client.post("/auth/reset_password", data={"password": "short", "password2": "short"})
    assert refused.status_code == 200
    assert refused.headers["Cache-Control"] == "no-store"
    assert token not in refused.text


# --- Two submissions of one link -------------------------------------------------------------


def test_two_simultaneous_submissions_of_one_link_set_the_password_once(
    app, emailed_link, deliver, smtp, caplog, monkeypatch
):
    """Both requests pass the token check and read the old hash; then the UPDATE decides.

    The real hash function is wrapped with a barrier: each request waits there,
    after its checks and before its write, until the other arrives. A
    read-then-write would then let both win, on SQLite as on PostgreSQL.
    """
    both_checked = threading.Barrier(2, timeout=5)

    def hash_when_both_checked(password):
        both_checked.wait()
        return hash_password(password)

    monkeypatch.setattr(recovery, "hash_password", hash_when_both_checked)
    browsers = [app.test_client(), app.test_client()]
    for browser in browsers:
        open_link(browser, emailed_link)
    passwords = ["first of two new passphrases", "second of two new passphrases"]
    answers = [None, None]

    def submit(index):
        answers[index] = submit_new_password(browsers[index], passwords[index])

    threads = [threading.Thread(target=submit, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    winners = [i for i, answer in enumerate(answers) if answer.headers.get("Location")]
    assert len(winners) == 1
    [winner] = winners
    assert answers[winner].headers["Location"] == "/auth/login"
    assert answers[1 - winner].status_code == 400
    assert "This link is not valid" in answers[1 - winner].text
    # The loser got past the token check: the compare-and-swap stopped it.
    assert caplog.text.count("password_reset.rejected reason=already_used") == 1
    assert password_works(app, passwords[winner])
    assert not password_works(app, passwords[1 - winner])

    deliver()
    assert [m["Subject"] for m in smtp.wait_for(1)] == ["[Microblog] Your password was changed"]


# --- After a reset ---------------------------------------------------------------------------


def test_a_reset_signs_out_every_session_and_remember_me_cookie(app, client, emailed_link):
    laptop, phone, remembered = app.test_client(), app.test_client(), app.test_client()
    AuthActions(laptop).login(remember_me=True)
    AuthActions(phone).login()
    remember_cookie = laptop.get_cookie("remember_token")
    assert remember_cookie is not None
    remembered.set_cookie("remember_token", remember_cookie.value)
    for device in (laptop, phone, remembered):
        assert device.get("/index").status_code == 200

    open_link(client, emailed_link)
    assert submit_new_password(client).headers["Location"] == "/auth/login"

    for device in (laptop, phone, remembered):
        assert device.get("/index").headers["Location"] == "/auth/login?next=%2Findex"


def test_a_reset_does_not_sign_the_user_in(client, emailed_link):
    open_link(client, emailed_link)
    done = submit_new_password(client)
    assert done.headers["Location"] == "/auth/login"
    assert "Your password has been reset" in " ".join(flashes(client.get("/auth/login")))
    assert client.get("/index").headers["Location"] == "/auth/login?next=%2Findex"


def test_signing_in_forgets_an_opened_link(app, client, auth, emailed_link):
    """On a shared computer, the next person must not find the form still armed.

    The session then ends without the sign-out view (signed out from another
    device), so only the sign-in can have forgotten the link.
    """
    _, form = open_link(client, emailed_link)
    assert 'name="password2"' in form.text
    auth.login()
    other = AuthActions(app.test_client())
    other.login()
    other.client.post("/auth/sessions/revoke_others")
    assert client.get("/index").headers["Location"].startswith("/auth/login")
    assert "This link is not valid" in client.get("/auth/reset_password").text


def test_signing_out_forgets_an_opened_link(client, auth, emailed_link):
    """Whatever the session holds at sign-out (here a link kept by an older version) goes."""
    link = emailed_link
    auth.login()
    with client.session_transaction() as session:
        session["reset_token"] = link.rsplit("/", 1)[1]
    auth.logout()
    assert "This link is not valid" in client.get("/auth/reset_password").text


def test_the_owner_is_told_without_a_token_or_password_and_can_react(
    client, emailed_link, deliver, smtp
):
    open_link(client, emailed_link)
    submit_new_password(client)
    deliver()
    [notice] = smtp.wait_for(1)

    assert notice["To"] == "susan@example.com"
    assert notice.envelope_recipients == ["susan@example.com"]
    assert notice["Subject"] == "[Microblog] Your password was changed"
    for body in (text_of(notice), html_of(notice)):
        assert "/auth/reset_password/" not in body
        assert emailed_link.rsplit("/", 1)[1] not in body
        assert NEW_PASSWORD not in body and PASSWORD not in body
        assert "If it was not you" in body
        assert "http://localhost/auth/reset_password_request" in body


# --- No enumeration --------------------------------------------------------------------------


def answer_to_reset_request(app, email):
    """Everything a visitor can see: status, headers but the cookie values, page, next flash."""
    client = app.test_client()
    response = client.post("/auth/reset_password_request", data={"email": email})
    cookies = sorted(
        [part for part in cookie.split("; ") if not part.startswith("session=")]
        for cookie in response.headers.getlist("Set-Cookie")
    )
    headers = sorted(
        (name, value) for name, value in response.headers.items() if name != "Set-Cookie"
    )
    return response.status_code, headers, cookies, response.text, flashes(client.get("/auth/login"))


def reset_rows(app):
    with app.app_context():
        return db.session.scalars(
            sa.select(OutboxMessage).where(OutboxMessage.tag == "password_reset")
        ).all()


def test_registered_unknown_throttled_and_failing_addresses_get_the_same_answer(
    app, make_user, deliver, smtp
):
    make_user("susan")
    make_user("tom")
    make_user("mallory")
    for _ in range(app.config["ACCOUNT_EMAILS_PER_HOUR"]):
        answer_to_reset_request(app, "tom@example.com")
    deliver()
    smtp.wait_for(3)
    smtp.mailbox.clear()
    smtp.mailbox.rejected_recipients = {"mallory@example.com"}
    before = len(reset_rows(app))

    cases = ["susan@example.com", "nobody@example.com", "tom@example.com", "mallory@example.com"]
    answers = [answer_to_reset_request(app, email) for email in cases]
    assert all(answer == answers[0] for answer in answers)
    assert answers[0][4] == ["Check your email for the instructions to reset your password."]

    # The same work for each: one row, written before anyone knows who owns the address.
    new_rows = reset_rows(app)[before:]
    assert [(row.kind, row.user_id, row.subject) for row in new_rows] == [
        ("password_reset", None, "")
    ] * 4

    deliver()
    assert [m["To"] for m in smtp.wait_for(1)] == ["susan@example.com"]
    assert {row.recipient_list[0]: row.state for row in reset_rows(app)[before:]} == {
        "susan@example.com": "sent",
        "nobody@example.com": "dropped",
        "tom@example.com": "dropped",
        "mallory@example.com": "failed",
    }


# --- Which address gets the mail -------------------------------------------------------------


def test_lookup_uses_the_normalised_address_and_mail_goes_to_the_stored_one(
    client, auth, deliver, smtp
):
    auth.sign_up("susan", email="Susan@Exämple.COM")
    assert auth.request_reset("  SUSAN@exÄmple.com ").headers["Location"] == "/auth/login"
    deliver()
    message = smtp.wait_for(2)[-1]
    assert message["To"] == "susan@xn--exmple-cua.com"
    assert message.envelope_recipients == ["susan@xn--exmple-cua.com"]
    assert auth.login("SUSAN@exämple.com").headers["Location"] == "/index"  # login too


@pytest.mark.parametrize(
    "typed",
    [
        "susan@example.com\r\nBcc: victim@example.com",
        "susan@example.com\nvictim@example.com",
        "susan@example.com\r\n",
        "susan@example.com, victim@example.com",
        "susan@example.com;victim@example.com",
        "susan@example.com victim@example.com",
        "Susan <susan@example.com>",
        ["susan@example.com", "victim@example.com"],
    ],
    ids=["CRLF header", "LF", "trailing CRLF", "comma list", "semicolon list", "space list",
         "display name", "field twice"],
)  # fmt: skip
def test_a_list_or_line_break_in_the_address_is_a_form_error(app, client, make_user, typed):
    make_user("susan")
    response = client.post("/auth/reset_password_request", data={"email": typed})
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert 'class="invalid-feedback"' in response.text
    assert reset_rows(app) == []


# --- Audit log, and nothing secret in any log ------------------------------------------------


def test_the_audit_log_tells_the_story_without_tokens_passwords_or_addresses(
    app, client, auth, deliver, smtp, caplog
):
    caplog.set_level(logging.DEBUG)
    auth.sign_up("susan", email="Susan@Example.com")
    auth.login()
    auth.logout()
    auth.request_reset("Susan@Example.com")
    auth.request_reset("nobody@example.com")
    deliver()
    link = urlsplit(reset_link(smtp.wait_for(2)[-1])).path
    open_link(client, link)
    submit_new_password(client)
    open_link(client, link)  # used: rejected
    client.post(link, data={"password": NEW_PASSWORD, "password2": NEW_PASSWORD})
    deliver()
    smtp.wait_for(3)

    # Every record of the app and its libraries; not the test's own SMTP server's.
    records = [r for r in caplog.records if not r.name.startswith(("mail.log", "aiosmtpd"))]
    audit = [r.getMessage() for r in records if r.name == "microblog.audit"]
    for event in (
        "password_reset.requested",
        "email.sent",
        "password_reset.completed",
        "password_reset.rejected",
    ):
        assert any(line.startswith(event) for line in audit), event
    assert any("tag=password_reset" in line for line in audit if line.startswith("email.sent"))

    token = link.rsplit("/", 1)[1]
    secrets = [token, token[:40], PASSWORD, NEW_PASSWORD, "susan@example.com", "nobody@example"]
    logged = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.stack_info or ''}" for r in records
    ).lower()
    for secret in secrets:
        assert secret.lower() not in logged, secret


@pytest.mark.settings(PROPAGATE_EXCEPTIONS=False)
def test_a_failing_reset_logs_no_token(app, client, make_user, caplog, monkeypatch):
    """Flask logs "Exception on <path>", and the reset form's POST URL holds the token.

    The record is also the body of the admins' error report.
    """
    user_id = make_user("susan")
    with app.app_context():
        token = make_reset_token(db.session.get(User, user_id))

    def broken(password):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(recovery, "hash_password", broken)
    data = {"password": NEW_PASSWORD, "password2": NEW_PASSWORD}
    assert client.post(f"/auth/reset_password/{token}", data=data).status_code == 500
    assert "Exception on /auth/reset_password/<token> [POST]" in caplog.text
    assert token not in caplog.text
