"""Sign-up proves the address, without telling anyone whether it already has an account."""

import logging
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.auth import signup
from microblog.auth.signup import purge_unverified_accounts
from microblog.auth.tokens import VERIFY_EMAIL, make_token
from microblog.extensions import db
from microblog.mail.outbox import OutboxMessage
from microblog.models import User
from support.auth import PASSWORD, AuthActions, email_link, flashes, last_email, reset_link
from support.smtp import html_of, text_of

VERIFY = "Verify your email address"
SOMEONE_TRIED = "Someone tried to use your email address"


def stored_user(app, username):
    with app.app_context():
        return db.session.scalar(sa.select(User).where(User.username == username))


def user_count(app):
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(User))


def without_value(cookie):
    """A Set-Cookie header with its value taken out: name and attributes only."""
    name, _, rest = cookie.partition("=")
    return name, rest.partition(";")[2]


def answer(response, client):
    """Everything a visitor sees of a registration: status, Location, cookies, the flash."""
    cookies = sorted(without_value(c) for c in response.headers.getlist("Set-Cookie"))
    return (
        response.status_code,
        response.headers.get("Location"),
        cookies,
        flashes(client.get(response.headers["Location"])),
    )


def verification_path(smtp, to=None):
    return urlsplit(email_link(last_email(smtp, VERIFY, to), "verify_email")).path


# --- No enumeration at sign-up ---------------------------------------------------------------


def test_a_taken_and_a_free_address_get_the_same_answer_and_both_pay_for_a_hash(
    app, make_user, monkeypatch
):
    make_user("susan")
    hashed = []
    real_hash = signup.hash_password
    monkeypatch.setattr(signup, "hash_password", lambda pw: hashed.append(pw) or real_hash(pw))
    answers = {}
    for username, address in [("mallory", "SUSAN@example.com"), ("carol", "carol@example.com")]:
        client = app.test_client()
        response = client.post(
            "/auth/register",
            data={
                "username": username,
                "email": address,
                "password": PASSWORD,
                "password2": PASSWORD,
            },
        )
        answers[username] = answer(response, client)
    assert answers["mallory"] == answers["carol"]
    status, location, cookies, [message] = answers["carol"]
    assert (status, location) == (302, "/auth/login")
    assert [name for name, _ in cookies] == ["session"]
    assert "sent an email" in message
    assert hashed == [PASSWORD, PASSWORD]
    # The same trace: each holds its name, waiting, invisible, unable to sign in.
    for username in ("mallory", "carol"):
        assert stored_user(app, username).email_verified_at is None


def test_both_paths_write_one_deferred_outbox_row(app, auth, make_user):
    make_user("susan")
    auth.register("mallory", email="susan@example.com")
    auth.register("carol", email="carol@example.com")
    with app.app_context():
        rows = db.session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id)).all()
        assert [(r.kind, r.recipient_list, r.text_body) for r in rows] == [
            ("verify_email", ["susan@example.com"], ""),
            ("verify_email", ["carol@example.com"], ""),
        ]


def test_the_owner_of_a_taken_address_is_told_someone_tried(app, auth, make_user, deliver, smtp):
    make_user("susan")
    auth.register("mallory", email="susan@example.com")
    assert user_count(app) == 2  # mallory's waits, and can never be verified
    deliver()
    [message] = smtp.wait_for(1)
    assert message["Subject"] == f"[Microblog] {SOMEONE_TRIED}"
    assert message.envelope_recipients == ["susan@example.com"]
    text = text_of(message)
    assert "create a new Microblog account" in text and "Dear susan" in text
    assert "http://localhost/auth/login" in text
    assert "http://localhost/auth/reset_password_request" in text
    assert "/auth/reset_password_request" in html_of(message)
    assert "mallory" not in text  # nothing of the other person's doing but the attempt


