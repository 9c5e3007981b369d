"""Changing the address: nothing changes until the new address proves it receives mail."""

from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.auth.email_change import change_address
from microblog.auth.emails import count_recent_emails
from microblog.auth.tokens import make_reset_token
from microblog.extensions import db
from microblog.mail.outbox import OutboxMessage
from microblog.models import User
from support.auth import (
    NEW_PASSWORD,
    PASSWORD,
    AuthActions,
    email_link,
    flashes,
    last_email,
    reset_link,
)
from support.smtp import html_of, text_of

CONFIRM = "Confirm your new email address"
NOTICE = "A change of your email address was requested"
SOMEONE_TRIED = "Someone tried to use your email address"
NEW = "susan.new@example.com"


def stored_email(app, username="susan"):
    with app.app_context():
        return db.session.scalar(sa.select(User.email).where(User.username == username))


def change_email(client, email, password=PASSWORD):
    return client.post("/auth/change_email", data={"email": email, "password": password})


def confirm_path(smtp, to=NEW):
    return urlsplit(email_link(last_email(smtp, CONFIRM, to), "confirm_email")).path


@pytest.fixture
def susan(make_user, auth):
    """Susan, signed in."""
    user_id = make_user("susan")
    auth.login()
    return user_id


def test_the_change_end_to_end(app, client, auth, susan, deliver, smtp):
    with app.app_context():
        old_reset_token = make_reset_token(db.session.get(User, susan))
    response = change_email(client, NEW)
    assert response.headers["Location"] == "/user/susan"
    assert "Your address changes when you open it" in flashes(client.get("/user/susan"))[0]
    assert stored_email(app) == "susan@example.com"  # nothing changes before the link

    deliver()
    smtp.wait_for(2)
    confirm = last_email(smtp, CONFIRM, NEW)
    assert email_link(confirm, "confirm_email") in html_of(confirm)
    assert "This link moves the account susan to this address." in text_of(confirm)
    notice = last_email(smtp, NOTICE, "susan@example.com")
    assert "s***@example.com" in text_of(notice) and "s***@example.com" in html_of(notice)
    assert NEW not in notice.as_string()
    assert "/auth/reset_password_request" in text_of(notice)
    assert stored_email(app) == "susan@example.com"

    fresh = app.test_client()  # another browser, not signed in
    opened = fresh.post(confirm_path(smtp))
    assert opened.headers["Location"] == "/auth/login"
    assert opened.headers["Cache-Control"] == "no-store"
    assert f"Your email address is now {NEW}." in flashes(fresh.get("/auth/login"))
    assert stored_email(app) == NEW

    auth.logout()
    assert auth.login(NEW).headers["Location"] == "/index"
    auth.logout()
    assert "Invalid username or password." in auth.login("susan@example.com").text

    # The reset link mailed before the change is dead; reset mail goes to the new address only.
    assert client.get(f"/auth/reset_password/{old_reset_token}").status_code == 302
    assert client.get("/auth/reset_password").status_code == 400
    auth.request_reset("susan@example.com")
    auth.request_reset(NEW)
    deliver()
    resets = [m for m in smtp.wait_for(3) if m["Subject"] == "[Microblog] Reset your password"]
    assert [m.envelope_recipients for m in resets] == [[NEW]]
    assert reset_link(resets[0])


def test_a_taken_address_gets_the_same_answer_and_its_owner_the_notice(
    app, client, make_user, susan, deliver, smtp
):
    make_user("bob")
    answers = []
    for address in ["BOB@example.com", NEW]:
        response = change_email(client, address)
        answers.append(
            (response.status_code, response.headers["Location"], flashes(client.get("/user/susan")))
        )
    assert answers[0] == answers[1]
    deliver()
    messages = smtp.wait_for(4)
    received = sorted((m.envelope_recipients[0], m["Subject"]) for m in messages)
    assert received == [
        ("bob@example.com", f"[Microblog] {SOMEONE_TRIED}"),
        (NEW, f"[Microblog] {CONFIRM}"),
        ("susan@example.com", f"[Microblog] {NOTICE}"),
        ("susan@example.com", f"[Microblog] {NOTICE}"),
    ]
    tried = last_email(smtp, SOMEONE_TRIED, "bob@example.com")
    assert "move another Microblog account to" in text_of(tried)
    assert "confirm_email" not in tried.as_string()
    assert stored_email(app, "bob") == "bob@example.com"
    assert stored_email(app) == "susan@example.com"


