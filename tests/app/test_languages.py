"""Which language a page is in: a user's own choice, else a visitor's, else their browser's."""

import pytest
import sqlalchemy as sa
from flask import template_rendered

from microblog.extensions import db
from microblog.i18n import LANGUAGE_COOKIE
from microblog.models import User
from support.auth import flashes
from support.languages import language_of, set_locale, stored_locale


def lang_cookie(response):
    return [
        c for c in response.headers.getlist("Set-Cookie") if c.startswith(LANGUAGE_COOKIE + "=")
    ]


@pytest.fixture
def signed_in(app, client, make_user, auth):
    make_user("susan")
    auth.login()
    return client


# Visitors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_language", "expected"),
    [
        (None, "en"),
        ("ru", "ru"),
        ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", "ru"),
        ("en-US,en;q=0.9,ru;q=0.8", "en"),
        ("ru;q=0.2, en;q=0.9", "en"),
        ("de-DE, fr;q=0.9, ru;q=0.5", "ru"),
        ("de-DE, fr;q=0.9", "en"),
        ("*", "en"),
        ("ru;q=0", "en"),
        ("garbage;;;q=x", "en"),
    ],
)
def test_a_visitor_gets_the_language_their_browser_asks_for(client, accept_language, expected):
    headers = {"Accept-Language": accept_language} if accept_language else {}
    page = client.get("/", headers=headers)
    assert language_of(page) == expected
    assert ("Скажите в двух словах." in page.text) == (expected == "ru")
    assert ("Say it in a few words." in page.text) == (expected == "en")


def test_a_visitor_who_picks_a_language_keeps_it_without_the_parameter(client):
    english_browser = {"Accept-Language": "en-US,en;q=0.9"}
    chosen = client.get("/explore?lang=ru", headers=english_browser)
    assert language_of(chosen) == "ru"
    (cookie,) = lang_cookie(chosen)
    assert cookie.startswith("lang=ru;")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=" in cookie

    later = client.get("/", headers=english_browser)
    assert language_of(later) == "ru"
    assert lang_cookie(later) == []  # nothing new to remember

    back = client.get("/?lang=en", headers={"Accept-Language": "ru"})
    assert language_of(back) == "en"
    assert language_of(client.get("/explore", headers={"Accept-Language": "ru"})) == "en"


@pytest.mark.parametrize("bogus", ["xx", "RU", "ru-RU", "<script>", "", "en,ru"])
def test_a_language_we_do_not_have_is_ignored(client, bogus):
    page = client.get("/", query_string={"lang": bogus}, headers={"Accept-Language": "ru"})
    assert language_of(page) == "ru"
    assert lang_cookie(page) == []
    client.set_cookie(LANGUAGE_COOKIE, bogus or "zz")
    assert language_of(client.get("/", headers={"Accept-Language": "ru"})) == "ru"


def test_the_footer_offers_the_other_language_named_in_itself(client):
    english = client.get("/").text
    assert '<span lang="en" aria-current="true" class="fw-semibold">English</span>' in english
    assert '<a lang="ru" hreflang="ru" href="?lang=ru" rel="alternate">Русский</a>' in english

    russian = client.get("/?lang=ru").text
    assert '<span lang="ru" aria-current="true" class="fw-semibold">Русский</span>' in russian
    assert '<a lang="en" hreflang="en" href="?lang=en" rel="alternate">English</a>' in russian
    assert '<nav aria-label="Язык">' in russian


def test_every_page_says_it_varies_with_the_language_headers(client, signed_in):
    for path in ("/", "/explore", "/auth/login?lang=ru", "/user/susan"):
        vary = {v.strip() for v in client.get(path).headers["Vary"].split(",")}
        assert {"Accept-Language", "Cookie"} <= vary, path


def test_static_files_are_the_same_in_every_language(client):
    for path in ("/static/app.js", "/bootstrap/static/css/bootstrap.min.css"):
        with client.get(path, headers={"Accept-Language": "ru"}) as response:
            assert response.status_code == 200, path
            assert "Accept-Language" not in response.headers.get("Vary", ""), path


def test_the_cached_sign_in_page_is_never_served_in_the_other_language(app):
    rendered = []

    def record(sender, template, context, **extra):
        rendered.append(template.name)

    template_rendered.connect(record, app)
    for accept, expected in [("ru", "ru"), ("en", "en"), ("ru", "ru"), ("en", "en")]:
        page = app.test_client().get("/auth/login", headers={"Accept-Language": accept})
        assert language_of(page) == expected
        assert ('href="#content">Перейти к содержимому</a>' in page.text) == (expected == "ru")
    chosen = app.test_client().get("/auth/login?lang=ru", headers={"Accept-Language": "en"})
    assert language_of(chosen) == "ru"
    assert len(rendered) == 2  # once per language, then from the cache


