"""Where URLs point: emailed links, the hosts the app answers to, and `next` after login."""

from urllib.parse import urlsplit

import click
import pytest

from microblog import create_app
from support.app import TEST_SECRET_KEY, app_config
from support.auth import PASSWORD, reset_link
from support.smtp import text_of

NEW_PASSWORD = "a brand new passphrase, never used"
FORWARDED = {
    "Host": "evil.example",
    "X-Forwarded-Host": "forwarded.evil.example",
    "X-Forwarded-Proto": "http",
    "X-Forwarded-Port": "8080",
    "X-Forwarded-Prefix": "/phish",
}


def production_config(database_url, smtp, **overrides):
    """The test configuration, minus TESTING: what `gunicorn wsgi:app` would run with."""
    config = app_config(database_url, smtp, TESTING=False, DEBUG=False, SERVER_NAME=None)
    config.update(overrides)
    return config


# --- Refusing to start -----------------------------------------------------------------------


def test_production_refuses_to_start_without_server_name_or_trusted_hosts(
    instance, database_url, smtp
):
    with pytest.raises(RuntimeError) as refused:
        create_app(production_config(database_url, smtp))
    message = str(refused.value)
    for setting in ("SERVER_NAME", "PREFERRED_URL_SCHEME=https", "TRUSTED_HOSTS"):
        assert setting in message


@pytest.mark.parametrize(
    "hosts",
    [{"SERVER_NAME": "microblog.example"}, {"TRUSTED_HOSTS": ["microblog.example"]}],
    ids=["SERVER_NAME", "TRUSTED_HOSTS"],
)
def test_production_starts_with_either_setting(instance, database_url, smtp, hosts):
    app = create_app(production_config(database_url, smtp, **hosts))
    assert not app.testing and not app.debug


def test_debug_starts_without_either(instance, database_url, smtp):
    assert create_app(production_config(database_url, smtp, DEBUG=True)).debug


@pytest.mark.parametrize(
    ("command", "refused"), [("run", True), ("upgrade", False), ("send-pending", False)]
)
def test_flask_run_is_checked_but_other_commands_are_not(
    instance, database_url, smtp, command, refused
):
    """`flask db upgrade` must work on a box that has no public host configured yet."""
    with click.Context(click.Command(command), info_name=command):
        if refused:
            with pytest.raises(RuntimeError, match="SERVER_NAME"):
                create_app(production_config(database_url, smtp))
        else:
            create_app(production_config(database_url, smtp))


def test_production_refuses_trusted_hosts_that_name_no_host(instance, database_url, smtp):
    """Only a wildcard (".example.com"): requests are checked, but no link can be built."""
    with pytest.raises(RuntimeError, match="SERVER_NAME"):
        create_app(production_config(database_url, smtp, TRUSTED_HOSTS=[".example.com"]))


# --- Emailed links come from the configuration -----------------------------------------------


@pytest.mark.settings(SERVER_NAME="microblog.example", PREFERRED_URL_SCHEME="https", PROXY_COUNT=1)
def test_emailed_links_ignore_the_host_and_forwarded_headers(client, make_user, deliver, smtp):
    make_user("susan")
    client.post(
        "/auth/reset_password_request", data={"email": "susan@example.com"}, headers=FORWARDED
    )
    deliver()
    link = reset_link(smtp.wait_for(1)[0])
    assert link.startswith("https://microblog.example/auth/reset_password/")

    # The "password changed" notice is written during the request itself.
    path = urlsplit(link).path
    client.get(path, headers=FORWARDED)
    data = {"password": NEW_PASSWORD, "password2": NEW_PASSWORD}
    done = client.post("/auth/reset_password", data=data, headers=FORWARDED)
    assert done.headers["Location"] == "/auth/login"
    deliver()
    notice = text_of(smtp.wait_for(2)[1])
    assert "https://microblog.example/auth/reset_password_request" in notice
    assert "evil" not in notice and "phish" not in notice


@pytest.mark.settings(SERVER_NAME=None, TRUSTED_HOSTS=["microblog.example", "localhost"])
def test_without_server_name_links_use_the_first_trusted_host(client, make_user, deliver, smtp):
    make_user("susan")
    client.post("/auth/reset_password_request", data={"email": "susan@example.com"})
    deliver()
    assert reset_link(smtp.wait_for(1)[0]).startswith("http://microblog.example/auth/")


# --- Answering only to trusted hosts ---------------------------------------------------------


@pytest.mark.settings(TRUSTED_HOSTS=["microblog.example"], PROXY_COUNT=1)
def test_trusted_hosts_are_served_and_forwarded_hosts_are_not_believed(client):
    assert client.get("/auth/login", headers={"Host": "microblog.example"}).status_code == 200
    forwarded = {"Host": "microblog.example", "X-Forwarded-Host": "evil.example"}
    assert client.get("/auth/login", headers=forwarded).status_code == 200


@pytest.mark.settings(TRUSTED_HOSTS=["microblog.example"], PROPAGATE_EXCEPTIONS=True)
@pytest.mark.parametrize("host", ["evil.example", "microblog.example.evil.example", ""])
def test_other_hosts_get_a_400(client, host):
    response = client.get("/auth/login", headers={"Host": host})
    assert response.status_code == 400
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- `next`, the way a browser reads it ------------------------------------------------------


def login_with_next(client, target):
    return client.post(
        "/auth/login",
        query_string={"next": target},
        data={"username": "susan", "password": PASSWORD},
    )


HOSTILE_NEXT = [
    "https://evil.example/",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r/evil.example",
    " //evil.example",
    "\x01//evil.example",
    "https:evil.example",
    "https:/evil.example",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "http://localhost@evil.example/",
]


def test_next_never_leaves_the_site(app, make_user):
    make_user("susan")
    for target in HOSTILE_NEXT:
        response = login_with_next(app.test_client(), target)
        if target.startswith("\x01"):  # a control character in a query value: no such page
            assert (response.status_code, "Location" in response.headers) == (404, False)
            continue
        assert response.headers["Location"] == "/index", target


@pytest.mark.parametrize("target", ["/explore", "/user/susan?page=2", "/%2F/evil.example"])
def test_next_paths_on_this_site_are_honoured(client, make_user, target):
    """The last one is a path here: browsers never decode %2F into an authority."""
    make_user("susan")
    assert login_with_next(client, target).headers["Location"] == target


def test_the_next_that_login_required_adds_brings_the_user_back(client, auth, make_user):
    make_user("susan")
    sent_away = client.get("/edit_profile").headers["Location"]
    assert sent_away == "/auth/login?next=%2Fedit_profile"
    signed_in = client.post(sent_away, data={"username": "susan", "password": PASSWORD})
    assert signed_in.headers["Location"] == "/edit_profile"


def test_the_test_secret_key_is_long_enough_for_production():
    """The production-like apps above would refuse a shorter one."""
    assert len(TEST_SECRET_KEY.encode()) >= 32