def test_a_taken_username_stays_a_form_error(app, auth, make_user):
    make_user("susan")
    response = auth.register("susan", email="new@example.com")
    assert response.status_code == 200
    assert "Please use a different username." in response.text
    assert user_count(app) == 1


def test_a_sign_up_leaves_the_same_trace_whether_or_not_the_address_is_taken(
    app, make_user, deliver, smtp
):
    """Afterwards: the profile, the name's availability and the sign-in answer are alike."""
    make_user("susan")
    traces = []
    for probe, address in [("probe1", "susan@example.com"), ("probe2", "free@example.com")]:
        visitor = AuthActions(app.test_client())
        assert visitor.register(probe, email=address).headers["Location"] == "/auth/login"
        profile = visitor.client.get(f"/user/{probe}").status_code
        again = visitor.register(probe, email="other@example.com")
        signed_in = visitor.login(probe)
        traces.append(
            (
                profile,
                again.status_code,
                "Please use a different username." in again.text,
                signed_in.status_code,
                flashes(signed_in),
            )
        )
    assert traces[0] == traces[1]
    assert traces[0] == (404, 200, True, 200, ["Invalid username or password."])
    deliver()  # the right password on a waiting account: a fresh link, not another answer
    assert len([m for m in smtp.messages if "free@example.com" in m["To"]]) == 2


MALLORY = "purple elephants dance quietly at dawn"


def test_a_later_sign_up_on_a_waiting_address_gets_its_own_link_and_the_first_verified_wins(
    app, auth, deliver, smtp
):
    """A sign-up someone made on your address never keeps you out of it."""
    mallory, owner = AuthActions(app.test_client()), AuthActions(app.test_client())
    mallory.register(
        "mallory", email="susan@example.com", password="purple elephants dance quietly at dawn"
    )
    owner.register("susan", email="susan@example.com")
    deliver()
    links = {
        name: email_link(m, "verify_email")
        for m in smtp.messages
        for name in ("susan", "mallory")
        if f"Dear {name}," in text_of(m)
    }
    assert len(links) == 2
    assert owner.verify(links["susan"]).headers["Location"] == "/index"
    assert stored_user(app, "mallory") is None  # gone, with its password
    path = urlsplit(links["mallory"]).path
    assert mallory.client.post(path, data={"password": MALLORY}).status_code == 400
    assert stored_user(app, "susan").email_verified_at is not None


def test_attempts_on_a_taken_address_mail_its_owner_within_the_per_account_limit(
    app, auth, make_user, deliver, smtp
):
    make_user("susan")
    for n in range(4):
        auth.register(f"mallory{n}", email="susan@example.com")
    deliver()
    limit = app.config["ACCOUNT_EMAILS_PER_HOUR"]
    assert [m["Subject"] for m in smtp.wait_for(limit)] == [f"[Microblog] {SOMEONE_TRIED}"] * limit
    deliver()
    assert len(smtp.messages) == limit


# --- The verification email and link ---------------------------------------------------------


def test_a_new_address_gets_a_verification_link_in_text_and_html(app, auth, deliver, smtp):
    auth.register("susan")
    deliver()
    [message] = smtp.wait_for(1)
    assert message["Subject"] == f"[Microblog] {VERIFY}"
    assert message.envelope_recipients == ["susan@example.com"]
    link = email_link(message, "verify_email")
    assert link.startswith("http://localhost/auth/verify_email/")
    assert link in html_of(message)
    assert "48 hours" in text_of(message)
    for body in text_of(message), html_of(message):  # whose account: its password is asked
        assert "This link is for the account susan" in body