# Signed-in users ------------------------------------------------------------------------


def test_a_users_own_language_wins_over_cookie_and_browser(app, client, signed_in):
    set_locale(app, "susan", "ru")
    client.set_cookie(LANGUAGE_COOKIE, "en")
    page = client.get("/?lang=en", headers={"Accept-Language": "en-US,en"})
    assert language_of(page) == "ru"
    assert "Привет, susan!" in page.text

    set_locale(app, "susan", "en")
    client.set_cookie(LANGUAGE_COOKIE, "ru")
    page = client.get("/explore", headers={"Accept-Language": "ru"})
    assert language_of(page) == "en"


def test_a_users_footer_sends_them_to_their_profile_to_change_language(signed_in):
    footer = signed_in.get("/explore").text
    assert '<a lang="ru" hreflang="ru" href="/edit_profile">Русский</a>' in footer


def test_edit_profile_offers_the_languages_named_in_themselves(app, signed_in):
    form = signed_in.get("/edit_profile").text
    assert '<select class="form-select" id="locale" name="locale">' in form
    assert '<option lang="en" selected value="en">English</option>' in form
    assert '<option lang="ru" value="ru">Русский</option>' in form


def test_choosing_russian_in_edit_profile_turns_the_next_page_russian(app, signed_in):
    data = {"username": "susan", "about_me": "", "locale": "ru"}
    response = signed_in.post("/edit_profile", data=data, headers={"Accept-Language": "en"})
    assert response.headers["Location"] == "/edit_profile"
    assert stored_locale(app, "susan") == "ru"
    page = signed_in.get("/edit_profile", headers={"Accept-Language": "en"})
    assert language_of(page) == "ru"
    assert flashes(page) == ["Изменения сохранены."]
    assert '<option lang="ru" selected value="ru">Русский</option>' in page.text

    data["locale"] = "en"
    signed_in.post("/edit_profile", data=data)
    page = signed_in.get("/edit_profile", headers={"Accept-Language": "ru"})
    assert language_of(page) == "en"
    assert flashes(page) == ["Your changes have been saved."]


@pytest.mark.parametrize("bogus", ["de", "", "ru-RU", "EN", "ru\u200b"])
def test_a_language_we_do_not_have_is_a_form_error(app, signed_in, bogus):
    data = {"username": "susan2", "about_me": "new", "locale": bogus}
    page = signed_in.post("/edit_profile", data=data)
    assert page.status_code == 200
    assert "Not a valid choice." in page.text
    with app.app_context():
        user = db.session.scalar(sa.select(User))
        assert (user.username, user.about_me, user.locale) == ("susan", None, "en")

    set_locale(app, "susan", "ru")
    page = signed_in.post("/edit_profile", data=data)
    assert page.status_code == 200
    assert "Неверный вариант." in page.text  # WTForms' own message, in Russian
    assert stored_locale(app, "susan") == "ru"


def test_a_form_without_the_language_keeps_the_users(app, signed_in):
    set_locale(app, "susan", "ru")
    response = signed_in.post("/edit_profile", data={"username": "susan", "about_me": "Hi"})
    assert response.status_code == 302
    assert stored_locale(app, "susan") == "ru"


def test_a_stored_language_we_no_longer_have_reads_as_the_default(app, signed_in):
    set_locale(app, "susan", "de")  # e.g. a language an operator took out of LANGUAGES
    page = signed_in.get("/edit_profile", headers={"Accept-Language": "ru"})
    assert language_of(page) == "en"
    assert '<option lang="en" selected value="en">English</option>' in page.text
    signed_in.post("/edit_profile", data={"username": "susan", "about_me": ""})
    assert stored_locale(app, "susan") == "en"


@pytest.mark.settings(TRUSTED_HOSTS=["microblog.example"], PROPAGATE_EXCEPTIONS=True)
@pytest.mark.parametrize(
    ("accept_language", "expected"),
    [
        ("en", "Bad request: this site is not served under that host name.\n"),
        ("ru", "Неверный запрос: этот сайт не обслуживается под таким именем хоста.\n"),
    ],
)
def test_an_untrusted_host_is_refused_in_the_readers_language(client, accept_language, expected):
    response = client.get("/", headers={"Host": "evil.example", "Accept-Language": accept_language})
    assert response.status_code == 400
    assert response.text == expected
