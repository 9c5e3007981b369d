"""Every page of the main blueprint reads whole in English and in Russian.

Each page is rendered in both languages, for a visitor and for a signed-in
user. The Russian page must carry its key Russian strings, its dates and its
plural forms, and none of the catalog's English that the same page shows in
English: a string someone forgot to translate, or to mark, shows up here.
"""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.extensions import db
from microblog.models import Post, User
from support.languages import language_of, set_locale
from support.untranslated import assert_nothing_leaks, visible

ABOUT_BOB = "Lorem ipsum"  # no word of the catalog in the test's own text


@pytest.fixture
def people(app, make_user):
    """susan (who follows bob), bob (who posted and follows susan), carol (who did neither)."""
    now = clock.utcnow()
    ids = [make_user(name) for name in ("susan", "bob", "carol")]
    with app.app_context():
        susan, bob, _carol = (db.session.get(User, id) for id in ids)
        bob.about_me = ABOUT_BOB
        susan.follow(bob)
        bob.follow(susan)
        db.session.add(Post(body="Lorem", author=bob, timestamp=now - timedelta(hours=2)))
        mine = Post(body="Ipsum", author=susan, timestamp=now - timedelta(minutes=5))
        mine.edited_at = now - timedelta(minutes=3)
        db.session.add(mine)
        db.session.commit()
        return {"post": mine.id}


def visit(client, path, language):
    page = client.get(path, headers={"Accept-Language": language})
    assert language_of(page) == language, path
    return visible(page.text)


def both_languages(client, app, path, signed_in):
    """The page in English, then in Russian (the user's locale, or the visitor's browser)."""
    if signed_in:
        set_locale(app, "susan", "en")
    english = visit(client, path, "en")
    if signed_in:
        set_locale(app, "susan", "ru")
    russian = visit(client, path, "ru")
    return english, russian


VISITOR_PAGES = {
    "/": ["Скажите в двух словах.", "Создать аккаунт", "Последние записи", "Все записи в обзоре"],
    "/explore": ["Обзор", "Записи всех пользователей, сначала новые.", "2 часа назад"],
    "/user/bob": ["Войдите, чтобы подписаться на bob", "1 подписчик", "1 подписка", "Записи"],
    "/user/bob/followers": ["Подписчики bob", "Назад к профилю bob"],
    "/user/bob/following": ["Подписки bob", "susan"],
    "/user/carol": ["carol пока ничего не публиковал(а)", "0 подписчиков", "0 подписок"],
    "/user/carol/followers": ["Подписчиков пока нет", "На carol пока никто не подписан."],
    "/user/carol/following": ["Подписок пока нет", "carol пока ни на кого не подписан(а)."],
}

USER_PAGES = {
    "/": ["Привет, susan!", "О чём вы думаете?", "Опубликовать", "До 280 символов.", "Выйти"],
    "/index": ["Привет, susan!", "5 минут назад", "изменено", "Изменить эту запись"],
    "/explore": ["Обзор", "Удалить эту запись", "Удалить эту запись? Отменить это будет нельзя."],
    "/user/susan": ["Изменить профиль", "Сменить пароль", "Удаление аккаунта", "Устройства"],
    "/user/bob": ["Отписаться", "Последний визит:"],
    "/user/carol": ["Подписаться", "carol пока ничего не публиковал(а)"],
    "/user/carol/followers": ["Станьте первым: подпишитесь в профиле."],
    "/user/carol/following": ["Интересных людей можно найти в обзоре."],
    "/edit_profile": ["Имя пользователя", "О себе", "Язык", "Сохранить", "Назад к профилю"],
    "/post/{post}/edit": ["Изменение записи", "Опубликовано 5 минут назад.", "Отмена"],
}


@pytest.mark.parametrize("path", VISITOR_PAGES)
def test_a_visitor_reads_each_page_whole_in_either_language(app, client, people, path):
    english, russian = both_languages(client, app, path, signed_in=False)
    for text in VISITOR_PAGES[path]:
        assert text in russian, (path, text)
    assert_nothing_leaks(english, russian)


@pytest.mark.parametrize("path", USER_PAGES)
def test_a_signed_in_user_reads_each_page_whole_in_either_language(app, client, auth, people, path):
    auth.login()
    path = path.format(**people)
    english, russian = both_languages(client, app, path, signed_in=True)
    for text in USER_PAGES[path.replace(str(people["post"]), "{post}")]:
        assert text in russian, (path, text)
    assert_nothing_leaks(english, russian)


@pytest.mark.parametrize(
    ("path", "russian"),
    [
        ("/", "Записей пока нет: зарегистрируйтесь и станьте первым."),
        ("/explore", "Станьте первым: зарегистрируйтесь и напишите запись."),
    ],
)
def test_the_empty_pages_read_whole_in_either_language(client, path, russian):
    english, russian_page = visit(client, path, "en"), visit(client, path, "ru")
    assert russian in russian_page
    assert_nothing_leaks(english, russian_page)


