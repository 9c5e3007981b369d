"""Reset tokens: what they carry, what kills them, and that no token can break the page."""

import base64
import hashlib
import hmac
import json
import secrets
import warnings
from datetime import timedelta
from urllib.parse import quote, urlsplit

import jwt
import pytest
import sqlalchemy as sa
from jwt.warnings import InsecureKeyLengthWarning

from microblog import clock
from microblog.auth.passwords import hash_password, verify_password
from microblog.auth.tokens import make_reset_token
from microblog.extensions import db
from microblog.models import User
from support.app import TEST_SECRET_KEY
from support.auth import PASSWORD, reset_link

NEW_PASSWORD = "a brand new passphrase, never used"


@pytest.fixture
def susan(make_user):
    return make_user("susan")


@pytest.fixture
def emailed_link(auth, susan, deliver, smtp):
    """Ask for a reset and return the path of the link in the email."""

    def request():
        count = len(smtp.messages)
        auth.request_reset()
        deliver()
        return urlsplit(reset_link(smtp.wait_for(count + 1)[count])).path

    return request


def token_of(path):
    return path.rsplit("/", 1)[1]


def open_link(client, path):
    """What a browser does with the emailed link: two requests, the second without the token."""
    first = client.get(path)
    assert first.headers["Location"] == "/auth/reset_password"
    return client.get("/auth/reset_password")


def submit_new_password(client, url="/auth/reset_password", password=NEW_PASSWORD):
    return client.post(url, data={"password": password, "password2": password})


def assert_generic_invalid_page(response):
    """The one page for every link that will not do: 400, and a way to ask again."""
    assert response.status_code == 400
    assert "This link is not valid" in response.text
    assert 'href="/auth/reset_password_request"' in response.text


def stored_hash(app, user_id):
    with app.app_context():
        return db.session.get(User, user_id).password_hash


def update_user(app, user_id, **values):
    with app.app_context():
        db.session.execute(sa.update(User).where(User.id == user_id).values(**values))
        db.session.commit()


def test_a_token_carries_a_string_subject_purpose_times_and_an_hmac_of_stamp_and_hash(
    app, susan, emailed_link
):
    token = token_of(emailed_link())
    claims = jwt.decode(token, options={"verify_signature": False})
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert set(claims) == {"sub", "purpose", "iat", "exp", "fp"}
    assert claims["sub"] == str(susan)
    assert claims["purpose"] == "reset_password"
    assert claims["exp"] - claims["iat"] == app.config["RESET_TOKEN_EXPIRES_IN"]

    password_hash = stored_hash(app, susan)
    salt, digest = password_hash.split("$")[-2:]
    payload = json.dumps(claims)
    assert salt not in payload and digest not in payload
    with app.app_context():
        stamp = db.session.get(User, susan).security_stamp
    material = f"reset_password\0{stamp}\0{password_hash}\0susan@example.com\0".encode()
    expected = hmac.new(TEST_SECRET_KEY.encode(), material, hashlib.sha256).hexdigest()[:32]
    assert claims["fp"] == expected


def test_a_link_resets_once_and_then_shows_the_generic_page(app, client, susan, emailed_link):
    link = emailed_link()
    open_link(client, link)
    assert submit_new_password(client).headers["Location"] == "/auth/login"

    again = app.test_client()
    assert_generic_invalid_page(open_link(again, link))
    assert_generic_invalid_page(submit_new_password(again, link, "yet another new passphrase"))
    with app.app_context():
        assert verify_password(db.session.get(User, susan).password_hash, NEW_PASSWORD)


def test_using_a_newer_link_kills_the_older_one(client, emailed_link):
    older, newer = emailed_link(), emailed_link()
    open_link(client, newer)
    assert submit_new_password(client).headers["Location"] == "/auth/login"
    assert_generic_invalid_page(open_link(client, older))


def test_a_later_password_change_kills_earlier_links(app, client, susan, emailed_link):
    link = emailed_link()
    with app.app_context():
        changed = hash_password("changed in the settings page")
    update_user(app, susan, password_hash=changed)
    assert_generic_invalid_page(open_link(client, link))