def test_an_address_taken_before_the_link_is_opened_gets_a_clear_page(
    app, client, make_user, susan, deliver, smtp
):
    change_email(client, NEW)
    deliver()
    path = confirm_path(smtp)
    make_user("carol", email=NEW)
    response = app.test_client().post(path)
    assert response.status_code == 409
    assert "This address now belongs to another account" in response.text
    assert stored_email(app) == "susan@example.com"
    assert stored_email(app, "carol") == NEW


def test_a_scanner_s_get_changes_nothing_and_a_second_confirmation_does_no_harm(
    app, client, susan, deliver, smtp
):
    change_email(client, NEW)
    deliver()
    path = confirm_path(smtp)
    scanner = app.test_client()
    page = scanner.get(path)  # what a mail gateway fetches: a page, and nothing changes
    assert page.status_code == 200 and 'method="post"' in page.text
    assert stored_email(app) == "susan@example.com"
    assert client.post(path).headers["Location"] == "/index"  # her session survives the change
    flashes(client.get("/index"))
    again = app.test_client().post(path)  # the mail app's browser, once more: no harm
    assert again.headers["Location"] == "/auth/login"
    assert stored_email(app) == NEW


def test_of_two_links_only_the_first_opened_changes_the_address(app, client, susan, deliver, smtp):
    change_email(client, "first@example.com")
    change_email(client, "second@example.com")
    deliver()
    first = confirm_path(smtp, "first@example.com")
    second = confirm_path(smtp, "second@example.com")
    assert client.post(second).headers["Location"] == "/index"
    assert client.post(first).status_code == 400  # the address it was signed for changed
    assert stored_email(app) == "second@example.com"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"password": "not my password at all"}, "This is not your current password."),
        ({"email": "SUSAN@example.com"}, "This is already your address."),
        ({"email": "not an address"}, "An email address must have an @-sign."),
        ({"email": "a@example.com\r\nBcc: b@example.com"}, "invalid-feedback"),
    ],
)
def test_bad_input_is_a_form_error_and_queues_nothing(app, client, susan, fields, error):
    data = {"email": NEW, "password": PASSWORD} | fields
    response = client.post("/auth/change_email", data=data)
    assert response.status_code == 200
    assert error in response.text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0


def test_the_change_form_needs_a_signed_in_user(client):
    assert client.get("/auth/change_email").headers["Location"].startswith("/auth/login?next=")


@pytest.mark.parametrize("token", ["", "x", "a.b.c", "é" * 10, "a" * 5000])
def test_a_broken_confirmation_link_gets_the_invalid_page_not_a_500(client, token):
    for response in (
        client.get(f"/auth/confirm_email/{token}"),
        client.post(f"/auth/confirm_email/{token}"),
    ):
        assert response.status_code == 400
        assert "This link is not valid" in response.text


def test_a_verification_link_cannot_change_the_address(app, client, susan, auth, deliver, smtp):
    """Purposes do not mix: a token of another purpose is refused here."""
    from microblog.auth.tokens import VERIFY_EMAIL, make_token

    with app.app_context():
        token = make_token(db.session.get(User, susan), VERIFY_EMAIL, email=NEW)
    assert client.post(f"/auth/confirm_email/{token}").status_code == 400
    assert stored_email(app) == "susan@example.com"


# The address moves once, to the proven address, which counts as verified from then on.


def stored(app, user_id):
    with app.app_context():
        user = db.session.get(User, user_id)
        return user.email, user.email_verified_at


def test_the_proven_address_is_verified_as_of_the_change(app, make_user, monkeypatch):
    user_id = make_user("susan")
    now = clock.utcnow()
    monkeypatch.setattr(clock, "utcnow", lambda: now)
    with app.app_context():
        assert change_address(db.session.get(User, user_id), "susan.new@example.com") is True
    assert stored(app, user_id) == ("susan.new@example.com", now)


