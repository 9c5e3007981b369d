"""Password recovery, end to end through the test client and a real SMTP server."""

from urllib.parse import urlsplit

import pytest

from support.auth import NEW_PASSWORD, PASSWORD, flashes, reset_link
from support.smtp import html_of, text_of


def follow_link(client, link):
    """Open the emailed link the way a browser does: it moves to a token-free page."""
    response = client.get(urlsplit(link).path)
    assert response.headers["Location"].endswith("/auth/reset_password")
    return client.get(response.headers["Location"])


def test_login_page_offers_a_reset(client):
    page = client.get("/auth/login")
    assert 'href="/auth/reset_password_request"' in page.text


def test_the_whole_reset_flow_from_the_emailed_link(client, auth, make_user, deliver, smtp):
    make_user("susan")
    response = auth.request_reset("Susan@Example.com")
    assert response.headers["Location"] == "/auth/login"
    assert deliver() == 1

    [message] = smtp.wait_for(1)
    assert message["To"] == "susan@example.com"
    assert message["Subject"] == "[Microblog] Reset your password"
    link = reset_link(message)
    assert link.startswith("http://localhost/auth/reset_password/")
    assert link in html_of(message)

    form = follow_link(client, link)
    assert form.status_code == 200
    assert 'name="password2"' in form.text
    done = client.post(
        "/auth/reset_password", data={"password": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert done.headers["Location"] == "/auth/login"
    assert "Your password has been reset" in " ".join(flashes(client.get("/auth/login")))

    old = auth.login(password=PASSWORD)
    assert "Location" not in old.headers  # the old password fails: no way in
    assert "Invalid username or password." in flashes(old)
    assert auth.login(password=NEW_PASSWORD).headers["Location"] == "/index"


def answer_to_reset_request(app, email):
    """What a fresh visitor sees after asking: status, redirect, cookies, flash."""
    client = app.test_client()
    response = client.post("/auth/reset_password_request", data={"email": email})
    cookies = sorted(c.split("=", 1)[0] for c in response.headers.getlist("Set-Cookie"))
    return (
        response.status_code,
        response.headers["Location"],
        cookies,
        flashes(client.get("/auth/login")),
    )


def test_known_and_unknown_addresses_get_the_same_answer(app, make_user):
    make_user("susan")
    known = answer_to_reset_request(app, "susan@example.com")
    assert known == answer_to_reset_request(app, "nobody@example.com")
    assert known[3] == ["Check your email for the instructions to reset your password."]


def test_unknown_address_gets_no_email(auth, deliver, smtp):
    auth.request_reset("nobody@example.com")
    deliver()
    assert smtp.messages == []


@pytest.mark.parametrize("url", ["/auth/reset_password_request", "/auth/reset_password/anything"])
def test_signed_in_users_are_sent_home_from_reset_pages(client, auth, make_user, url):
    make_user("susan")
    auth.login()
    assert client.get(url).headers["Location"] == "/index"


def test_reset_email_has_text_and_html_parts(auth, make_user, deliver, smtp):
    make_user("susan")
    auth.request_reset()
    deliver()
    [message] = smtp.wait_for(1)
    assert "Dear susan" in text_of(message)
    assert "<a href=" in html_of(message)
