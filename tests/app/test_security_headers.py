"""Security headers on every response, pages that work under their CSP, and cookie flags."""

import re

import pytest

from microblog import clock
from microblog.auth.passwords import hash_password
from microblog.extensions import db
from microblog.main import routes as main_routes
from microblog.models import User
from support.app import build_app, close_app
from support.auth import PASSWORD

PAGES = [
    "/auth/login",
    "/auth/register",
    "/auth/reset_password_request",
    "/auth/reset_password",
    "/auth/reset_password/not-a-token",
    "/explore",
    "/user/susan",
    "/index",
    "/healthz",
    "/static/app.css",
    "/nowhere",
    "/follow/susan",
]


def csp_directives(response):
    policy = response.headers["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in policy.split(";") if part.strip())
    }


def assert_security_headers(response):
    directives = csp_directives(response)
    for name, sources in directives.items():
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*"} & set(sources), name
        assert "data:" not in sources or name == "img-src", name  # the SVG avatars
    assert directives["script-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Referrer-Policy" in response.headers


def test_every_response_carries_the_security_headers(client, make_user):
    make_user("susan")
    for path in PAGES:
        with client.get(path) as response:
            assert response.status_code in {200, 302, 400, 404, 405}, path
            assert_security_headers(response)
            assert "Strict-Transport-Security" not in response.headers, path


@pytest.mark.settings(RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="1 per minute")
def test_the_429_page_carries_them_too(client):
    client.post("/auth/login", data={})
    response = client.post("/auth/login", data={})
    assert response.status_code == 429
    assert_security_headers(response)


@pytest.mark.settings(PROPAGATE_EXCEPTIONS=False)
def test_the_500_page_carries_them_too(client, monkeypatch):
    def broken():
        raise RuntimeError("a bug")

    monkeypatch.setattr(main_routes, "all_posts", broken)
    response = client.get("/explore")
    assert response.status_code == 500
    assert_security_headers(response)


@pytest.mark.settings(PREFERRED_URL_SCHEME="https")
@pytest.mark.parametrize("path", ["/auth/login", "/explore", "/static/app.css"])
def test_hsts_is_sent_over_https_only(client, path):
    with client.get(path, base_url="https://localhost") as secure:
        assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    with client.get(path, base_url="http://localhost") as plain:
        assert "Strict-Transport-Security" not in plain.headers


@pytest.mark.settings(PROXY_COUNT=1, PREFERRED_URL_SCHEME="https")
def test_hsts_is_sent_behind_a_trusted_tls_proxy(client):
    behind_tls = client.get("/auth/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in behind_tls.headers


def test_a_plain_http_site_sends_no_hsts_even_over_https(client):
    """HSTS would lock browsers out of a site whose public scheme is http."""
    with client.get("/auth/login", base_url="https://localhost") as secure:
        assert "Strict-Transport-Security" not in secure.headers


@pytest.mark.settings(PREFERRED_URL_SCHEME="https")
def test_a_client_claiming_https_without_a_trusted_proxy_gets_no_hsts(client):
    claimed = client.get(
        "/auth/login", base_url="http://localhost", headers={"X-Forwarded-Proto": "https"}
    )
    assert "Strict-Transport-Security" not in claimed.headers


@pytest.mark.parametrize(
    "path", ["/auth/login", "/auth/register", "/auth/reset_password_request", "/explore"]
)
def test_pages_need_no_inline_script_or_style(client, path):
    """The CSP forbids them: a page that used them would break, not just warn."""
    page = client.get(path).text
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts and all(" src=" in tag for tag in scripts)
    assert not re.search(r"<script\b[^>]*>(?!\s*</script>)", page)  # a script tag has no body
    assert not re.search(r"\son[a-z]+\s*=", page)  # onclick= and friends
    assert "javascript:" not in page
    assert not re.search(r"<style\b|\sstyle\s*=", page)


def cookie_flags(response, name):
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(name + "=")]
    return {part.split("=")[0].strip().lower(): part for part in cookie.split(";")[1:]}


def signed_in(client, base_url):
    page = client.post(
        "/auth/login",
        base_url=base_url,
        data={"username": "susan", "password": PASSWORD, "remember_me": "y"},
    )
    assert page.headers["Location"] == "/index"
    return page


def test_cookies_are_httponly_and_samesite_lax(client, make_user):
    make_user("susan")
    response = signed_in(client, "http://localhost")
    for name in ("session", "remember_token"):
        flags = cookie_flags(response, name)
        assert "httponly" in flags
        assert flags["samesite"].strip().lower() == "samesite=lax"
        assert "secure" not in flags  # the site's scheme is http: a Secure cookie never returns


@pytest.fixture
def production_client(instance, database_url, smtp):
    """A client of an https app with production settings (not debug, not testing) and Susan."""
    app = build_app(
        database_url,
        smtp,
        TESTING=False,
        SERVER_NAME="microblog.example",
        PREFERRED_URL_SCHEME="https",
    )
    with app.app_context():
        user = User(username="susan", email="susan@example.com", email_verified_at=clock.utcnow())
        user.password_hash = hash_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
    yield app.test_client()
    close_app(app)


def test_an_https_site_s_cookies_are_secure(production_client):
    response = signed_in(production_client, "https://microblog.example")
    for name in ("session", "remember_token"):
        flags = cookie_flags(response, name)
        assert {"secure", "httponly"} <= set(flags)
        assert flags["samesite"].strip().lower() == "samesite=lax"