def test_an_unverified_account_cannot_sign_in_until_its_link_is_opened(
    app, client, auth, deliver, smtp
):
    auth.register("susan")
    response = auth.login()
    assert response.status_code == 200 and "Location" not in response.headers
    assert "Invalid username or password." in response.text  # as a wrong password
    assert client.get("/index").headers["Location"].startswith("/auth/login")

    deliver()
    path = verification_path(smtp)
    page = client.get(path)
    assert page.status_code == 200 and 'name="password"' in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert stored_user(app, "susan").email_verified_at is None  # the GET changes nothing
    verified = client.post(path, data={"password": PASSWORD})
    assert verified.headers["Location"] == "/index"  # verified, and signed in
    assert "Your email address is verified" in flashes(client.get("/index"))[-1]
    auth.logout()
    assert auth.login().headers["Location"] == "/index"


def test_a_wrong_password_on_an_unverified_account_says_nothing_about_verification(auth):
    auth.register("susan")
    response = auth.login(password="not the password at all")
    assert "Invalid username or password." in response.text
    assert "verified" not in response.text


def test_a_scanner_s_get_verifies_nothing_and_the_link_dies_at_use(
    app, client, auth, deliver, smtp
):
    auth.register("susan")
    deliver()
    path = verification_path(smtp)
    for _ in range(2):  # a mail gateway fetching the link, with no cookie
        assert app.test_client().get(path).status_code == 200
    assert stored_user(app, "susan").email_verified_at is None
    assert client.post(path, data={"password": PASSWORD}).headers["Location"] == "/index"
    assert stored_user(app, "susan").email_verified_at is not None
    assert app.test_client().post(path, data={"password": PASSWORD}).status_code == 400


def test_the_link_verifies_only_with_the_account_s_own_password(app, client, auth, deliver, smtp):
    """The mailbox and the password together: a link alone verifies nobody's sign-up."""
    auth.register("susan")
    deliver()
    path = verification_path(smtp)
    wrong = client.post(path, data={"password": "a password that is not hers"})
    assert wrong.status_code == 200
    assert "This is not the password of this account." in wrong.text
    assert stored_user(app, "susan").email_verified_at is None
    assert client.get("/index").headers["Location"].startswith("/auth/login")


@pytest.mark.settings(LOGIN_FAILURES_PER_ACCOUNT=3)
def test_wrong_passwords_on_the_link_count_as_failed_sign_ins(app, client, auth, deliver, smtp):
    auth.register("susan")
    deliver()
    path = verification_path(smtp)
    for _ in range(3):
        client.post(path, data={"password": "a guess that is not hers"})
    paused = client.post(path, data={"password": PASSWORD})
    assert paused.status_code == 429
    assert stored_user(app, "susan").email_verified_at is None


def test_a_verification_link_expires_after_48_hours(app, client, auth, monkeypatch):
    auth.register("susan")
    lifetime = app.config["VERIFY_TOKEN_EXPIRES_IN"]
    assert lifetime == 48 * 3600
    tokens = {}
    for name, age in [("expired", lifetime + 5), ("fresh", lifetime - 30)]:
        issued = clock.utcnow() - timedelta(seconds=age)
        with monkeypatch.context() as patch, app.app_context():
            patch.setattr(clock, "utcnow", lambda issued=issued: issued)
            tokens[name] = make_token(stored_user(app, "susan"), VERIFY_EMAIL)
    for response in (
        client.get(f"/auth/verify_email/{tokens['expired']}"),
        client.post(f"/auth/verify_email/{tokens['expired']}", data={"password": PASSWORD}),
    ):
        assert response.status_code == 400
        assert "This link is not valid" in response.text
    assert stored_user(app, "susan").email_verified_at is None
    assert auth.verify(f"/auth/verify_email/{tokens['fresh']}").headers["Location"] == "/index"
    assert stored_user(app, "susan").email_verified_at is not None


@pytest.mark.parametrize("token", ["", "x", "a.b.c", "é" * 10, "a" * 5000])
def test_a_broken_verification_link_gets_the_invalid_page_not_a_500(client, token):
    response = client.get(f"/auth/verify_email/{token}")
    assert response.status_code == 400
    assert "This link is not valid" in response.text


