"""Registration, sign-in and sign-out, as a person would use them."""

import pytest
import sqlalchemy as sa

from microblog.extensions import db
from microblog.models import User
from support.auth import PASSWORD, flashes


def stored_user(app, username):
    with app.app_context():
        return db.session.scalar(sa.select(User).where(User.username == username))


def test_register_creates_an_unverified_account_and_sends_to_login(app, client, auth):
    response = auth.register("susan", email="Susan@Example.COM")
    assert response.headers["Location"] == "/auth/login"
    assert "verify your address" in flashes(client.get("/auth/login"))[0]
    user = stored_user(app, "susan")
    assert user.email == "susan@example.com"
    assert user.email_verified_at is None
    assert user.password_hash != PASSWORD and user.password_hash.startswith("$argon2id$")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"username": ""}, "This field is required."),
        ({"username": "has space"}, "Use letters, digits, dots, dashes and underscores."),
        ({"email": "not-an-address"}, "An email address must have an @-sign."),
        (
            {"email": "josé@example.com"},
            "Internationalized characters before the @-sign are not supported",
        ),
        ({"email": ["susan@example.com", "bob@example.com"]}, "Enter one email address."),
        ({"email": "a@ü@example.com"}, "Internationalized characters before the @-sign"),
        ({"password": "short"}, "Use at least 15 characters"),
        ({"password2": "something else entirely"}, "The passwords do not match."),
    ],
)
def test_register_rejects_bad_input_with_a_form_error(app, client, fields, message):
    data = {
        "username": "susan",
        "email": "susan@example.com",
        "password": PASSWORD,
        "password2": PASSWORD,
    }
    data.update(fields)
    if "password" in fields and "password2" not in fields:
        data["password2"] = fields["password"]
    response = client.post("/auth/register", data=data)
    assert response.status_code == 200
    assert message in response.text
    assert stored_user(app, "susan") is None


def test_duplicate_username_is_a_form_error(auth, make_user):
    make_user("susan")
    response = auth.register("susan", email="other@example.com")
    assert "Please use a different username." in response.text


def test_login_then_logout(client, auth, make_user):
    make_user("susan")
    assert auth.login().headers["Location"] == "/index"
    assert "Hi, susan!" in client.get("/index").text
    assert auth.logout().headers["Location"] == "/auth/login"
    page = client.get("/auth/login")
    assert flashes(page) == ["You have been signed out."]
    assert "Please log in" not in page.text
    assert client.get("/index").headers["Location"].startswith("/auth/login?next=")


def test_logout_refuses_get_so_no_link_or_image_can_sign_you_out(client, auth, make_user):
    make_user("susan")
    auth.login()
    assert client.get("/auth/logout").status_code == 405
    assert "Hi, susan!" in client.get("/index").text


def test_login_accepts_the_email_address_in_any_case(auth, make_user):
    make_user("susan")
    assert auth.login("SUSAN@example.com").headers["Location"] == "/index"


@pytest.mark.parametrize(
    ("username", "password"), [("susan", "wrong password!!"), ("nobody", PASSWORD)]
)
def test_login_failures_all_say_the_same(auth, make_user, username, password):
    make_user("susan")
    response = auth.login(username, password)
    assert response.status_code == 200
    assert "Invalid username or password." in response.text


def test_remember_me_sets_a_lasting_cookie(client, auth, make_user):
    make_user("susan")
    response = auth.login(remember_me=True)
    cookie = next(
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("remember_token=")
    )
    assert "HttpOnly" in cookie and "Expires=" in cookie


def test_remember_cookie_alone_signs_the_user_back_in(app, client, auth, make_user):
    make_user("susan")
    auth.login(remember_me=True)
    client.delete_cookie("session", domain="localhost")
    assert "Hi, susan!" in client.get("/index").text


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/user/susan", "/user/susan"),
        ("/explore?page=2", "/explore?page=2"),
        ("https://evil.example.com/", "/index"),
        ("//evil.example.com/", "/index"),
        ("/\\evil.example.com", "/index"),
        ("/%09/evil.example.com", "/index"),  # a browser drops the tab: //evil
        ("javascript:alert(1)", "/index"),
    ],
)
def test_login_follows_next_only_within_the_site(auth, make_user, next_url, expected):
    make_user("susan")
    assert auth.login(next=next_url).headers["Location"] == expected


def test_signed_in_user_is_sent_home_from_login_and_register(client, auth, make_user):
    make_user("susan")
    auth.login()
    assert client.get("/auth/login").headers["Location"] == "/index"
    assert client.get("/auth/register").headers["Location"] == "/index"


def test_losing_a_registration_race_for_the_name_is_a_form_error_not_a_500(
    app, auth, make_user, monkeypatch
):
    """Two sign-ups with one name can both pass the form's check; the database decides."""
    from microblog.auth.forms import RegistrationForm

    make_user("susan")
    monkeypatch.setattr(RegistrationForm, "validate_username", lambda form, field: None)
    response = auth.register("susan", email="other@example.com")
    assert response.status_code == 200
    assert "Please use a different username." in response.text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1
