"""One password policy (NIST SP 800-63B-4) for every form, and hashes that keep up with OWASP."""

import pytest
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from microblog.auth.passwords import common_passwords, policy_problem, verify_password
from microblog.auth.tokens import make_reset_token
from microblog.extensions import db
from microblog.models import User
from support.auth import PASSWORD, AuthActions

TOO_SHORT = "Use at least 15 characters"
TOO_LONG = "Use at most 256 characters."
TOO_COMMON = "This password is too common; choose another."
PERSONAL = "Do not use your username or email address in your password."


def by_registration(app, client, password):
    """Register "reggie" with this password: (accepted, page)."""
    response = AuthActions(client).register("reggie", password=password)
    return response.headers.get("Location") == "/auth/login", response


def open_reset_form(app, client):
    """Reggie (hashed the fast way, whatever the app's method) opens his emailed link."""
    with app.app_context():
        user = User(username="reggie", email="reggie@example.com")
        user.password_hash = generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")
        db.session.add(user)
        db.session.commit()
        token = make_reset_token(user)
    client.get(f"/auth/reset_password/{token}")


def submit_reset(client, password):
    response = client.post(
        "/auth/reset_password", data={"password": password, "password2": password}
    )
    return response.headers.get("Location") == "/auth/login", response


def by_reset(app, client, password):
    """Reset reggie's password to this one through the emailed-link form: (accepted, page)."""
    open_reset_form(app, client)
    return submit_reset(client, password)


def full_width(text):
    """The text as a Japanese or Chinese keyboard's full-width mode types it."""
    return "".join("\u3000" if c == " " else chr(ord(c) + 0xFEE0) for c in text)


FORMS = {"registration": by_registration, "reset": by_reset}

POLICY = {
    "14 characters": ("fourteen chars", TOO_SHORT),
    "15 characters": ("tulips in march", None),
    "64 characters": ("a" + "bcdefghij " * 6 + "xyz", None),
    "256 characters": (("seven sleepy owls hoot " * 12)[:256], None),
    "257 characters": (("seven sleepy owls hoot " * 12)[:257], TOO_LONG),
    "digits only": ("739184026573918", None),
    "Cyrillic": ("пароль из многих слов", None),
    "Japanese": ("日本語のパスフレーズはとても長いです", None),
    "emoji": ("🐴🔋📎 correct staple 🦄", None),
    "common, long": ("1q2w3e4r5t6y7u8i9o0p", TOO_COMMON),
    "common phrase": ("friend of emily", TOO_COMMON),
    "common, other case": ("Friend Of Emily", TOO_COMMON),
    "common, full-width": (full_width("friend of emily"), TOO_COMMON),
    "one character": ("aaaaaaaaaaaaaaaaaaaa", TOO_COMMON),
    "the username": ("reggie's very own passphrase", PERSONAL),
}


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
@pytest.mark.parametrize(("password", "problem"), POLICY.values(), ids=POLICY.keys())
def test_registration_and_reset_hold_passwords_to_one_policy(app, client, form, password, problem):
    accepted, page = form(app, client, password)
    assert accepted == (problem is None)
    if problem:
        assert problem in page.text


@pytest.mark.settings(PASSWORD_MIN_LENGTH=8)
@pytest.mark.parametrize(
    ("password", "problem"),
    [("tulips!", "Use at least 8 characters"), ("tulip&yak", None), ("password1", TOO_COMMON)],
)
def test_the_minimum_length_is_configurable_and_the_list_still_applies(
    app, client, password, problem
):
    accepted, page = by_registration(app, client, password)
    assert accepted == (problem is None)
    if problem:
        assert problem in page.text


def test_the_shipped_list_is_a_real_published_list_of_common_passwords():
    listed = common_passwords()
    assert len(listed) >= 10_000
    assert {"123456", "password", "qwerty", "iloveyou", "friend of emily"} <= listed


OVERLONG = {"ASCII": "x" * 100_000, "NFKC x18": "\ufdfa" * 20_000}


@pytest.mark.parametrize("password", OVERLONG.values(), ids=OVERLONG.keys())
def test_an_overlong_password_is_refused_at_registration_and_reset_without_hashing(
    app, password, hasher_calls
):
    registering, resetting = app.test_client(), app.test_client()
    open_reset_form(app, resetting)
    for submit in (
        lambda: by_registration(app, registering, password),
        lambda: submit_reset(resetting, password),
    ):
        accepted, page = submit()
        assert not accepted
        assert TOO_LONG in page.text
    assert hasher_calls == []


def test_an_overlong_password_at_login_is_refused_without_hashing(app, client, hasher_calls):
    """An unknown user's login burns a real hash's time; an overlong one must not."""
    response = AuthActions(client).login("nobody", password="x" * 100_000)
    assert "Location" not in response.headers
    assert "Field cannot be longer than 1024 characters." in response.text
    assert hasher_calls == []


def stored_hash(app, username="susan"):
    with app.app_context():
        return db.session.scalar(sa.select(User.password_hash).where(User.username == username))


def test_a_password_typed_on_another_keyboard_still_matches(app, auth):
    """NFKC: full-width letters (an East Asian keyboard) are the same password."""
    auth.sign_up("susan", password=full_width("correct horse battery"))
    assert auth.login(password="correct horse battery").headers["Location"] == "/index"
    with app.app_context():
        assert verify_password(stored_hash(app), "correct horse battery")


# The password policy at its edges: what NFKC makes long, and the shortest personal value.
#
# The refusals are compared with the refusal of a plain case of the same rule,
# not with their wording.


# Typed, 27 characters; after NFKC, 15 x 18 + 12: over PASSWORD_MAX_LENGTH (256).
EXPANDS = "\ufdfa" * 15 + " tangerine !"


def test_a_password_that_nfkc_makes_too_long_is_refused_as_too_long(app):
    with app.app_context():
        too_long = policy_problem("x" * (app.config["PASSWORD_MAX_LENGTH"] + 1))
        assert len(EXPANDS) <= app.config["PASSWORD_MAX_LENGTH"]
        assert too_long is not None
        assert policy_problem(EXPANDS) == too_long


def test_a_four_letter_username_in_the_password_is_refused(app):
    with app.app_context():
        personal = policy_problem("violet susan marmalade lighthouse", "susan")
        assert personal is not None
        assert policy_problem("violet bert marmalade lighthouse", "bert") == personal


def test_the_username_disguised_in_the_password_is_refused(app):
    """The substring rule misses l33t and reversed forms; the strength estimate must not."""
    username = "zkwqhfxnbtmvaplr"
    with app.app_context():
        for disguised in ("zkwqhfxnbtmvap1r", "rlpavmtbnxfhqwkz"):
            assert policy_problem(disguised) is None  # strong for anyone else
            assert policy_problem(disguised, username) is not None