def test_of_two_links_opened_at_once_the_second_changes_nothing(app, make_user):
    """A compare-and-swap on the address the second request read."""
    user_id = make_user("susan")
    with app.app_context():
        seen_by_second = db.session.get(User, user_id)
        with db.engine.begin() as first:
            first.execute(
                sa.update(User).where(User.id == user_id).values(email="first@example.com")
            )
        assert change_address(seen_by_second, "second@example.com") is False
    assert stored(app, user_id)[0] == "first@example.com"


# Asking again and again to change the address sends no more than the hourly limit.
#
# Both emails of a change request (the link to the new address, the notice to
# the current one) go to addresses the owner may not control: like the reset,
# each kind is capped per account (ACCOUNT_EMAILS_PER_HOUR), whatever the new
# address.


@pytest.mark.settings(ACCOUNT_EMAILS_PER_HOUR=2)
def test_change_links_and_notices_are_capped_per_account(
    app, client, auth, make_user, deliver, smtp
):
    make_user("susan")
    auth.login()
    for n in range(4):
        client.post(
            "/auth/change_email", data={"email": f"new{n}@example.net", "password": PASSWORD}
        )
    deliver()

    smtp.wait_for(4)
    recipients = sorted(message["To"] for message in smtp.messages)
    assert recipients == ["new0@example.net", "new1@example.net"] + ["susan@example.com"] * 2
    with app.app_context():
        states = db.session.scalars(sa.select(OutboxMessage.state).order_by(OutboxMessage.id))
        # Links past the quota are not even queued; notices past theirs are dropped.
        assert sorted(states) == ["dropped"] * 2 + ["sent"] * 4


def row_lock_is_free(connection, user_id):
    """Whether another transaction could lock this account's row now (without waiting)."""
    try:
        if connection.dialect.name == "sqlite":  # one lock for the whole database
            connection.exec_driver_sql("PRAGMA busy_timeout = 0")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            query = sa.select(User.id).where(User.id == user_id).with_for_update(nowait=True)
            connection.execute(query)
    except sa.exc.OperationalError:
        return False
    finally:
        connection.rollback()
    return True


def test_counting_an_account_s_emails_locks_it_until_the_composer_commits(app, make_user):
    """Two composers for one account cannot both count before either writes: the cap holds."""
    susan, bob = make_user("susan"), make_user("bob")
    with app.app_context():
        count_recent_emails(db.session.get(User, susan), "password_reset")
        with db.engine.connect() as other:
            assert not row_lock_is_free(other, susan)
            if other.dialect.name != "sqlite":
                assert row_lock_is_free(other, bob)  # her row only, not everyone's
        db.session.rollback()
        with db.engine.connect() as other:
            assert row_lock_is_free(other, susan)


@pytest.mark.parametrize("target_taken", [False, True])
def test_the_requesters_quota_is_charged_whether_or_not_the_target_is_taken(
    app, client, make_user, auth, deliver, smtp, target_taken
):
    """A change to a probed address, then three to her own: as many links either way."""
    make_user("susan")
    if target_taken:
        make_user("bob", email="probe@example.org")
    auth.login()
    change_email(client, "probe@example.org")
    for n in range(3):
        change_email(client, f"susan.own{n}@example.net")
    deliver()
    links = [m["To"] for m in smtp.messages if m["Subject"] == f"[Microblog] {CONFIRM}"]
    own = [to for to in links if to.startswith("susan.own")]
    assert own == ["susan.own0@example.net", "susan.own1@example.net"]


# Links bound to the state they were asked for (the security stamp).


def change_password_signed_in(client, new_password=NEW_PASSWORD):
    data = {"current_password": PASSWORD, "password": new_password, "password2": new_password}
    return client.post("/auth/change_password", data=data)


def confirm_links_sent(smtp, to=NEW):
    return [m for m in smtp.messages if m["Subject"] == f"[Microblog] {CONFIRM}" and to in m["To"]]


