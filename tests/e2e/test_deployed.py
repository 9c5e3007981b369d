"""Chromium against gunicorn as an operator deploys it: plain HTTP, a real host name, real SMTP.

The host name is not loopback's (Chromium treats localhost as a secure
context and would hide a Secure cookie sent over http): `microblog.test`,
mapped to 127.0.0.1 by Chromium's own resolver rules.
"""

import pytest

from support.auth import PASSWORD, email_link, reset_link
from support.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from support.gunicorn import Gunicorn, server_env
from support.ports import free_port

pytestmark = [pytest.mark.browser, pytest.mark.gunicorn]
expect = pytest.importorskip("playwright.sync_api").expect

HOST = "microblog.test"
NEW_PASSWORD = "a new passphrase chosen in chromium"


@pytest.fixture
def deployed(tmp_path, database_url, smtp):
    """gunicorn with SERVER_NAME=microblog.test:PORT; yields the site's public base URL."""
    port = free_port()
    server = Gunicorn(server_env(database_url, smtp, port, host=HOST), port, tmp_path / "g.log")
    server.migrate()
    server.start()
    yield f"http://{HOST}:{port}"
    server.kill()


@pytest.fixture
def tab(browser):
    """A Chromium of its own (launched by the session's Playwright), resolving microblog.test."""
    rules = f"--host-resolver-rules=MAP {HOST} 127.0.0.1"
    chromium = browser.browser_type.launch(
        executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, rules], headless=True
    )
    context = chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    yield context.new_page()
    chromium.close()


def test_a_person_uses_a_plain_http_deployment_under_its_own_host_name(deployed, tab, smtp):
    def at(path, heading):
        expect(tab).to_have_url(deployed + path)
        expect(tab.get_by_role("heading", level=1)).to_have_text(heading)

    tab.goto(deployed + "/auth/register")
    tab.get_by_label("Username").fill("susan")
    tab.get_by_label("Email").fill("susan@example.com")
    tab.get_by_label("Password", exact=True).fill(PASSWORD)
    tab.get_by_label("Repeat password").fill(PASSWORD)
    tab.get_by_role("button", name="Register").click()
    at("/auth/login", "Sign in")
    verify = email_link(smtp.wait_for(1)[0], "verify_email")
    assert verify.startswith(deployed + "/auth/verify_email/")
    tab.goto(verify)
    tab.get_by_label("Password", exact=True).fill(PASSWORD)
    tab.get_by_role("button", name="Verify and sign in").click()
    at("/index", "Hi, susan!")
    tab.get_by_role("button", name="Sign out").click()
    at("/auth/login", "Sign in")

    tab.get_by_label("Username or email").fill("susan")
    tab.get_by_label("Password", exact=True).fill(PASSWORD)
    tab.get_by_label("Remember me").check()
    tab.get_by_role("button", name="Sign in").click()
    at("/index", "Hi, susan!")
    cookies = {cookie["name"]: cookie for cookie in tab.context.cookies()}
    assert not cookies["session"]["secure"] and not cookies["remember_token"]["secure"]

    tab.get_by_label("What's on your mind?").fill("Hello from microblog.test")
    tab.get_by_role("button", name="Post", exact=True).click()
    expect(tab.get_by_text("Hello from microblog.test")).to_be_visible()

    tab.get_by_role("button", name="Sign out").click()
    tab.goto(deployed + "/auth/reset_password_request")
    tab.get_by_label("Email").fill("susan@example.com")
    tab.get_by_role("button", name="Request password reset").click()
    at("/auth/login", "Sign in")
    link = reset_link(smtp.wait_for(2)[1])
    assert link.startswith(deployed + "/auth/reset_password/")
    tab.goto(link)
    at("/auth/reset_password", "Choose a new password")
    tab.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    tab.get_by_label("Repeat password").fill(NEW_PASSWORD)
    tab.get_by_role("button", name="Set new password").click()
    at("/auth/login", "Sign in")

    tab.get_by_label("Username or email").fill("susan")
    tab.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    at("/index", "Hi, susan!")
