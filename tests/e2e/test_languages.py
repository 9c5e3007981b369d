"""A browser whose language is Russian gets the site in Russian; switching back is a click.

Chromium started with locale="ru-RU" sends `Accept-Language: ru-RU,ru` as a
Russian reader's browser does. Set MICROBLOG_DOCS_SCREENSHOT=1 to refresh the
README's Russian pictures (docs/*-ru.png).
"""

import re

import pytest

from support.auth import PASSWORD, email_link
from support.browser import VIEWPORT, WIDTHS, screenshot, watch_for_errors
from support.languages import set_locale

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture
def russian_page(browser, browser_errors):
    """A fresh browser profile whose language is Russian."""
    context = browser.new_context(viewport=VIEWPORT, locale="ru-RU")
    context.set_default_timeout(5000)
    context.on("page", lambda tab: watch_for_errors(tab, browser_errors))
    yield context.new_page()
    context.close()


def sign_in(page, live_server, username):
    """By the fields' names: the sign-in page's own words belong to another lane."""
    page.goto(live_server.url("/auth/login"))
    page.locator("#username").fill(username)
    page.locator("#password").fill(PASSWORD)
    page.locator("#submit").click()


def test_a_russian_reader_sees_the_site_in_russian_and_switches_to_english(
    russian_page, live_server, browser_errors
):
    page = russian_page
    page.set_viewport_size(WIDTHS["desktop"])
    live_server.add_user("bob", posts=["Привет! Это первая запись."])
    live_server.add_user("susan")

    page.goto(live_server.url("/"))
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.get_by_role("heading", level=1)).to_have_text("Скажите в двух словах.")
    expect(page.get_by_role("link", name="Создать аккаунт")).to_be_visible()
    expect(page.locator("article.post time")).to_have_text("только что")
    screenshot(page, "welcome-desktop-ru")

    set_locale(live_server.app, "susan", "ru")
    sign_in(page, live_server, "susan")
    expect(page.get_by_role("heading", level=1)).to_have_text("Привет, susan!")
    expect(page.get_by_text("Ваша лента пуста")).to_be_visible()

    box = page.get_by_label("О чём вы думаете?")
    counter = page.locator("#post-counter")
    expect(counter).to_have_text("Осталось 280 символов")
    box.fill("Привет")
    expect(counter).to_have_text("Осталось 274 символа")
    box.fill("x" * 279)
    expect(counter).to_have_text("Остался 1 символ")
    box.fill("x" * 285)
    expect(counter).to_have_text("Лишних 5 символов")
    box.fill("Моя первая запись")
    page.get_by_role("button", name="Опубликовать").click()
    expect(page.get_by_role("alert")).to_have_text("Запись опубликована!")
    card = page.locator("article.post").first
    expect(card.locator("time")).to_have_text("только что")
    expect(card.locator("time")).to_have_attribute("title", re.compile(r"^\d+ [а-я]+ \d{4}"))

    page.goto(live_server.url("/user/bob"))
    page.get_by_role("button", name="Подписаться").click()
    expect(page.get_by_role("alert")).to_have_text("Вы подписались на bob.")
    expect(page.locator(".followers")).to_have_text("1 подписчик")
    page.get_by_role("link", name="Главная").click()
    expect(page.locator(".post-body")).to_have_text(
        ["Моя первая запись", "Привет! Это первая запись."]
    )
    screenshot(page, "home-desktop-ru")

    page.locator("footer").get_by_role("link", name="English").click()  # to Edit profile
    expect(page.get_by_role("heading", level=1)).to_have_text("Изменить профиль")
    page.get_by_role("combobox", name="Язык").select_option(label="English")
    page.get_by_role("button", name="Сохранить").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("alert")).to_have_text("Your changes have been saved.")
    expect(page.get_by_role("combobox", name="Language")).to_have_value("en")
    page.get_by_role("link", name="Home").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Hi, susan!")
    expect(page.locator("article.post time").first).to_have_text("just now")
    assert browser_errors == []


def test_a_visitor_switches_language_with_the_footer_link(
    russian_page, live_server, browser_errors
):
    page = russian_page
    page.goto(live_server.url("/explore"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Обзор")
    page.locator("footer").get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Explore")

    page.get_by_role("link", name="Home").click()  # the choice outlives the link
    expect(page).to_have_url(live_server.url("/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Say it in a few words.")
    page.locator("footer").get_by_role("link", name="Русский").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Скажите в двух словах.")
    page.get_by_role("link", name="Обзор").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Обзор")
    assert browser_errors == []


def test_a_russian_reader_who_registers_gets_russian_mail_and_pages(
    russian_page, live_server, smtp, browser_errors
):
    page = russian_page
    page.goto(live_server.url("/"))
    page.get_by_role("link", name="Создать аккаунт").click()
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    page.locator("#username").fill("susan")
    page.locator("#email").fill("susan@example.com")
    page.locator("#password").fill(PASSWORD)
    page.locator("#password2").fill(PASSWORD)
    page.locator("#submit").click()
    expect(page).to_have_url(live_server.url("/auth/login"))

    verification = smtp.wait_for(1)[0]
    assert verification["Subject"] == "[Microblog] Подтвердите адрес электронной почты"
    page.goto(email_link(verification, "verify_email"))
    page.locator("#password").fill(PASSWORD)
    page.locator("#submit").click()
    expect(page).to_have_url(live_server.url("/index"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Привет, susan!")
    assert browser_errors == []