def test_a_reset_link_is_not_a_verification_link(app, client, auth, make_user, deliver, smtp):
    make_user("bob")
    auth.register("susan")
    auth.request_reset("bob@example.com")
    deliver()
    token = reset_link(last_email(smtp, "Reset your password")).rsplit("/", 1)[1]
    assert client.get(f"/auth/verify_email/{token}").status_code == 400
    assert stored_user(app, "susan").email_verified_at is None


def test_a_waiting_sign_up_gets_no_reset_link(app, auth, deliver, smtp):
    """An address is an account's once verified: a waiting sign-up is not its owner."""
    auth.register("susan")
    deliver()
    auth.request_reset("susan@example.com")
    deliver()
    assert [m["Subject"] for m in smtp.messages] == [f"[Microblog] {VERIFY}"]


# --- A new link -------------------------------------------------------------------------------


def test_resend_answers_the_same_whoever_asks_and_mails_only_waiting_accounts(
    app, client, auth, make_user, deliver, smtp
):
    make_user("bob")  # verified
    auth.register("susan")
    client.get("/auth/login")  # where the registration's message is shown
    deliver()
    smtp.wait_for(1)
    answers = set()
    for address in ["susan@example.com", "bob@example.com", "nobody@example.com"]:
        response = client.post("/auth/resend_verification", data={"email": address})
        answers.add(
            (
                response.status_code,
                response.headers["Location"],
                tuple(flashes(client.get("/auth/login"))),
            )
        )
    assert len(answers) == 1
    deliver()
    messages = smtp.wait_for(2)
    assert [m.envelope_recipients for m in messages] == [["susan@example.com"]] * 2
    assert auth.verify(verification_path(smtp)).headers["Location"] == "/index"


def test_resend_is_limited_per_account(app, client, auth, deliver, smtp):
    auth.register("susan")
    for _ in range(5):
        client.post("/auth/resend_verification", data={"email": "susan@example.com"})
    deliver()
    limit = app.config["ACCOUNT_EMAILS_PER_HOUR"]
    assert len(smtp.wait_for(limit)) == limit
    deliver()
    assert len(smtp.messages) == limit


def test_resend_form_refuses_a_bad_address_with_a_form_error(app, client):
    response = client.post("/auth/resend_verification", data={"email": "a@b.c\r\nBcc: x@y.z"})
    assert response.status_code == 200
    assert 'class="invalid-feedback"' in response.text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0


# --- Housekeeping -----------------------------------------------------------------------------


def register_days_ago(app, auth, days, username, monkeypatch):
    then = clock.utcnow() - timedelta(days=days)
    with monkeypatch.context() as patch:
        patch.setattr(clock, "utcnow", lambda: then)
        auth.register(username)


def test_unverified_accounts_older_than_seven_days_are_removed_by_the_command(
    app, auth, make_user, deliver, smtp, monkeypatch
):
    register_days_ago(app, auth, 8, "stale", monkeypatch)
    register_days_ago(app, auth, 6, "recent", monkeypatch)
    make_user("old_but_verified")
    deliver()  # the stale account's verification email is sent: its row must go too
    result = app.test_cli_runner().invoke(args=["auth", "purge-unverified"])
    assert result.exit_code == 0, result.output
    assert "Removed 1 unverified account(s)." in result.output
    assert stored_user(app, "stale") is None
    assert stored_user(app, "recent") is not None
    assert stored_user(app, "old_but_verified") is not None

    # The name and the address are free again.
    assert auth.register("stale").headers["Location"] == "/auth/login"
    assert stored_user(app, "stale").email == "stale@example.com"


def test_the_purge_leaves_an_account_verified_at_the_last_minute(
    app, auth, deliver, smtp, monkeypatch
):
    register_days_ago(app, auth, 8, "susan", monkeypatch)
    deliver()
    AuthActions(app.test_client()).verify(verification_path(smtp))
    app.test_cli_runner().invoke(args=["auth", "purge-unverified"])
    assert stored_user(app, "susan") is not None