def test_an_email_address_change_kills_earlier_links(app, client, susan, emailed_link):
    link = emailed_link()
    update_user(app, susan, email="susan@new-provider.example")
    before = stored_hash(app, susan)
    assert_generic_invalid_page(open_link(client, link))
    client.post("/auth/reset_password", data={"password": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert stored_hash(app, susan) == before  # the dead link changed nothing


def token_issued(app, user_id, seconds_ago, monkeypatch):
    """A real token, made as if `seconds_ago` seconds had passed since it was sent."""
    past = clock.utcnow() - timedelta(seconds=seconds_ago)
    with monkeypatch.context() as patch, app.app_context():
        patch.setattr(clock, "utcnow", lambda: past)
        return make_reset_token(db.session.get(User, user_id))


def test_a_link_works_until_it_expires(app, client, susan, monkeypatch):
    lifetime = app.config["RESET_TOKEN_EXPIRES_IN"]
    expired = token_issued(app, susan, lifetime + 5, monkeypatch)
    assert_generic_invalid_page(open_link(client, f"/auth/reset_password/{expired}"))

    fresh = token_issued(app, susan, lifetime - 30, monkeypatch)
    assert 'name="password2"' in open_link(client, f"/auth/reset_password/{fresh}").text


def test_opening_the_link_never_consumes_it(app, client, susan, emailed_link):
    """Mail scanners open links before the person does: the link must survive them."""
    link = emailed_link()
    before = stored_hash(app, susan)
    for _ in range(2):
        scanner = app.test_client()
        open_link(scanner, link)
        scanner.head(link)
    assert stored_hash(app, susan) == before

    form = open_link(client, link)
    assert 'name="password2"' in form.text
    assert submit_new_password(client).headers["Location"] == "/auth/login"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(claims, key=TEST_SECRET_KEY, algorithm="HS256"):
    with warnings.catch_warnings():  # our test key is short for HS512; no matter here
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, key, algorithm=algorithm)


HS256_HEADER = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()


def hand_signed(payload, key=TEST_SECRET_KEY):
    """A token whose payload is any bytes, with a valid HS256 signature."""
    signing_input = f"{b64(HS256_HEADER)}.{b64(payload)}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def without(claims, name):
    return {key: value for key, value in claims.items() if key != name}


BAD_TOKENS = {
    "empty": lambda real, claims: "",
    "8 KB": lambda real, claims: secrets.token_urlsafe(6144),
    "alg none": lambda real, claims: jwt.encode(claims, None, algorithm="none"),
    "HS512 with our key": lambda real, claims: signed(claims, algorithm="HS512"),
    "another key": lambda real, claims: signed(claims, key="x" * 64),
    "no exp": lambda real, claims: signed(without(claims, "exp")),
    "no fingerprint": lambda real, claims: signed(without(claims, "fp")),
    "another purpose": lambda real, claims: signed(claims | {"purpose": "confirm_email"}),
    "numeric sub": lambda real, claims: signed(claims | {"sub": int(claims["sub"])}),
    "superscript sub": lambda real, claims: signed(claims | {"sub": "²"}),
    "huge sub": lambda real, claims: signed(claims | {"sub": "9" * 40}),
    "unknown user": lambda real, claims: signed(claims | {"sub": "4242"}),
    "infinite exp": lambda real, claims: hand_signed(
        json.dumps(claims).replace(str(claims["exp"]), "1e400").encode()
    ),
    "payload not an object": lambda real, claims: hand_signed(b"[" * 600),
    "non-ASCII": lambda real, claims: real[:40] + "é€😀" + real[40:],
    "truncated": lambda real, claims: real[:-7],
    "another user's payload": lambda real, claims: ".".join(
        [real.split(".")[0], b64(json.dumps(claims | {"sub": "2"}).encode()), real.split(".")[2]]
    ),
    "not a JWT": lambda real, claims: "reset-me-please",
}


@pytest.mark.parametrize("make_token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_every_bad_token_gets_the_generic_page_never_a_500(
    app, client, make_user, susan, make_token
):
    make_user("tom")  # user 2, for the swapped payload
    with app.app_context():
        real = make_reset_token(db.session.get(User, susan))
    claims = jwt.decode(real, options={"verify_signature": False})
    token = make_token(real, claims)
    before = stored_hash(app, susan)
    path = "/auth/reset_password/" + quote(token, safe="")

    assert_generic_invalid_page(open_link(client, path))
    if token:  # the reset form's token-bearing POST; an empty token has no such URL
        assert_generic_invalid_page(submit_new_password(app.test_client(), path))
    assert stored_hash(app, susan) == before


def test_the_real_token_passes_the_same_checks(app, client, susan):
    """The control for the table above: only the token differs."""
    with app.app_context():
        real = make_reset_token(db.session.get(User, susan))
    assert submit_new_password(client, f"/auth/reset_password/{real}").headers["Location"] == (
        "/auth/login"
    )
    with app.app_context():
        assert not verify_password(db.session.get(User, susan).password_hash, PASSWORD)
