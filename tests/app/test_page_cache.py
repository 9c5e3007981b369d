"""The sign-in page is rendered once, but every visitor still gets a CSRF token of their own."""

import re

import pytest

from support.auth import PASSWORD, flashes

TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def csrf_on(app):
    app.config["WTF_CSRF_ENABLED"] = True  # read per request
    return app


def token(client):
    return TOKEN.search(client.get("/auth/login").text).group(1)


def test_each_visitor_gets_a_token_of_their_own_that_signs_them_in(csrf_on, make_user):
    make_user("susan")
    first, second = csrf_on.test_client(), csrf_on.test_client()
    first_token, second_token = token(first), token(second)
    assert first_token != second_token
    data = {"username": "susan", "password": PASSWORD}
    stolen = second.post("/auth/login", data={**data, "csrf_token": first_token})
    assert stolen.status_code == 400
    own = first.post("/auth/login", data={**data, "csrf_token": first_token})
    assert own.headers["Location"] == "/index"


def test_a_waiting_message_is_shown_on_the_page(client):
    client.get("/index")  # signed out: sent to sign in, with a message
    assert flashes(client.get("/auth/login")) == ["Please log in to access this page."]
    assert flashes(client.get("/auth/login")) == []


def test_a_failed_sign_in_shows_what_was_typed_and_the_error(client, make_user):
    make_user("susan")
    client.get("/auth/login")
    page = client.post("/auth/login", data={"username": "susan", "password": "wrong"})
    assert 'value="susan"' in page.text
    assert flashes(page) == ["Invalid username or password."]
    assert 'value="susan"' not in client.get("/auth/login").text


def test_the_page_is_rendered_once_for_every_first_time_visitor(app):
    from flask import template_rendered

    rendered = []

    def record(sender, template, context, **extra):
        rendered.append(template.name)

    template_rendered.connect(record, app)
    try:
        for _ in range(3):
            assert app.test_client().get("/auth/login").status_code == 200
    finally:
        template_rendered.disconnect(record, app)
    assert rendered == ["auth/login.html"]
