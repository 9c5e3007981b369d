"""Every email in its recipient's language: the stored locale, never the request's.

The mail worker writes each email inside the recipient's locale, so the
browser that caused it (an attacker's, a shared one, the owner's in another
language) does not choose its language. Each email is read back from the
real SMTP server, as a mail client would parse it.
"""

import logging
import re

import pytest
import sqlalchemy as sa

from microblog.extensions import db
from microblog.mail.outbox import DROPPED, OutboxMessage
from support.auth import PASSWORD, last_email
from support.languages import set_locale, stored_locale
from support.smtp import html_of, text_of

OTHER = {"en": "ru", "ru": "en"}
NEW_ADDRESS = "susan.new@example.com"
PARTS = (text_of, html_of)


def browser(app, language):
    """A browser whose Accept-Language asks for `language`."""
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
    return client


def sign_in(client, username="susan"):
    response = client.post("/auth/login", data={"username": username, "password": PASSWORD})
    assert response.headers["Location"] == "/index"
    return client


def english_phrases(message):
    """Runs of two English words left once links, addresses and markup are taken out."""
    found = []
    for part in PARTS:
        text = re.sub(r"<[^>]+>|https?://\S+|\S+@\S+", " ", part(message))
        found += re.findall(r"\b[A-Za-z]+\s+[A-Za-z]+\b", text)
    return found + re.findall(r"\b[A-Za-z]+\s+[A-Za-z]+\b", message["Subject"][12:])


# What each email says in each language: its subject and a sentence of its body.
EMAILS = {
    "reset": {
        "en": ("Reset your password", "To choose a new password"),
        "ru": ("Сброс пароля", "Чтобы задать новый пароль"),
    },
    "verify": {
        "en": ("Verify your email address", "Welcome to Microblog!"),
        "ru": ("Подтвердите адрес электронной почты", "Добро пожаловать в Microblog!"),
    },
    "address_taken": {
        "en": ("Someone tried to use your email address", "create a new Microblog account"),
        "ru": ("Кто-то пытался использовать ваш адрес электронной почты", "создать новый аккаунт"),
    },
    "change_email": {
        "en": ("Confirm your new email address", "To confirm"),
        "ru": ("Подтвердите новый адрес электронной почты", "Чтобы подтвердить"),
    },
    "change_notice": {
        "en": ("A change of your email address was requested", "asked to change its email"),
        "ru": ("Запрошена смена адреса электронной почты", "попросил сменить его адрес"),
    },
    "password_changed": {
        "en": ("Your password was changed", "The password of your Microblog account"),
        "ru": ("Ваш пароль изменён", "Пароль вашего аккаунта Microblog изменён"),
    },
    "login_paused": {
        "en": ("Sign-in to your account is paused", "10 wrong passwords in a row"),
        "ru": ("Вход в ваш аккаунт приостановлен", "неверно 10 раз подряд"),
    },
    "new_sign_in": {
        "en": ("New sign-in to your account", "from a browser it had not seen before"),
        "ru": ("Новый вход в ваш аккаунт", "вошли из браузера"),
    },
    "goodbye": {
        "en": ("Your account was deleted", "this is the last email we send you"),
        "ru": ("Ваш аккаунт удалён", "это последнее письмо"),
    },
}


def cause(kind, app, client):
    """Do what makes the email of this kind go to susan; returns its recipient."""
    if kind == "reset":
        client.post("/auth/reset_password_request", data={"email": "susan@example.com"})
    elif kind == "verify":
        client.post("/auth/resend_verification", data={"email": "susan@example.com"})
    elif kind == "address_taken":
        client.post(
            "/auth/register",
            data={
                "username": "mallory",
                "email": "susan@example.com",
                "password": PASSWORD,
                "password2": PASSWORD,
            },
        )
    elif kind in ("change_email", "change_notice"):
        sign_in(client).post(
            "/auth/change_email", data={"email": NEW_ADDRESS, "password": PASSWORD}
        )
        return NEW_ADDRESS if kind == "change_email" else "susan@example.com"
    elif kind == "password_changed":
        new = "another long and fine passphrase"
        sign_in(client).post(
            "/auth/change_password",
            data={"current_password": PASSWORD, "password": new, "password2": new},
        )
    elif kind == "login_paused":
        for n in range(10):
            client.post("/auth/login", data={"username": "susan", "password": f"wrong {n}"})
    elif kind == "new_sign_in":
        sign_in(browser(app, client.environ_base["HTTP_ACCEPT_LANGUAGE"]))  # known silently
        sign_in(client)
    elif kind == "goodbye":
        sign_in(client).post("/auth/delete_account", data={"password": PASSWORD})
    return "susan@example.com"


