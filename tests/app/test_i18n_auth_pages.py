"""The account pages and the error pages speak Russian: every word, with the right plural forms.

A visitor whose browser asks for Russian, and a signed-in user whose stored
locale is "ru" (whatever their browser says), get each page in Russian;
English stays the default. Beyond a key Russian sentence per page, one
generic check keeps every page complete: render it in English and in
Russian, take every English text of the catalog found on the English page,
and none of them may be left on the Russian one.
"""

import re
import secrets
from datetime import timedelta
from html import unescape
from importlib import resources
from io import BytesIO

import pytest
import sqlalchemy as sa
from babel.messages.extract import extract_python
from flask import abort

from microblog import clock
from microblog.auth import strength
from microblog.auth.models import SessionRecord
from microblog.auth.passwords import HashingBusy
from microblog.auth.sessions import digest
from microblog.auth.tokens import CHANGE_EMAIL, make_reset_token, make_token
from microblog.extensions import db
from microblog.models import User
from support.auth import PASSWORD, AuthActions, flashes
from support.untranslated import assert_nothing_leaks, visible

RUSSIAN = {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}
ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


# --- the generic check -------------------------------------------------------------------


def words(html):
    """What a reader sees of a page: tags dropped, entities decoded, spaces collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
    return re.sub(r" ([.,;:!?])", r"\1", text)  # "<a>Reset it</a>." reads "Reset it."


def assert_translated(english, russian, phrase):
    """`russian` is the Russian page of `english`: its language, `phrase`, and no English left."""
    assert '<html lang="en"' in english.text
    assert '<html lang="ru"' in russian.text
    assert phrase in words(russian.text)
    assert_nothing_leaks(visible(english.text), visible(russian.text))


# --- who is looking ----------------------------------------------------------------------


def set_locale(app, username, locale):
    with app.app_context():
        db.session.execute(sa.update(User).where(User.username == username).values(locale=locale))
        db.session.commit()


class Stranger:
    """Someone signed out: their browser's Accept-Language chooses."""

    def __init__(self, app, client):
        self.app, self.client = app, client

    def open(self, language, path, method="GET", **kwargs):
        headers = RUSSIAN if language == "ru" else ENGLISH
        return self.client.open(path, method=method, headers=headers, **kwargs)


class Member(Stranger):
    """Susan, signed in: her stored locale chooses, and her browser asks for the other one."""

    def __init__(self, app, client):
        super().__init__(app, client)
        assert AuthActions(client).login().headers["Location"] == "/index"

    def open(self, language, path, method="GET", **kwargs):
        set_locale(self.app, "susan", language)
        other = ENGLISH if language == "ru" else RUSSIAN
        return self.client.open(path, method=method, headers=other, **kwargs)


@pytest.fixture
def visitor(app, client, make_user):
    make_user("susan")
    return Stranger(app, client)


@pytest.fixture
def member(app, client, make_user):
    make_user("susan")
    return Member(app, client)


@pytest.fixture(params=["visitor", "member"])
def anyone(request, app, client, make_user):
    make_user("susan")
    return {"visitor": Stranger, "member": Member}[request.param](app, client)


def both(who, path, status, method="GET", **kwargs):
    """The page in English and in Russian, each with the expected status."""
    english = who.open("en", path, method, **kwargs)
    russian = who.open("ru", path, method, **kwargs)
    assert (english.status_code, russian.status_code) == (status, status), russian.text
    return english, russian


# --- every GET page of the account blueprint ----------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "phrase"),
    [
        ("/auth/login", 200, "Забыли пароль? Сбросьте его."),
        ("/auth/register", 200, "Регистрация"),
        ("/auth/reset_password_request", 200, "мы пришлём ссылку, по которой можно задать"),
        ("/auth/resend_verification", 200, "мы пришлём новую ссылку для подтверждения"),
        ("/auth/reset_password", 400, "Ссылка для сброса пароля срабатывает один раз"),
        ("/auth/verify_email/not-a-token", 400, "действуют 48 часов"),
        ("/auth/confirm_email/not-a-token", 400, "Запросить новую ссылку для подтверждения"),
    ],
)
def test_every_page_for_visitors_is_in_russian(visitor, path, status, phrase):
    assert_translated(*both(visitor, path, status), phrase)


