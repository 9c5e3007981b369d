"""CSRF: forms carry a token, and over HTTPS they still post with the Referer browsers send.

Flask-WTF refuses an HTTPS form post whose Referer is missing or from
another origin. A form page that sets `Referrer-Policy: no-referrer` (the
obvious choice for a page reached with a secret) would therefore never
submit. These tests post with the Referer a browser computes from the
page's own policy, so a policy that broke the form would fail them.
"""

import re
from urllib.parse import urlsplit, urlunsplit

import pytest
import sqlalchemy as sa

from microblog.auth.passwords import verify_password
from microblog.auth.tokens import make_reset_token
from microblog.extensions import db
from microblog.models import User
from support.auth import PASSWORD

HTTPS = "https://localhost"
NEW_PASSWORD = "a brand new passphrase, never used"

pytestmark = pytest.mark.settings(WTF_CSRF_ENABLED=True)


def browser_referer(policy, page_url, target_url):
    """The Referer a browser sends from `page_url` to `target_url` (W3C Referrer Policy)."""
    page, target = urlsplit(page_url), urlsplit(target_url)
    same_origin = (page.scheme, page.netloc) == (target.scheme, target.netloc)
    downgrade = page.scheme == "https" and target.scheme != "https"
    origin = f"{page.scheme}://{page.netloc}/"
    full = urlunsplit((page.scheme, page.netloc, page.path, page.query, ""))
    cross = None if downgrade else origin
    return {
        "no-referrer": None,
        "same-origin": full if same_origin else None,
        "origin": origin,
        "strict-origin": cross,
        "origin-when-cross-origin": full if same_origin else origin,
        "strict-origin-when-cross-origin": full if same_origin else cross,
        "no-referrer-when-downgrade": None if downgrade else full,
        "unsafe-url": full,
    }[policy]


def csrf_token(page):
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
    assert match, "no CSRF token in the form"
    return match.group(1)


def form_action(page, page_url):
    """Where the page's form posts: its action, or the page itself when it has none."""
    match = re.search(r'<form method="post"(?: action="([^"]*)")?', page.text)
    assert match, "no form on the page"
    return urlunsplit(urlsplit(page_url)._replace(path=match.group(1) or urlsplit(page_url).path))


def post_like_a_browser(client, page, page_url, data):
    """Submit the page's form over HTTPS, with the Referer its policy lets the browser send."""
    target = form_action(page, page_url)
    referer = browser_referer(page.headers["Referrer-Policy"], page_url, target)
    headers = {"Referer": referer} if referer else {}
    return client.post(
        urlsplit(target).path,
        base_url=HTTPS,
        data={**data, "csrf_token": csrf_token(page)},
        headers=headers,
    )


@pytest.fixture
def reset_form(app, client, make_user):
    """Susan's reset form over HTTPS, reached from her emailed link: (page, page URL)."""
    user_id = make_user("susan")
    with app.app_context():
        token = make_reset_token(db.session.get(User, user_id))
    first = client.get(f"/auth/reset_password/{token}", base_url=HTTPS)
    assert first.headers["Location"] == "/auth/reset_password"
    page_url = HTTPS + first.headers["Location"]
    return client.get(page_url), page_url


def susans_password_is(app, password):
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == "susan"))
        return verify_password(user.password_hash, password)


def test_the_reset_form_posts_over_https_with_the_referer_its_policy_allows(
    app, client, reset_form
):
    page, page_url = reset_form
    assert browser_referer(page.headers["Referrer-Policy"], page_url, page_url) is not None
    data = {"password": NEW_PASSWORD, "password2": NEW_PASSWORD}
    done = post_like_a_browser(client, page, page_url, data)
    assert done.headers["Location"] == "/auth/login"
    assert susans_password_is(app, NEW_PASSWORD)


@pytest.mark.parametrize(
    "referer", [None, "https://evil.example/auth/reset_password", "http://localhost/"]
)
def test_an_https_post_without_a_same_origin_referer_is_refused(app, client, reset_form, referer):
    """What a no-referrer page (None) or another site would send: refused, kindly."""
    page, _ = reset_form
    data = {"password": NEW_PASSWORD, "password2": NEW_PASSWORD, "csrf_token": csrf_token(page)}
    headers = {"Referer": referer} if referer else {}
    refused = client.post("/auth/reset_password", base_url=HTTPS, data=data, headers=headers)
    assert refused.status_code == 400
    assert "The form expired or was not sent from this site" in refused.text
    assert not susans_password_is(app, NEW_PASSWORD)


@pytest.mark.parametrize(
    ("path", "data", "location"),
    [
        (
            "/auth/login",
            {"username": "susan", "password": PASSWORD},
            "/index",
        ),
        ("/auth/reset_password_request", {"email": "susan@example.com"}, "/auth/login"),
        ("/auth/resend_verification", {"email": "susan@example.com"}, "/auth/login"),
        (
            "/auth/register",
            {
                "username": "bob",
                "email": "susan@example.com",
                "password": PASSWORD,
                "password2": PASSWORD,
            },
            "/auth/login",
        ),
    ],
)
def test_the_other_account_forms_post_over_https_too(client, make_user, path, data, location):
    make_user("susan")
    page_url = HTTPS + path
    page = client.get(page_url)
    assert post_like_a_browser(client, page, page_url, data).headers["Location"] == location


def test_a_post_without_the_form_token_is_refused(app, client, reset_form):
    data = {"password": NEW_PASSWORD, "password2": NEW_PASSWORD}
    refused = client.post(
        "/auth/reset_password", base_url=HTTPS, data=data, headers={"Referer": HTTPS + "/"}
    )
    assert refused.status_code == 400
    assert "The form expired" in refused.text
    assert not susans_password_is(app, NEW_PASSWORD)


def sign_in_with_token(client, username="susan"):
    page = client.get("/auth/login")
    data = {"username": username, "password": PASSWORD, "csrf_token": csrf_token(page)}
    assert client.post("/auth/login", data=data).headers["Location"] == "/index"


@pytest.mark.parametrize(
    "path",
    [
        "/auth/register",
        "/auth/login",
        "/auth/logout",
        "/auth/reset_password_request",
        "/auth/reset_password",
        "/auth/change_password",
        "/auth/change_email",
        "/auth/delete_account",
        "/auth/resend_verification",
        "/index",
        "/edit_profile",
        "/follow/john",
        "/unfollow/john",
    ],
)
def test_every_form_refuses_a_post_without_its_token(client, make_user, path):
    make_user("susan")
    make_user("john")
    sign_in_with_token(client)
    refused = client.post(path, data={"username": "mallory", "post": "pwned", "email": "x@y.com"})
    assert refused.status_code == 400
    assert "The form expired or was not sent from this site" in refused.text
    assert "Hi, susan!" in client.get("/index").text  # still signed in, nothing changed
    assert "pwned" not in client.get("/explore").text