@pytest.mark.parametrize("locale", ["en", "ru"])
@pytest.mark.parametrize("kind", EMAILS)
def test_every_email_is_written_in_the_recipients_language_whatever_the_browser(
    app, make_user, deliver, smtp, kind, locale
):
    make_user("susan", verified=kind != "verify")
    set_locale(app, "susan", locale)
    recipient = cause(kind, app, browser(app, OTHER[locale]))
    deliver()
    subject, sentence = EMAILS[kind][locale]
    message = last_email(smtp, subject, to=recipient)
    for part in PARTS:
        assert sentence in " ".join(part(message).split())
    if locale == "ru":
        assert "Здравствуйте, " in text_of(message)
        assert english_phrases(message) == []
    else:
        assert "Dear " in text_of(message)
        assert not re.search("[а-яА-ЯёЁ]", text_of(message) + html_of(message))


def test_a_russian_subject_is_rfc2047_encoded_and_the_body_is_utf8(app, make_user, deliver, smtp):
    make_user("susan")
    set_locale(app, "susan", "ru")
    browser(app, "en").post("/auth/reset_password_request", data={"email": "susan@example.com"})
    deliver()
    [message] = smtp.wait_for(1)
    raw = dict(message.raw_items())
    assert raw["Subject"].isascii() and "=?utf-8?" in raw["Subject"]
    assert message["Subject"] == "[Microblog] Сброс пароля"
    for part in (message.get_body(("plain",)), message.get_body(("html",))):
        assert part.get_content_charset() == "utf-8"
    assert "Ссылка одноразовая и действует 10 минут." in text_of(message)


@pytest.mark.settings(MAIL_DEFAULT_SENDER="Микроблог <no-reply@example.com>")
def test_a_sender_name_outside_ascii_is_encoded_too(app, make_user, deliver, smtp):
    make_user("susan")
    browser(app, "en").post("/auth/reset_password_request", data={"email": "susan@example.com"})
    deliver()
    [message] = smtp.wait_for(1)
    raw = dict(message.raw_items())
    assert raw["From"].isascii() and raw["From"].startswith("=?utf-8?")
    assert message["From"].addresses[0].display_name == "Микроблог"
    assert message["From"].addresses[0].addr_spec == "no-reply@example.com"


@pytest.mark.settings(MAIL_SERVER=None)
def test_without_a_mail_server_the_log_shows_the_russian_subject_readable(
    app, make_user, deliver, caplog
):
    caplog.set_level(logging.INFO, logger="microblog.mail")
    make_user("susan")
    set_locale(app, "susan", "ru")
    browser(app, "en").post("/auth/reset_password_request", data={"email": "susan@example.com"})
    deliver()
    [record] = [r for r in caplog.records if r.name == "microblog.mail"]
    assert "Subject: [Microblog] Сброс пароля\n" in record.getMessage()


@pytest.mark.parametrize(("stored", "browser_language"), [("ru", "en"), ("en", "ru")])
def test_a_reset_asked_from_a_browser_in_another_language_arrives_in_the_owners(
    app, make_user, deliver, smtp, stored, browser_language
):
    make_user("susan")
    set_locale(app, "susan", stored)
    client = browser(app, browser_language)
    client.post("/auth/reset_password_request", data={"email": "susan@example.com"})
    deliver()
    last_email(smtp, EMAILS["reset"][stored][0], to="susan@example.com")