@pytest.mark.parametrize(
    ("path", "phrase"),
    [
        ("/auth/change_password", "Смена пароля"),
        ("/auth/change_email", "До тех пор входите с текущим адресом."),
        ("/auth/delete_account", "отменить это нельзя"),
        ("/auth/sessions", "Вы вошли в аккаунт на 1 устройстве."),
    ],
)
def test_every_page_for_a_signed_in_user_follows_her_stored_locale(member, path, phrase):
    assert_translated(*both(member, path, 200), phrase)


def test_the_devices_page_names_the_browser_in_russian(member):
    english, russian = both(member, "/auth/sessions", 200)
    assert "Это устройство" in russian.text and "This device" in english.text
    assert "Python" in words(russian.text)  # the test client's browser, named as it is
    assert re.search(r"вход \d\d\.\d\d\.\d{4}, \d\d:\d\d UTC", words(russian.text))


def test_the_invalid_link_page_for_a_signed_in_user(member):
    english, russian = both(member, "/auth/confirm_email/not-a-token", 400)
    assert_translated(english, russian, "Сменить адрес электронной почты")


def test_the_reset_form_of_a_live_link(app, visitor):
    with app.app_context():
        token = make_reset_token(db.session.scalar(sa.select(User)))
    visitor.client.get(f"/auth/reset_password/{token}")
    english, russian = both(visitor, "/auth/reset_password", 200)
    assert_translated(english, russian, "Придумайте новый пароль")
    assert "Нужно не меньше" not in russian.text  # nothing posted, no error yet


def test_the_address_taken_page(app, visitor, make_user):
    with app.app_context():
        susan = db.session.scalar(sa.select(User).where(User.username == "susan"))
        token = make_token(susan, CHANGE_EMAIL, email="taken@example.com")
    make_user("john", email="taken@example.com")
    english, russian = both(visitor, f"/auth/confirm_email/{token}", 409, method="POST")
    assert_translated(english, russian, "Этот адрес теперь принадлежит другому аккаунту")


def test_the_confirm_form_of_a_change_link(app, visitor):
    with app.app_context():
        susan = db.session.scalar(sa.select(User).where(User.username == "susan"))
        token = make_token(susan, CHANGE_EMAIL, email="new@example.com")
    english, russian = both(visitor, f"/auth/confirm_email/{token}", 200)
    assert_translated(english, russian, "до тех пор остаётся старый")


def test_the_right_password_on_an_unverified_account_is_answered_as_a_wrong_one(visitor, make_user):
    make_user("newbie", verified=False)
    data = {"username": "newbie", "password": PASSWORD}
    english, russian = both(visitor, "/auth/login", 200, method="POST", data=data)
    assert_translated(english, russian, "Неверное имя пользователя или пароль")


# --- form errors ---------------------------------------------------------------------------


REGISTRATION = {
    "username": "reggie",
    "email": "reggie@example.com",
    "password": PASSWORD,
    "password2": PASSWORD,
}


@pytest.mark.parametrize(
    ("fields", "phrase"),
    [
        ({"username": ""}, "Обязательное поле."),  # WTForms' own catalog
        ({"email": "not-an-address"}, "В адресе электронной почты должен быть знак @."),
        ({"email": "josé@example.com"}, "Буквы не из латиницы перед знаком @ не поддерживаются"),
        ({"email": "susan@localhost"}, "Адрес электронной почты указан с ошибкой."),
        ({"email": "a@b.example, c@d.example"}, "Адрес электронной почты указан с ошибкой."),
        ({"password": "short"}, "Нужно не меньше 15 символов"),
        ({"password": "reggie-the-great-1"}, "Не используйте в пароле имя пользователя"),
        ({"password": "manchesterunited"}, "Это слишком распространённый пароль"),
        ({"password2": "something else entirely"}, "Пароли не совпадают."),
    ],
)
def test_registration_errors_are_in_russian(visitor, fields, phrase):
    data = {**REGISTRATION, **fields}
    english, russian = both(visitor, "/auth/register", 200, method="POST", data=data)
    assert_translated(english, russian, phrase)


