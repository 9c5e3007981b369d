"""What a person does in a real browser, against a live server and a real SMTP server.

Run only these with `pytest -m browser`. Set MICROBLOG_DOCS_SCREENSHOT=1 to
refresh docs/reset-password.png, the README's picture of the reset page.
"""

import os
import re
import time
from pathlib import Path

import jwt
import pytest

from support.auth import PASSWORD, email_link, last_email, reset_link

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect  # waits until true, or fails

NEW_PASSWORD = "a brand new passphrase, typed twice"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "reset-password.png"


def expect_page(page, live_server, path, heading):
    """Where the browser landed (token-free URL included) and what the page says it is."""
    expect(page).to_have_url(live_server.url(path))
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)


def expect_alerts(page, *messages):
    """The flashed messages on the page the browser is now on."""
    expect(page.get_by_role("alert")).to_have_text(list(messages))


def expect_field_errors(page, *errors):
    expect(page.locator(".invalid-feedback")).to_have_text(list(errors))


def sign_in(page, live_server, username, password):
    page.goto(live_server.url("/auth/login"))
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def choose_password(page, password, again=None):
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Repeat password").fill(password if again is None else again)
    page.get_by_role("button", name="Set new password").click()


def forgot_password(page, live_server, smtp, email="susan@example.com", count=1):
    """From the sign-in page's link to the emailed reset link."""
    page.goto(live_server.url("/auth/login"))
    page.get_by_role("link", name="Reset it").click()
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Request password reset").click()
    expect_page(page, live_server, "/auth/login", "Sign in")
    expect_alerts(page, "Check your email for the instructions to reset your password.")
    return reset_link(smtp.wait_for(count)[-1])


def test_a_person_registers_posts_follows_and_recovers_their_password(
    page, live_server, smtp, browser_errors
):
    live_server.add_user("bob", posts=["Bob was here first"])

    page.goto(live_server.url("/auth/register"))
    page.get_by_label("Username").fill("susan")
    page.get_by_label("Email").fill("susan@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect_page(page, live_server, "/auth/login", "Sign in")
    expect_alerts(page, re.compile(r"^Almost there: we sent an email"))

    sign_in(page, live_server, "susan", PASSWORD)  # before the link: refused, as a wrong password
    expect_alerts(page, "Invalid username or password.")
    # ... and a fresh link is on its way; either link verifies.
    assert [m["Subject"] for m in smtp.wait_for(2)] == ["[Microblog] Verify your email address"] * 2
    page.goto(email_link(smtp.messages[0], "verify_email"))  # a form: the GET changes nothing
    expect(page.get_by_role("heading", level=1)).to_have_text("Verify your email address")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Verify and sign in").click()
    expect_page(page, live_server, "/index", "Hi, susan!")
    expect_alerts(page, "Your email address is verified. Welcome to Microblog!")
    page.get_by_label("What's on your mind?").fill("Hello from a real browser")
    page.get_by_role("button", name="Post", exact=True).click()
    expect_alerts(page, "Your post is now live!")
    expect(page.locator(".post-body")).to_have_text(["Hello from a real browser"])

    page.goto(live_server.url("/user/bob"))
    page.get_by_role("button", name="Follow").click()
    expect_alerts(page, "You are following bob.")
    expect(page.locator(".followers")).to_have_text("1 follower")
    page.get_by_role("link", name="Home").click()
    expect(page.locator(".post-body")).to_have_text(
        ["Hello from a real browser", "Bob was here first"]
    )

    page.get_by_role("button", name="Sign out").click()
    expect_page(page, live_server, "/auth/login", "Sign in")
    expect_alerts(page, "You have been signed out.")

    link = forgot_password(page, live_server, smtp, count=3)
    assert link.startswith(live_server.url("/auth/reset_password/"))
    page.goto(link)
    expect_page(page, live_server, "/auth/reset_password", "Choose a new password")
    if os.environ.get("MICROBLOG_DOCS_SCREENSHOT"):
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=DOCS_SCREENSHOT)
    choose_password(page, NEW_PASSWORD)
    expect_page(page, live_server, "/auth/login", "Sign in")
    expect_alerts(page, "Your password has been reset. Please sign in with it.")

    sign_in(page, live_server, "susan", PASSWORD)
    expect_alerts(page, "Invalid username or password.")
    sign_in(page, live_server, "susan", NEW_PASSWORD)
    expect_page(page, live_server, "/index", "Hi, susan!")
    # The reset forgot every browser: this sign-in is announced too.
    assert {m["Subject"] for m in smtp.wait_for(5)[3:]} == {
        "[Microblog] Your password was changed",
        "[Microblog] New sign-in to your account",
    }
    assert browser_errors == []