def test_registering_from_a_russian_browser_stores_russian_and_verifies_in_russian(
    app, deliver, smtp
):
    register(browser(app, "ru-RU,ru;q=0.9,en;q=0.5"))
    assert stored_locale(app, "susan") == "ru"
    deliver()
    message = last_email(smtp, "Подтвердите адрес электронной почты", to="susan@example.com")
    assert "Добро пожаловать в Microblog!" in text_of(message)


def test_registering_after_choosing_russian_stores_the_choice_over_the_browsers(app, deliver, smtp):
    client = browser(app, "en-US,en;q=0.9")
    client.get("/auth/register?lang=ru")  # the footer's switcher, remembered in a cookie
    register(client)
    assert stored_locale(app, "susan") == "ru"
    deliver()
    last_email(smtp, "Подтвердите адрес электронной почты", to="susan@example.com")


def test_registering_with_no_language_asked_stores_english(app, client, deliver, smtp):
    register(client)
    assert stored_locale(app, "susan") == "en"
    deliver()
    last_email(smtp, "Verify your email address", to="susan@example.com")


def register(client):
    response = client.post(
        "/auth/register",
        data={
            "username": "susan",
            "email": "susan@example.com",
            "password": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.headers["Location"] == "/auth/login"


@pytest.mark.parametrize("language", ["en", "ru"])
def test_an_unknown_address_gets_nothing_in_any_language(app, deliver, smtp, language):
    client = browser(app, language)
    client.post("/auth/reset_password_request", data={"email": "nobody@example.com"})
    deliver()
    assert smtp.messages == []
    with app.app_context():
        assert db.session.scalars(sa.select(OutboxMessage.state)).all() == [DROPPED]


def test_the_goodbye_is_in_the_language_the_account_had(app, make_user, deliver, smtp):
    make_user("susan")
    set_locale(app, "susan", "ru")
    client = sign_in(browser(app, "en"))
    client.post("/auth/delete_account", data={"password": PASSWORD})
    with app.app_context():
        goodbye = db.session.scalar(sa.select(OutboxMessage).where(OutboxMessage.kind != "email"))
        assert goodbye.context["locale"] == "ru"
    deliver()
    message = last_email(smtp, "Ваш аккаунт удалён", to="susan@example.com")
    assert "Здравствуйте, susan!" in text_of(message)


def test_after_changing_language_the_next_emails_come_in_the_new_one(app, make_user, deliver, smtp):
    make_user("susan")
    client = browser(app, "en")
    client.post("/auth/reset_password_request", data={"email": "susan@example.com"})
    deliver()
    last_email(smtp, "Reset your password", to="susan@example.com")
    set_locale(app, "susan", "ru")
    client.post("/auth/reset_password_request", data={"email": "susan@example.com"})
    deliver()
    assert [m["Subject"] for m in smtp.wait_for(2)] == [
        "[Microblog] Reset your password",
        "[Microblog] Сброс пароля",
    ]


def test_dates_in_an_email_read_the_recipients_way(app, make_user, deliver, smtp):
    make_user("susan")
    set_locale(app, "susan", "ru")
    new = "another long and fine passphrase"
    sign_in(browser(app, "en")).post(
        "/auth/change_password",
        data={"current_password": PASSWORD, "password": new, "password2": new},
    )
    deliver()
    message = last_email(smtp, "Ваш пароль изменён", to="susan@example.com")
    months = "января|февраля|марта|апреля|мая|июня|июля|августа|сентября|октября|ноября|декабря"
    assert re.search(rf"изменён \d{{1,2}} ({months}) \d{{4}}\sг\.", text_of(message))


def test_the_new_sign_in_notice_names_the_browser_in_the_recipients_language(
    app, make_user, deliver, smtp
):
    make_user("susan")
    set_locale(app, "susan", "ru")
    sign_in(browser(app, "en"))
    phone = browser(app, "en")
    phone.environ_base["HTTP_USER_AGENT"] = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
    )
    sign_in(phone)
    deliver()
    message = last_email(smtp, "Новый вход в ваш аккаунт", to="susan@example.com")
    for part in PARTS:
        assert "Браузер: Safari на iOS" in part(message)
