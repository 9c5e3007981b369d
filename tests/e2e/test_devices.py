"""The devices page in a real browser: see where you are signed in, and end it."""

import pytest

from support.auth import PASSWORD

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def sign_in(tab, live_server, remember=False):
    tab.goto(live_server.url("/auth/login"))
    tab.get_by_label("Username or email").fill("susan")
    tab.get_by_label("Password", exact=True).fill(PASSWORD)
    if remember:
        tab.get_by_label("Remember me").check()
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Hi, susan!")


def test_a_person_signs_their_phone_out_from_the_laptop(page, browser, live_server, browser_errors):
    live_server.add_user("susan")
    phone_context = browser.new_context(user_agent=PHONE)
    phone = phone_context.new_page()
    try:
        sign_in(phone, live_server, remember=True)
        sign_in(page, live_server)

        page.get_by_role("link", name="Devices").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Your devices")
        devices = page.locator("#devices .device")
        expect(devices).to_have_count(2)
        this_one = devices.filter(has_text="This device")
        expect(this_one).to_have_count(1)
        expect(this_one).to_contain_text("on Linux")  # headless Chromium's own User-Agent
        expect(devices.filter(has_text="Safari on iOS")).to_contain_text("127.0.0.x")

        page.get_by_role("button", name="Sign out everywhere else").click()
        expect(page.get_by_role("alert")).to_have_text(["Every other device has been signed out."])
        expect(page.locator("#devices .device")).to_have_count(1)

        phone.reload()
        expect(phone.get_by_role("heading", level=1)).to_have_text("Sign in")
        phone_context.clear_cookies(name="session")  # the remember cookie alone: also dead
        phone.goto(live_server.url("/index"))
        expect(phone.get_by_role("heading", level=1)).to_have_text("Sign in")

        page.locator("nav").get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
        expect(page.get_by_role("alert")).to_have_text(["You have been signed out."])
    finally:
        phone_context.close()