def test_mismatched_or_weak_passwords_keep_the_link_usable(page, live_server, smtp, browser_errors):
    live_server.add_user("susan")
    old_hash = live_server.password_hash("susan")
    page.goto(forgot_password(page, live_server, smtp))

    choose_password(page, NEW_PASSWORD, again=NEW_PASSWORD + "!")
    expect_field_errors(page, "The passwords do not match.")
    expect_page(page, live_server, "/auth/reset_password", "Choose a new password")
    choose_password(page, "too short")
    expect_field_errors(page, re.compile(r"^Use at least 15 characters"))
    choose_password(page, "susan's own long passphrase")
    expect_field_errors(page, "Do not use your username or email address in your password.")
    assert live_server.password_hash("susan") == old_hash

    choose_password(page, NEW_PASSWORD)
    expect_alerts(page, "Your password has been reset. Please sign in with it.")
    assert live_server.password_hash("susan") != old_hash
    assert browser_errors == []


def wait_until_expired(link):
    """Sleep until the link's `exp` has passed (at most RESET_TOKEN_EXPIRES_IN seconds)."""
    token = link.rsplit("/", 1)[1]
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, expires - time.time() + 0.05))


@pytest.mark.settings(RESET_TOKEN_EXPIRES_IN=1)
def test_an_expired_link_says_so_and_offers_a_new_one(page, live_server, smtp, browser_errors):
    live_server.add_user("susan")
    link = forgot_password(page, live_server, smtp)
    wait_until_expired(link)

    response = page.goto(link)
    assert response.status == 400
    expect_page(page, live_server, "/auth/reset_password", "This link is not valid")
    page.get_by_role("link", name="Request a new link").click()
    expect_page(page, live_server, "/auth/reset_password_request", "Reset your password")
    assert browser_errors == []


def test_a_used_link_is_refused_even_in_a_tab_opened_before_its_use(
    page, live_server, smtp, browser_errors
):
    """Two tabs of one browser share the session: the second submission must not count."""
    live_server.add_user("susan")
    link = forgot_password(page, live_server, smtp)
    page.goto(link)
    other_tab = page.context.new_page()
    other_tab.goto(link)

    choose_password(page, NEW_PASSWORD)
    expect_alerts(page, "Your password has been reset. Please sign in with it.")
    new_hash = live_server.password_hash("susan")
    choose_password(other_tab, "another passphrase, from the other tab")
    expect_page(other_tab, live_server, "/auth/reset_password", "This link is not valid")
    assert live_server.password_hash("susan") == new_hash

    response = page.goto(link)
    assert response.status == 400
    expect_page(page, live_server, "/auth/reset_password", "This link is not valid")
    expect(page.get_by_text("has been used already")).to_be_visible()
    assert browser_errors == []


def test_a_person_changes_their_email_address_and_confirms_it_in_another_browser(
    page, browser, live_server, smtp, browser_errors
):
    live_server.add_user("susan")
    sign_in(page, live_server, "susan", PASSWORD)
    page.goto(live_server.url("/user/susan"))
    page.get_by_role("link", name="Change email").click()
    expect_page(page, live_server, "/auth/change_email", "Change your email address")
    page.get_by_label("New email address").fill("susan.new@example.com")
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_role("button", name="Send a confirmation link").click()
    expect_page(page, live_server, "/user/susan", "susan")
    expect_alerts(page, re.compile(r"^We sent a link to the new address"))

    smtp.wait_for(2)
    notice = last_email(smtp, "A change of your email address was requested", "susan@example.com")
    assert "s***@example.com" in notice.get_body(preferencelist=("plain",)).get_content()
    link = email_link(last_email(smtp, "Confirm your new email address"), "confirm_email")

    other = browser.new_context()  # a phone's mail app, say: not signed in
    try:
        tab = other.new_page()
        tab.goto(link)
        tab.get_by_role("button", name="Confirm the new address").click()
        expect_page(tab, live_server, "/auth/login", "Sign in")
        expect_alerts(tab, "Your email address is now susan.new@example.com.")
        sign_in(tab, live_server, "susan.new@example.com", PASSWORD)
        expect_page(tab, live_server, "/index", "Hi, susan!")
    finally:
        other.close()
    assert browser_errors == []