def test_wtforms_length_messages_come_from_its_russian_catalog(visitor):
    data = {"username": "x" * 300, "password": "whatever"}
    english, russian = both(visitor, "/auth/login", 200, method="POST", data=data)
    assert "Field cannot be longer than 254 characters." in english.text
    assert "Значение не должно содержать более 254 символов." in russian.text


def test_a_failed_sign_in_is_told_in_russian(visitor):
    data = {"username": "susan", "password": "not her password at all"}
    english, russian = both(visitor, "/auth/login", 200, method="POST", data=data)
    assert flashes(russian) == ["Неверное имя пользователя или пароль."]
    assert_translated(english, russian, "Неверное имя пользователя или пароль.")


def test_an_empty_sign_in_form_is_told_in_russian(visitor):
    data = {"username": "", "password": ""}
    english, russian = both(visitor, "/auth/login", 200, method="POST", data=data)
    assert russian.text.count("Обязательное поле.") == 2
    assert_translated(english, russian, "Обязательное поле.")


def test_a_bad_reset_request_is_told_in_russian(visitor):
    data = {"email": "susan@@example.com"}
    english, russian = both(visitor, "/auth/reset_password_request", 200, method="POST", data=data)
    assert_translated(english, russian, "Адрес электронной почты указан с ошибкой.")


@pytest.mark.parametrize(
    ("fields", "phrases"),
    [
        ({"current_password": "not my password"}, ["Это не ваш текущий пароль."]),
        (
            {"password": "passwordpassword", "password2": "passwordpassword"},
            ["Такой пароль слишком легко подобрать.", "Избегайте повторяющихся слов и символов."],
        ),
        (
            {"password": "P@ssword12345678", "password2": "P@ssword12345678"},
            ["Предсказуемые замены вроде «@» вместо «a» почти не помогают."],
        ),
        (
            {"password": "qwertyuiopasdfgh", "password2": "qwertyuiopasdfgh"},
            ["Он похож на распространённый пароль."],
        ),
        ({"password": PASSWORD, "password2": PASSWORD}, ["Это ваш текущий пароль"]),
    ],
)
def test_change_password_errors_are_in_russian(member, fields, phrases):
    data = {
        "current_password": PASSWORD,
        "password": "a brand new passphrase, never used",
        "password2": "a brand new passphrase, never used",
        **fields,
    }
    english, russian = both(member, "/auth/change_password", 200, method="POST", data=data)
    for phrase in phrases:
        assert_translated(english, russian, phrase)


def test_the_reset_form_errors_are_in_russian(app, visitor):
    with app.app_context():
        token = make_reset_token(db.session.scalar(sa.select(User)))
    visitor.client.get(f"/auth/reset_password/{token}")
    data = {"password": "abcdefghijklmnopqrst", "password2": "abcdefghijklmnopqrst"}
    english, russian = both(visitor, "/auth/reset_password", 200, method="POST", data=data)
    assert_translated(english, russian, "Последовательности вроде «abc» или «6543» легко угадать.")


def test_every_zxcvbn_sentence_is_in_our_catalog():
    """zxcvbn's feedback.py, read as Babel reads our code: nothing it can say is missing."""
    source = resources.files("zxcvbn").joinpath("feedback.py").read_bytes()
    said = {
        text for _line, _function, text, _comments in extract_python(BytesIO(source), ["_"], [], {})
    }
    assert said and said == strength.ZXCVBN_FEEDBACK


def test_a_sentence_zxcvbn_adds_later_gives_way_to_our_own_advice(app, monkeypatch):
    def newer_zxcvbn(password, **_options):
        return {"score": 0, "feedback": {"warning": "A new warning.", "suggestions": ["New."]}}

    monkeypatch.setattr(strength, "zxcvbn", newer_zxcvbn)
    with app.test_request_context(headers=RUSSIAN):
        problem = strength.strength_problem("whatever it is")
    assert problem == (
        "Такой пароль слишком легко подобрать. Такой пароль легко угадать. Добавьте несколько "
        "редких слов; хорошо подойдёт фраза, которую придумали бы только вы."
    )


# --- flashes -----------------------------------------------------------------------------