def test_a_change_still_queued_dies_with_the_owner_s_password_change(
    app, client, make_user, deliver, smtp
):
    """Mallory, who knows the password, asks; the owner changes it before the mail is written."""
    make_user("susan")
    mallory = AuthActions(app.test_client())
    mallory.login()
    assert change_email(mallory.client, "mallory@example.com").status_code == 302
    owner = AuthActions(client)
    owner.login()
    assert change_password_signed_in(client).status_code == 302  # Mallory is signed out

    deliver()
    assert confirm_links_sent(smtp, "mallory@example.com") == []
    with app.app_context():
        states = db.session.scalars(
            sa.select(OutboxMessage.state).where(OutboxMessage.tag == "change_email")
        ).all()
    assert states == ["dropped"]
    assert stored_email(app) == "susan@example.com"


def test_a_change_still_queued_dies_with_a_password_reset(app, make_user, deliver, smtp):
    make_user("susan")
    owner = AuthActions(app.test_client())
    owner.request_reset()
    deliver()
    owner.client.get(urlsplit(reset_link(last_email(smtp, "Reset your password"))).path)
    mallory = AuthActions(app.test_client())
    mallory.login()
    change_email(mallory.client, "mallory@example.com")
    data = {"password": NEW_PASSWORD, "password2": NEW_PASSWORD}
    assert owner.client.post("/auth/reset_password", data=data).status_code == 302
    deliver()
    assert confirm_links_sent(smtp, "mallory@example.com") == []
    assert stored_email(app) == "susan@example.com"


def test_a_link_composed_before_a_password_change_is_dead_too(app, client, susan, deliver, smtp):
    change_email(client, NEW)
    deliver()
    path = confirm_path(smtp)
    change_password_signed_in(client)
    assert app.test_client().post(path).status_code == 400
    assert stored_email(app) == "susan@example.com"


def test_a_link_to_an_address_left_and_come_back_to_stays_dead(app, client, susan, deliver, smtp):
    """a -> b -> a: the account is as it was, but the link to b was made for another state."""
    other = "susan.other@example.com"
    change_email(client, NEW)
    deliver()
    first = confirm_path(smtp)
    visitor = client  # her own browser, which the change keeps signed in
    assert visitor.post(first).status_code == 302  # moved to b
    client.post("/auth/change_email", data={"email": "susan@example.com", "password": PASSWORD})
    deliver()
    visitor.post(confirm_path(smtp, "susan@example.com"))
    assert stored_email(app) == "susan@example.com"  # back to a

    assert visitor.post(first).status_code == 400
    assert stored_email(app) == "susan@example.com"
    change_email(client, other)  # nor does any later change revive it
    assert visitor.post(first).status_code == 400


def test_a_reset_link_dies_when_the_address_leaves_and_comes_back(
    app, client, auth, susan, deliver, smtp
):
    visitor = AuthActions(app.test_client(), deliver, smtp)
    visitor.request_reset()
    deliver()
    old_reset = urlsplit(reset_link(last_email(smtp, "Reset your password"))).path
    change_email(client, NEW)
    deliver()
    client.post(confirm_path(smtp))
    client.post("/auth/change_email", data={"email": "susan@example.com", "password": PASSWORD})
    deliver()
    client.post(confirm_path(smtp, "susan@example.com"))
    assert stored_email(app) == "susan@example.com"

    visitor.client.get(old_reset)
    assert visitor.client.get("/auth/reset_password").status_code == 400


def test_link_emails_still_queued_are_dropped_in_the_change_s_own_transaction(
    app, client, susan, deliver, smtp
):
    """No worker needs to run for them to die: the change itself drops them."""
    AuthActions(app.test_client()).request_reset()
    change_email(client, NEW)
    change_password_signed_in(client)
    with app.app_context():
        states = dict(
            db.session.execute(
                sa.select(OutboxMessage.tag, OutboxMessage.state).where(
                    OutboxMessage.tag.in_(["password_reset", "change_email"])
                )
            ).all()
        )
    assert states == {"password_reset": "dropped", "change_email": "dropped"}
    deliver()
    assert [m["Subject"] for m in smtp.messages] == [
        f"[Microblog] {NOTICE}",
        "[Microblog] Your password was changed",
    ]


def test_signing_out_everywhere_kills_a_change_still_queued(app, client, susan, deliver, smtp):
    change_email(client, NEW)
    assert client.post("/auth/sessions/revoke_others").status_code == 302
    deliver()
    assert confirm_links_sent(smtp) == []
