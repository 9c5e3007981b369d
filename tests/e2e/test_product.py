"""The product as a person meets it, at desktop and phone widths, light and dark.

Set MICROBLOG_DOCS_SCREENSHOT=1 to refresh the README's pictures (docs/*.png).
"""

import re

import pytest

from support.auth import PASSWORD
from support.browser import WIDTHS, screenshot

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def sign_in(page, live_server, username):
    page.goto(live_server.url("/auth/login"))
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_visitor_signs_in_posts_edits_follows_and_deletes(
    page, live_server, browser_errors, width
):
    page.set_viewport_size(WIDTHS[width])
    live_server.add_user("bob", posts=["Bob was here first.\nSecond line."])
    live_server.add_user("susan")

    page.goto(live_server.url("/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Say it in a few words.")
    expect(page.get_by_role("link", name="Create your account")).to_be_visible()
    expect(page.locator(".post-body")).to_have_text(["Bob was here first.\nSecond line."])
    screenshot(page, f"welcome-{width}")

    sign_in(page, live_server, "susan")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hi, susan!")
    expect(page.get_by_text("Your timeline is empty")).to_be_visible()

    box = page.get_by_label("What's on your mind?")
    counter = page.locator("#post-counter")
    box.fill("Hello")
    expect(counter).to_have_text("275 characters left")
    box.fill("x" * 281)
    expect(counter).to_have_text("1 character too many")
    expect(box).to_have_class(re.compile(r"\bis-invalid\b"))
    page.get_by_role("button", name="Post", exact=True).click()
    expect(page.locator(".invalid-feedback")).to_have_text(
        "Posts can be up to 280 characters long; this one has 281. Please shorten it by 1."
    )
    page.get_by_label("What's on your mind?").fill("My first post")
    page.get_by_role("button", name="Post", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("Your post is now live!")
    card = page.locator("article.post").first
    expect(card.locator("time")).to_have_text("just now")
    expect(card.locator("time")).to_have_attribute("title", re.compile(r"UTC$"))

    card.get_by_role("link", name="Edit this post").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit your post")
    page.get_by_label("What's on your mind?").fill("My first post, corrected")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".post-body")).to_have_text(["My first post, corrected"])
    expect(page.locator("article.post").get_by_text("edited")).to_be_visible()

    page.goto(live_server.url("/user/bob"))
    expect(page.locator(".about-me, .post-body").last).to_have_text(
        "Bob was here first.\nSecond line."
    )
    page.get_by_role("button", name="Follow").click()
    expect(page.get_by_role("alert")).to_have_text("You are following bob.")
    page.get_by_role("link", name="1 follower").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("People following bob")
    expect(page.locator(".person")).to_have_text([re.compile("susan")])

    if width == "phone":
        page.get_by_role("button", name="Toggle navigation").click()
    page.get_by_role("link", name="Home").click()
    expect(page.locator(".post-body")).to_have_text(
        ["My first post, corrected", "Bob was here first.\nSecond line."]
    )
    screenshot(page, f"home-{width}")

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("article.post").first.get_by_role("button", name="Delete this post").click()
    expect(page.get_by_role("alert")).to_have_text("Your post has been deleted.")
    expect(page.locator(".post-body")).to_have_text(["Bob was here first.\nSecond line."])
    assert browser_errors == []


def test_the_theme_follows_the_system(page, live_server, browser_errors):
    for scheme in ("dark", "light"):
        page.emulate_media(color_scheme=scheme)
        page.goto(live_server.url("/"))
        expect(page.locator("html")).to_have_attribute("data-bs-theme", scheme)
    page.emulate_media(color_scheme="dark")  # a change while the page is open
    expect(page.locator("html")).to_have_attribute("data-bs-theme", "dark")
    assert browser_errors == []


def test_the_password_forms_name_the_account_for_password_managers(
    page, live_server, browser_errors
):
    live_server.add_user("susan")
    sign_in(page, live_server, "susan")
    page.goto(live_server.url("/auth/change_password"))
    username = page.locator("input[autocomplete=username]")
    expect(username).to_have_value("susan")
    expect(username).to_be_hidden()
    assert browser_errors == []