def test_flashes_of_the_account_views_are_in_russian(app, visitor):
    asked = visitor.open(
        "ru", "/auth/reset_password_request", "POST", data={"email": "x@y.example"}
    )
    assert flashes(visitor.open("ru", asked.headers["Location"])) == [
        "Проверьте почту: инструкции по сбросу пароля придут в письме."
    ]
    refused = visitor.open("ru", "/auth/sessions")
    assert flashes(visitor.open("ru", refused.headers["Location"])) == [
        "Войдите, чтобы открыть эту страницу."
    ]


def test_signing_out_is_told_in_the_language_of_the_user_who_left(member):
    """Her stored locale, not her browser's (which asks for English here)."""
    answer = member.open("ru", "/auth/logout", "POST")
    assert flashes(member.client.get(answer.headers["Location"])) == ["Вы вышли из аккаунта."]


def test_the_goodbye_is_in_the_language_of_the_deleted_account(member):
    answer = member.open("ru", "/auth/delete_account", "POST", data={"password": PASSWORD})
    shown = member.client.get(answer.headers["Location"], headers=ENGLISH, follow_redirects=True)
    assert "Ваш аккаунт и ваши записи удалены. До свидания!" in flashes(shown)


def test_signing_a_device_out_names_it_in_russian(app, member):
    laptop = AuthActions(app.test_client())
    laptop.client.environ_base["HTTP_USER_AGENT"] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"
    laptop.login()
    with app.app_context():
        record_id = db.session.scalar(sa.select(sa.func.max(SessionRecord.id)))
    answer = member.open("ru", f"/auth/sessions/{record_id}/revoke", "POST")
    assert flashes(member.open("ru", answer.headers["Location"])) == [
        "На устройстве «Firefox на Linux» выполнен выход."
    ]


# --- error pages ---------------------------------------------------------------------------


@pytest.fixture
def failing_routes(app):
    """Views that fail as the app can: an exception, a busy hasher, a malformed request."""

    def broken():
        raise RuntimeError("the view broke")

    def busy():
        raise HashingBusy()

    def refused(code):
        abort(code)

    app.add_url_rule("/test/broken", view_func=broken)
    app.add_url_rule("/test/busy", view_func=busy)
    app.add_url_rule("/test/abort/<int:code>", view_func=refused)


@pytest.mark.settings(PROPAGATE_EXCEPTIONS=False)  # answer 500 as in production
@pytest.mark.parametrize(
    ("path", "method", "status", "phrase"),
    [
        ("/auth/no-such-page", "GET", 404, "По этому адресу ничего нет."),
        ("/auth/logout", "GET", 405, "Эту страницу нельзя открыть таким способом."),
        ("/test/abort/400", "GET", 400, "Не удалось разобрать запрос."),
        ("/test/abort/403", "GET", 403, "У вас нет прав на это действие."),
        ("/test/broken", "GET", 500, "Произошла непредвиденная ошибка."),
        ("/test/busy", "GET", 503, "Сейчас сайт перегружен."),
    ],
)
def test_every_error_page_is_in_russian(failing_routes, anyone, path, method, status, phrase):
    english, russian = both(anyone, path, status, method)
    assert_translated(english, russian, phrase)
    assert "Вернуться на главную" in russian.text


def test_the_too_large_page_is_in_russian(anyone):
    body = {"username": "x" * (1024 * 1024)}
    english, russian = both(anyone, "/auth/login", 413, method="POST", data=body)
    assert_translated(english, russian, "Вы отправили больше данных, чем принимает этот сайт.")


@pytest.mark.settings(RATELIMIT_ENABLED=True, RESET_RATE_LIMIT="2 per minute")
def test_the_per_address_limit_page_is_in_russian(visitor):
    data = {"email": "x@y.example"}
    for _ in range(2):
        visitor.open("en", "/auth/reset_password_request", "POST", data=data)
    english, russian = both(visitor, "/auth/reset_password_request", 429, method="POST", data=data)
    assert_translated(english, russian, "Слишком много попыток с вашего адреса.")