def test_a_new_users_empty_timeline_reads_whole_in_either_language(app, client, make_user, auth):
    make_user("susan")
    auth.login()
    english = visit(client, "/", "en")
    set_locale(app, "susan", "ru")
    russian = visit(client, "/", "ru")
    assert "Ваша лента пуста" in russian
    assert "найдите, на кого подписаться, в обзоре" in russian
    assert_nothing_leaks(english, russian)


# Dates and plurals, as they read on real pages ---------------------------------------------


@pytest.mark.parametrize(
    ("ago", "english", "russian"),
    [
        (timedelta(minutes=1), "1 minute ago", "1 минуту назад"),
        (timedelta(minutes=2), "2 minutes ago", "2 минуты назад"),
        (timedelta(minutes=5), "5 minutes ago", "5 минут назад"),
        (timedelta(minutes=21), "21 minutes ago", "21 минуту назад"),
        (timedelta(days=3), "3 days ago", "3 дня назад"),
    ],
)
def test_a_post_says_how_long_ago_it_was_written(app, client, ago, english, russian):
    with app.app_context():
        bob = User(
            username="bob",
            email="bob@example.com",
            password_hash="-",
            email_verified_at=clock.utcnow(),
        )
        db.session.add(Post(body="Lorem", author=bob, timestamp=clock.utcnow() - ago))
        db.session.commit()
    assert english in visit(client, "/user/bob", "en")
    page = visit(client, "/user/bob", "ru")
    assert russian in page
    assert re.search(
        r'title="\d+ [а-я]+ \d{4}\u202fг\., \d\d:\d\d:\d\d UTC"',
        client.get("/user/bob?lang=ru").text,
    )


@pytest.mark.parametrize(
    ("count", "english", "russian"),
    [
        (1, "1 follower", "1 подписчик"),
        (2, "2 followers", "2 подписчика"),
        (5, "5 followers", "5 подписчиков"),
        (21, "21 followers", "21 подписчик"),
        (22, "22 followers", "22 подписчика"),
    ],
)
def test_a_profile_counts_its_followers_in_the_readers_language(
    app, client, count, english, russian
):
    with app.app_context():
        star = User(
            username="star",
            email="star@example.com",
            password_hash="-",
            email_verified_at=clock.utcnow(),
        )
        fans = [
            User(
                username=f"fan{n}",
                email=f"fan{n}@example.com",
                password_hash="-",
                email_verified_at=clock.utcnow(),
            )
            for n in range(count)
        ]
        db.session.add_all([star, *fans])
        db.session.flush()
        for fan in fans:
            fan.follow(star)
        db.session.commit()
    assert english in visit(client, "/user/star", "en")
    assert russian in visit(client, "/user/star", "ru")


@pytest.mark.parametrize(
    ("limit", "english", "russian"),
    [
        (1, "Up to 1 character.", "До 1 символа."),
        (2, "Up to 2 characters.", "До 2 символов."),
        (5, "Up to 5 characters.", "До 5 символов."),
        (21, "Up to 21 characters.", "До 21 символа."),
    ],
)
def test_the_post_box_states_its_limit_in_the_readers_language(
    app, client, make_user, auth, limit, english, russian
):
    app.config["POST_MAX_LENGTH"] = limit
    make_user("susan")
    auth.login()
    assert english in visit(client, "/", "en")
    set_locale(app, "susan", "ru")
    assert russian in visit(client, "/", "ru")


def test_the_live_counter_gets_its_words_for_every_plural_form(app, client, make_user, auth):
    make_user("susan")
    auth.login()
    english = client.get("/").text
    assert 'data-left-one="{n} character left"' in english
    assert 'data-left-other="{n} characters left"' in english
    assert 'data-over-other="{n} characters too many"' in english
    set_locale(app, "susan", "ru")
    russian = client.get("/").text
    assert 'data-left-one="Остался {n} символ"' in russian
    assert 'data-left-few="Осталось {n} символа"' in russian
    assert 'data-left-many="Осталось {n} символов"' in russian
    assert 'data-over-few="Лишних {n} символа"' in russian


@pytest.mark.parametrize(
    ("excess", "russian"),
    [(1, "на 1 символ."), (2, "на 2 символа."), (5, "на 5 символов."), (21, "на 21 символ.")],
)
def test_a_post_too_long_says_by_how_much_in_the_readers_language(
    app, client, make_user, auth, excess, russian
):
    make_user("susan")
    auth.login()
    set_locale(app, "susan", "ru")
    page = client.post("/index", data={"post": "я" * (280 + excess)})
    assert page.status_code == 200
    text = visible(page.text)
    assert f"Запись может быть длиной до 280 символов, а в этой {280 + excess}." in text
    assert f"Сократите её {russian}" in text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Post.id))) == 0