def test_the_purge_keeps_an_account_verified_while_it_runs(app, auth, monkeypatch):
    """The owner opens the link between the purge's SELECT and its DELETE."""
    register_days_ago(app, auth, 8, "susan", monkeypatch)
    real_erase = signup.erase_account

    def verified_meanwhile(user, *only_if):
        with db.engine.begin() as other:
            other.execute(
                sa.update(User).where(User.id == user.id).values(email_verified_at=clock.utcnow())
            )
        return real_erase(user, *only_if)

    monkeypatch.setattr(signup, "erase_account", verified_meanwhile)
    result = app.test_cli_runner().invoke(args=["auth", "purge-unverified"])
    assert "Removed 0 unverified account(s)." in result.output
    assert stored_user(app, "susan") is not None


# --- Logs ---------------------------------------------------------------------------------------


def test_the_log_holds_no_token_and_no_full_address(
    app, client, auth, make_user, deliver, smtp, caplog
):
    caplog.set_level(logging.DEBUG)
    make_user("bob")
    auth.register("mallory", email="bob@example.com")
    auth.sign_up("susan")
    client.post("/auth/resend_verification", data={"email": "nobody@example.com"})
    deliver()
    token = verification_path(smtp).rsplit("/", 1)[1]
    records = [r for r in caplog.records if not r.name.startswith(("mail.log", "aiosmtpd"))]
    logged = "\n".join(r.getMessage() for r in records)
    audit = [r.getMessage() for r in records if r.name == "microblog.audit"]
    assert any(line.startswith("register ") for line in audit)
    assert any(line.startswith("verify_email.completed") for line in audit)
    for secret in [token, token[:40], "bob@example.com", "susan@example.com", "nobody@example"]:
        assert secret not in logged, secret


# `flask auth purge-unverified` reports how many accounts it removed, not whether it did.


def test_the_purge_counts_every_account_it_removes(app, make_user, monkeypatch):
    long_ago = clock.utcnow() - timedelta(days=app.config["UNVERIFIED_ACCOUNT_DAYS"] + 1)
    with monkeypatch.context() as patch:
        patch.setattr(clock, "utcnow", lambda: long_ago)
        for name in ("ann", "bob", "cid"):
            make_user(name, verified=False)
    make_user("dee", verified=False)  # recent: kept
    with app.app_context():
        assert purge_unverified_accounts() == 3
        assert purge_unverified_accounts() == 0


# --- What a mail scanner does ------------------------------------------------------------------


def accounts_as_stored(app):
    """Every account's state a link could change, row by row."""
    columns = (User.username, User.email, User.email_verified_at, User.password_hash)
    with app.app_context():
        return db.session.execute(sa.select(*columns, User.security_stamp)).all()


def test_a_cookie_less_get_of_every_link_the_app_sends_changes_nothing(
    app, client, auth, make_user, deliver, smtp
):
    """A mail gateway fetches every link, redirects followed: not one of them acts."""
    auth.register("mallory", email="victim@example.com")  # a sign-up on someone else's address
    make_user("susan")
    auth.login()
    client.post("/auth/change_email", data={"email": "new@example.com", "password": PASSWORD})
    auth.logout()
    auth.request_reset()
    deliver()
    links = [
        link for message in smtp.messages for link in re.findall(r"https?://\S+", text_of(message))
    ]
    assert {
        route
        for route in ("verify_email", "confirm_email", "reset_password")
        if any(f"/auth/{route}/" in link for link in links)
    } == {"verify_email", "confirm_email", "reset_password"}
    before = accounts_as_stored(app)
    for link in links:
        scanner = app.test_client(use_cookies=False)
        assert scanner.get(urlsplit(link).path, follow_redirects=True).status_code < 500
    assert accounts_as_stored(app) == before
