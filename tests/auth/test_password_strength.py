"""Passwords screened for what people really choose, at any length, in every form."""

from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from microblog.auth.passwords import verify_password
from microblog.extensions import db
from microblog.models import User
from support.auth import PASSWORD, AuthActions, reset_link

NEW_PASSWORD = "a brand new passphrase, never used"
TOO_EASY = "Too easy to guess"

# (password, a word of the explanation the form must show)
WEAK = {
    "passwordpassword": "Repeats",
    "123456789012345": "commonly used",
    "qwertyuiopasdfgh": "commonly used",
    "P@ssword12345678": "Predictable substitutions",
    "abcdefghijklmnopqrst": "Sequences",
    "zxcvbnmasdfghjkl": "Add another word",
}


def register(client, password, username="reggie"):
    return AuthActions(client).register(username, password=password)


def change(client, password, current=PASSWORD):
    return client.post(
        "/auth/change_password",
        data={"current_password": current, "password": password, "password2": password},
    )


def stored_password_is(app, password, username="susan"):
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == username))
        return verify_password(user.password_hash, password)


@pytest.mark.parametrize(("password", "reason"), WEAK.items())
def test_weak_passwords_are_refused_at_sign_up_with_why_and_what_to_do(client, password, reason):
    response = register(client, password)
    assert "Location" not in response.headers
    assert TOO_EASY in response.text
    assert reason in response.text


@pytest.mark.parametrize("password", list(WEAK)[:3])
def test_weak_passwords_are_refused_on_change_too(app, client, auth, make_user, password):
    make_user("susan")
    auth.login()
    response = change(client, password)
    assert "Location" not in response.headers
    assert TOO_EASY in response.text
    assert stored_password_is(app, PASSWORD)


def test_the_username_and_address_count_as_known_words(client):
    response = register(client, "reggiereggie2024!", username="reggie")
    assert "Location" not in response.headers


def test_the_address_s_local_part_counts_as_a_known_word(client):
    """Its name part, not only the whole address: zxcvbn scores this 4 without it."""
    address = "quintessa.fairweather@example.com"
    response = AuthActions(client).register("kestrel", address, "quintessa.fairweather2024")
    assert "Location" not in response.headers
    assert TOO_EASY in response.text
    strong = AuthActions(client).register("kestrel", address, "fairweather quintessa 2024 ok")
    assert strong.headers["Location"] == "/auth/login"  # the same words, not the same run


def test_a_change_to_the_current_password_is_refused(app, client, auth, make_user):
    make_user("susan")
    auth.login()
    response = change(client, PASSWORD)
    assert "This is your current password; choose a new one." in response.text
    assert "Location" not in response.headers


def test_a_reset_to_the_current_password_is_refused(app, client, make_user, auth, deliver, smtp):
    make_user("susan")
    auth.request_reset()
    deliver()
    client.get(urlsplit(reset_link(smtp.wait_for(1)[0])).path)
    response = client.post(
        "/auth/reset_password", data={"password": PASSWORD, "password2": PASSWORD}
    )
    assert "This is your current password; choose a new one." in response.text
    assert "Location" not in response.headers


@pytest.mark.parametrize(
    "password",
    [
        PASSWORD,  # the suite's own
        NEW_PASSWORD,
        "a brand new passphrase, typed twice",
        "a fresh passphrase for gunicorn",
        "x" * 10 + " Violet kettle drums at noon " + "y" * 300,  # past the scored length
    ],
)
def test_strong_passwords_pass(client, password):
    response = register(client, password[:256])
    assert response.headers.get("Location") == "/auth/login", response.text


def test_a_long_repeat_is_refused_not_a_server_error(client):
    """zxcvbn raises past 72 characters (and slows down before): it sees the first 72."""
    response = register(client, "passwordpassword" * 10)
    assert response.status_code == 200
    assert "Repeats" in response.text
