"""Changing a password while signed in: same policy, same consequences as a reset."""

import pytest
import sqlalchemy as sa

from microblog.extensions import db
from microblog.mail.outbox import OutboxMessage
from support.auth import NEW_PASSWORD, PASSWORD, AuthActions, flashes, reset_link
from support.smtp import text_of


@pytest.fixture
def susan(auth, make_user):
    make_user("susan")
    auth.login()


def change(client, current=PASSWORD, new=NEW_PASSWORD, repeat=None):
    return client.post(
        "/auth/change_password",
        data={"current_password": current, "password": new, "password2": repeat or new},
    )


def test_change_needs_a_signed_in_user(client):
    assert client.get("/auth/change_password").headers["Location"].startswith("/auth/login")


def test_the_profile_links_to_the_change_page(client, susan):
    assert 'href="/auth/change_password"' in client.get("/user/susan").text


def test_a_change_keeps_this_session_and_swaps_the_password(client, auth, susan):
    response = change(client)
    assert response.headers["Location"] == "/user/susan"
    assert "Other devices have been signed out." in flashes(client.get("/index"))[0]
    auth.logout()
    assert "Invalid username or password." in auth.login(password=PASSWORD).text
    assert auth.login(password=NEW_PASSWORD).headers["Location"] == "/index"


def test_a_change_signs_out_every_other_session(app, client, susan):
    other = AuthActions(app.test_client())
    other.login(remember_me=True)
    change(client)
    assert other.client.get("/index").headers["Location"].startswith("/auth/login")
    other.client.delete_cookie("session", domain="localhost")  # the remember cookie alone
    assert other.client.get("/index").headers["Location"].startswith("/auth/login")


def test_a_change_kills_earlier_reset_links(client, auth, susan, deliver, smtp):
    anonymous = AuthActions(client.application.test_client())
    anonymous.request_reset()
    deliver()
    link = reset_link(smtp.wait_for(1)[0])
    change(client)
    response = anonymous.client.get(link.removeprefix("http://localhost"), follow_redirects=True)
    assert response.status_code == 400 and "This link is not valid" in response.text


def test_a_change_tells_the_owner_by_email(client, susan, deliver, smtp):
    change(client)
    deliver()
    [notice] = smtp.wait_for(1)
    assert notice["Subject"] == "[Microblog] Your password was changed"
    assert NEW_PASSWORD not in text_of(notice)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"current": "not my password at all"}, "This is not your current password."),
        ({"new": "too short"}, "Use at least 15 characters"),
        ({"new": "manchesterunited"}, "too common"),
        ({"repeat": "another long passphrase"}, "The passwords do not match."),
    ],
)
def test_a_bad_change_is_a_form_error_and_changes_nothing(client, auth, susan, fields, message):
    response = change(client, **fields)
    assert response.status_code == 200 and message in response.text
    auth.logout()
    assert auth.login(password=PASSWORD).headers["Location"] == "/index"


def test_the_changed_notice_is_written_by_the_mail_worker(app, client, susan, deliver, smtp):
    """Like every email: the request queues a row; the worker writes it, for the owner."""
    change(client)
    with app.app_context():
        [queued] = db.session.scalars(sa.select(OutboxMessage)).all()
        assert (queued.kind, queued.subject, queued.text_body) == ("password_changed", "", "")
    deliver()
    [notice] = smtp.wait_for(1)
    assert notice["Subject"] == "[Microblog] Your password was changed"
    assert notice["To"] == "susan@example.com"
    assert "Dear susan" in text_of(notice) and "/auth/reset_password_request" in text_of(notice)


def test_the_new_password_field_is_no_oracle_for_the_current_one(client, susan):
    """Whoever does not know the current password learns nothing from the new one typed."""
    answer = change(client, current="a wrong current password", new=PASSWORD)
    assert "This is not your current password." in answer.text
    assert "This is your current password; choose a new one." not in answer.text
    answer = change(client, current=PASSWORD, new=PASSWORD)
    assert "This is your current password; choose a new one." in answer.text