@pytest.mark.settings(LOGIN_FAILURES_PER_ACCOUNT=2)
def test_the_paused_sign_in_page_is_in_russian(visitor):
    for guess in ("wrong one", "wrong two"):
        visitor.open("en", "/auth/login", "POST", data={"username": "susan", "password": guess})
    data = {"username": "susan", "password": "wrong three"}
    english, russian = both(visitor, "/auth/login", 429, method="POST", data=data)
    assert_translated(english, russian, "Вход в этот аккаунт приостановлен до")
    assert re.search(r"приостановлен до \d\d:\d\d UTC", words(russian.text))


@pytest.mark.settings(WTF_CSRF_ENABLED=True)
def test_an_expired_form_is_explained_in_russian(visitor):
    visitor.open("ru", "/auth/login")  # the session cookie, but no token sent back
    data = {"username": "susan", "password": PASSWORD}
    english, russian = both(visitor, "/auth/login", 400, method="POST", data=data)
    assert_translated(english, russian, "Форма устарела или была отправлена не с этого сайта.")


@pytest.mark.settings(WTF_CSRF_ENABLED=True)
def test_a_form_without_cookies_is_explained_in_russian(visitor):
    data = {"username": "susan", "password": PASSWORD, "csrf_token": "anything"}
    english, russian = both(visitor, "/auth/login", 400, method="POST", data=data)
    assert_translated(english, russian, "Ваш браузер не вернул cookie этого сайта")


# --- plural forms --------------------------------------------------------------------------


def add_devices(app, count):
    """`count` more live sign-ins of Susan's, as other browsers would have made them."""
    now = clock.utcnow()
    with app.app_context():
        susan = db.session.scalar(sa.select(User).where(User.username == "susan"))
        for _ in range(count):
            db.session.add(
                SessionRecord(
                    token_hash=digest(secrets.token_urlsafe(32)),
                    user_id=susan.id,
                    user_token=susan.session_token,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + timedelta(hours=1),
                    device="Firefox on Android",
                    address="198.51.100.0",
                )
            )
        db.session.commit()


@pytest.mark.parametrize(
    ("devices", "english", "russian"),
    [
        (1, "on 1 device.", "на 1 устройстве."),
        (2, "on 2 devices.", "на 2 устройствах."),
        (5, "on 5 devices.", "на 5 устройствах."),
        (21, "on 21 devices.", "на 21 устройстве."),
    ],
)
def test_the_devices_page_counts_in_both_languages(app, member, devices, english, russian):
    add_devices(app, devices - 1)
    english_page, russian_page = both(member, "/auth/sessions", 200)
    assert f"You are signed in {english}" in words(english_page.text)
    assert f"Вы вошли в аккаунт {russian}" in words(russian_page.text)
    assert words(russian_page.text).count("Firefox на Android") == devices - 1


@pytest.mark.parametrize(
    ("hours", "english", "russian"),
    [
        (1, "work for 1 hour,", "действуют 1 час"),
        (2, "work for 2 hours,", "действуют 2 часа"),
        (5, "work for 5 hours,", "действуют 5 часов"),
        (21, "work for 21 hours,", "действуют 21 час"),
    ],
)
def test_the_invalid_link_page_counts_hours(app, visitor, hours, english, russian):
    app.config["VERIFY_TOKEN_EXPIRES_IN"] = hours * 3600
    english_page, russian_page = both(visitor, "/auth/verify_email/not-a-token", 400)
    assert english in words(english_page.text)
    assert russian in words(russian_page.text)


@pytest.mark.parametrize(
    ("length", "english", "russian"),
    [
        (2, "Use at least 2 characters;", "Нужно не меньше 2 символов;"),
        (5, "Use at least 5 characters;", "Нужно не меньше 5 символов;"),
        (21, "Use at least 21 characters;", "Нужно не меньше 21 символа;"),
    ],
)
def test_the_password_length_is_counted_in_both_languages(app, visitor, length, english, russian):
    app.config["PASSWORD_MIN_LENGTH"] = length
    data = {**REGISTRATION, "password": "x", "password2": "x"}
    english_page, russian_page = both(visitor, "/auth/register", 200, method="POST", data=data)
    assert english in words(english_page.text)
    assert russian in words(russian_page.text)
