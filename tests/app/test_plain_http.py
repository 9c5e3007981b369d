"""A site served over plain HTTP works, and a form whose cookie never came back says why."""

import logging

import pytest

from support.auth import PASSWORD

pytestmark = pytest.mark.settings(WTF_CSRF_ENABLED=True)

NO_COOKIE = "Cookies did not come back"


def login_page_token(client, base_url="http://localhost"):
    page = client.get("/auth/login", base_url=base_url).text
    return page.split('name="csrf_token" type="hidden" value="', 1)[1].split('"', 1)[0]


def post_login(client, token, base_url="http://localhost"):
    return client.post(
        "/auth/login",
        base_url=base_url,
        headers={"Referer": f"{base_url}/auth/login"},  # Flask-WTF checks it over https
        data={"csrf_token": token, "username": "susan", "password": PASSWORD, "remember_me": "y"},
    )


def set_cookie_flags(response):
    return {
        header.split("=", 1)[0]: header.lower() for header in response.headers.getlist("Set-Cookie")
    }


def test_over_plain_http_session_and_remember_cookies_come_back(client, make_user):
    make_user("susan")
    signed_in = post_login(client, login_page_token(client))
    assert signed_in.headers["Location"] == "/index"
    flags = set_cookie_flags(signed_in)
    assert "; secure" not in flags["session"] and "; secure" not in flags["remember_token"]
    assert client.get("/index").status_code == 200


@pytest.mark.settings(PREFERRED_URL_SCHEME="https")
def test_an_https_site_sets_secure_cookies(client, make_user):
    make_user("susan")
    signed_in = post_login(
        client, login_page_token(client, "https://localhost"), "https://localhost"
    )
    flags = set_cookie_flags(signed_in)
    assert "; secure" in flags["session"] and "; secure" in flags["remember_token"]


def without_cookies(app, base_url="http://localhost"):
    """A form posted by a client that kept no cookie: the token is real, the session is gone."""
    token = login_page_token(app.test_client(use_cookies=True), base_url)
    return post_login(app.test_client(use_cookies=False), token, base_url)


CAUSES = {
    "Secure over http": ({"SESSION_COOKIE_SECURE": True}, "http://localhost", "plain http"),
    "another host name": ({}, "http://127.0.0.1", "SERVER_NAME is 'localhost'"),
    "cookies blocked": ({}, "http://localhost", "blocks or does not keep cookies"),
}


@pytest.mark.parametrize(("settings", "base_url", "cause"), CAUSES.values(), ids=CAUSES.keys())
def test_a_form_without_its_session_cookie_says_the_cookies_did_not_come_back(
    app, caplog, settings, base_url, cause
):
    app.config.update(settings)
    with caplog.at_level(logging.WARNING, logger="microblog"):
        refused = without_cookies(app, base_url)
    assert refused.status_code == 400
    assert NO_COOKIE in refused.text and "Form expired" not in refused.text
    [line] = [r.getMessage() for r in caplog.records if "without the session cookie" in r.message]
    assert cause in line


def test_a_stale_token_with_the_cookie_present_is_still_an_expired_form(client):
    login_page_token(client)  # the session cookie is set
    refused = post_login(client, "not-the-token")
    assert refused.status_code == 400
    assert "Form expired" in refused.text and NO_COOKIE not in refused.text
