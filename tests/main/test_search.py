"""/search: posts by any form of their words, people by the start of their name."""

import os
import re
import uuid

import flask_migrate
import pytest
import sqlalchemy as sa

from microblog import clock, create_app
from microblog.config import database_url as with_driver
from microblog.extensions import db
from microblog.models import Post, User
from support.app import app_config, build_app, close_app, counting_queries
from support.posts import pager_links


def found_posts(html):
    """The ids in the bodies of the posts shown ("... #12")."""
    return [int(n) for n in re.findall(r"#(\d+)</p>", html)]


def bodies(html):
    return re.findall(r'<p class="post-body mb-0" lang="(\w+)">(.*?)</p>', html)


def found_people(html):
    return re.findall(r'<a class="fw-semibold" href="/user/([^"]+)">', html)


def write(app, username, *texts):
    """Posts by `username`, in this order (ids ascending), each ending in " #<id>"."""
    with app.app_context():
        author = db.session.scalar(sa.select(User).where(User.username == username))
        ids = []
        for text in texts:
            post = Post(body=text, author=author)
            db.session.add(post)
            db.session.flush()
            post.body = f"{text} #{post.id}"
            db.session.commit()
            ids.append(post.id)
        return ids


@pytest.fixture
def john(make_user):
    make_user("john")


def search(client, q, **args):
    response = client.get("/search", query_string={"q": q, **args})
    assert response.status_code == 200
    return response.text


def test_an_english_word_finds_its_other_forms(client, app, john):
    run, runs, _other = write(app, "john", "I was running late", "She runs daily", "A quiet day")
    assert found_posts(search(client, "run", kind="posts")) == [runs, run]
    assert found_posts(search(client, "RUNNING", kind="posts")) == [runs, run]


def test_a_russian_word_finds_its_other_forms(client, app, john):
    books, book, other = write(app, "john", "Купил две книги", "Это моя книга", "Кот спит")
    assert found_posts(search(client, "книга", kind="posts")) == [book, books]
    assert found_posts(search(client, "книгу", kind="posts")) == [book, books]
    assert found_posts(search(client, "кот", kind="posts")) == [other]


def test_every_word_of_the_query_must_be_in_the_post(client, app, john):
    both, one = write(app, "john", "red apples and green pears", "red cars")
    assert found_posts(search(client, "red pear", kind="posts")) == [both]
    assert found_posts(search(client, "red", kind="posts")) == [one, both]


def test_the_language_of_a_post_is_detected_when_it_is_written(client, app, make_user):
    make_user("ivan")
    with app.app_context():
        db.session.get(User, 1).locale = "ru"
        db.session.commit()
    write(app, "ivan", "Привет, мир", "hello world", "👍 42")
    languages = [lang for lang, _ in bodies(client.get("/user/ivan").text)]
    assert languages == ["ru", "en", "ru"]  # newest first; the emoji post takes ivan's locale


def test_matches_are_highlighted_and_the_rest_escaped(client, app, john):
    write(app, "john", "<b>running</b> & jumping")
    html = search(client, "run", kind="posts")
    assert "&lt;b&gt;<mark>running</mark>&lt;/b&gt; &amp; jumping" in html


def test_an_edit_reindexes_the_post(client, app, john, auth):
    (post,) = write(app, "john", "old words")
    auth.login("john")
    client.post(f"/post/{post}/edit", data={"post": f"new text #{post}"})
    assert found_posts(search(client, "old", kind="posts")) == []
    assert found_posts(search(client, "new", kind="posts")) == [post]


def test_a_deleted_post_is_no_longer_found(client, app, john, auth):
    (post,) = write(app, "john", "ephemeral thought")
    auth.login("john")
    client.post(f"/post/{post}/delete")
    assert found_posts(search(client, "ephemeral", kind="posts")) == []
    with app.app_context():
        left = db.session.execute(sa.text("SELECT count(*) FROM post_search")).scalar()
    assert left == 0


def test_the_posts_of_a_deleted_account_leave_the_index(client, app, john, make_user):
    from microblog.auth.deletion import erase_account

    make_user("mary")
    write(app, "john", "soon gone")
    (kept,) = write(app, "mary", "soon here")
    with app.app_context():
        erase_account(db.session.scalar(sa.select(User).where(User.username == "john")))
        db.session.commit()
        left = db.session.execute(sa.text("SELECT count(*) FROM post_search")).scalar()
    assert left == 1
    assert found_posts(search(client, "soon", kind="posts")) == [kept]


@pytest.mark.settings(TIMELINE_DELETE_BATCH=1)
def test_a_deleted_account_s_posts_leave_the_results_before_their_purge(
    client, app, john, make_user
):
    from microblog.auth.deletion import erase_account

    make_user("mary")
    for n in range(3):
        write(app, "john", f"soon gone {n}")
    (kept,) = write(app, "mary", "soon here")
    with app.app_context():
        erase_account(db.session.scalar(sa.select(User).where(User.username == "john")))
        db.session.commit()
        left = db.session.execute(sa.text("SELECT count(*) FROM post_search")).scalar()
    assert left > 1  # the purge job has rows still to delete
    assert found_posts(search(client, "soon", kind="posts")) == [kept]


def test_results_come_newest_first_with_a_keyset_pager(client, app, john):
    ids = write(app, "john", *[f"common word {n}" for n in range(5)])
    app.config["POSTS_PER_PAGE"] = 2
    first = search(client, "common", kind="posts")
    assert found_posts(first) == ids[::-1][:2]
    older, newer = pager_links(first)
    assert newer is None and "q=common" in older and "kind=posts" in older
    second = client.get(older).text
    assert found_posts(second) == ids[::-1][2:4]
    third = client.get(pager_links(second)[0]).text
    assert found_posts(third) == ids[:1]
    assert pager_links(third)[0] is None


@pytest.mark.parametrize("kind", [None, "posts", "people"])
def test_a_page_of_results_costs_the_same_queries_for_one_match_as_for_many(
    client, app, make_user, kind
):
    for name in ("one", "many"):
        make_user(f"{name}x")
    write(app, "onex", "one match")
    write(app, "manyx", *["many matches"] * 30)
    counts = []
    for word in ("one", "many"):
        args = {"q": word} if kind is None else {"q": word, "kind": kind}
        client.get("/search", query_string=args)
        with counting_queries(app) as statements:
            assert client.get("/search", query_string=args).status_code == 200
        counts.append(len(statements))
    assert counts[0] == counts[1]


@pytest.mark.parametrize("word", ["often", "seldom"])
def test_pages_are_whole_whether_the_matches_are_near_or_beyond_the_newest_rows(
    client, app, john, monkeypatch, word
):
    from microblog import search as finder

    monkeypatch.setattr(finder, "SEARCH_WINDOW", 3)  # PostgreSQL's first branch, made short
    texts = ["seldom often" if n % 4 == 0 else "often" if n % 2 else "neither" for n in range(24)]
    ids = write(app, "john", *texts)
    expected = [i for i, text in zip(ids, texts, strict=True) if word in text][::-1]
    app.config["POSTS_PER_PAGE"] = 2
    shown, url = [], f"/search?q={word}&kind=posts"
    while url:
        html = client.get(url).text
        shown += found_posts(html)
        url = pager_links(html)[0]
    assert shown == expected
    back = pager_links(client.get(pager_links(search(client, word, kind="posts"))[0]).text)[1]
    assert found_posts(client.get(back).text) == expected[:2]


def test_people_are_found_by_the_start_of_their_name_through_lookalikes(client, make_user):
    for name in ("alice", "alicia", "bob"):
        make_user(name)
    make_user("alina", verified=False)
    assert sorted(found_people(search(client, "ali", kind="people"))) == ["alice", "alicia"]
    assert sorted(found_people(search(client, "A1I", kind="people"))) == ["alice", "alicia"]
    assert found_people(search(client, "bo")) == ["bob"]
    assert found_people(search(client, "li", kind="people")) == []  # a prefix, not a substring


def test_a_name_with_a_wildcard_character_matches_only_itself(client, make_user):
    make_user("a_b")
    make_user("axb")
    assert found_people(search(client, "a_", kind="people")) == ["a_b"]


def test_both_kinds_by_default_and_tabs_for_each(client, app, make_user):
    make_user("runner")
    (post,) = write(app, "runner", "a runner again")
    html = search(client, "runner")
    assert found_people(html) == ["runner"]
    assert found_posts(html) == [post]
    assert 'href="/search?q=runner&amp;kind=posts"' in html
    assert 'href="/search?q=runner&amp;kind=people"' in html


def test_a_search_of_both_kinds_shows_five_people_and_links_to_the_rest(client, make_user):
    for n in range(6):
        make_user(f"ann{n}")
    html = search(client, "ann")
    assert found_people(html) == [f"ann{n}" for n in range(5, 0, -1)]  # newest accounts first
    assert '<a href="/search?q=ann&amp;kind=people">More people</a>' in html
    assert len(found_people(search(client, "ann", kind="people"))) == 6


def test_the_query_stays_in_the_box(client):
    html = search(client, 'say "hi"')
    assert 'name="q" value="say &#34;hi&#34;"' in html


def test_nothing_found_says_what_to_try(client, john):
    html = search(client, "zzzz")
    assert "Nothing found" in html and "Try fewer words" in html


def test_an_unknown_kind_is_not_found(client):
    assert client.get("/search?q=x&kind=everything").status_code == 404


def test_every_page_has_a_search_box(client):
    assert 'id="nav-search" name="q"' in client.get("/explore").text


HOSTILE = [
    '"',
    '""',
    "'",
    "*",
    "run*",
    "a NEAR b",
    "NEAR(a b)",
    "a OR b",
    "a AND NOT b",
    "-run",
    "(",
    ")",
    "((a) OR",
    "terms:run",
    "^run",
    "a & b | !c",
    "a <-> b",
    "\\",
    "\x00",
    "run\x00ning",
    "x" * 5000,
    "run " * 1500,
    "😀",
    "run 😀 книга",
    "%",
    "_",
    "{}",
    "a:*",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_never_fail(client, app, john, query):
    write(app, "john", "running with books", "книги")
    for kind in (None, "posts", "people"):
        args = {"q": query} if kind is None else {"q": query, "kind": kind}
        response = client.get("/search", query_string=args)
        assert response.status_code in (200, 400, 404), (query, kind)


def test_a_query_longer_than_the_limit_is_refused_with_a_message(client, app):
    html = search(client, "x" * (app.config["SEARCH_MAX_LENGTH"] + 1))
    assert "Search for up to" in html


@pytest.mark.settings(RATELIMIT_ENABLED=True, SEARCH_RATE_LIMIT="3 per minute")
def test_searches_are_limited_per_client(client):
    codes = [client.get("/search?q=x").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


@pytest.mark.settings(RATELIMIT_ENABLED=True, SEARCH_RATE_LIMIT="1 per minute")
def test_other_pages_are_not_limited_by_searches(client):
    for _ in range(3):
        assert client.get("/explore").status_code == 200


def test_the_rebuild_command_indexes_every_post(app, john):
    write(app, "john", "running", "книги")
    with app.app_context():
        db.session.execute(sa.text("DELETE FROM post_search"))
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["search", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "Indexed 2 posts." in result.output
    with app.app_context():
        assert db.session.execute(sa.text("SELECT count(*) FROM post_search")).scalar() == 2


# One data set in both databases: every query must find the same posts, in the same order.
DATA = [
    "I was running late for the meeting",
    "Runners run; the runner ran",
    "Купил две книги в книжном",
    "Это моя любимая книга",
    "Книгу читаю медленно",
    "Mixed: I read книги every day",
    "Ёлка и елка",
    "café culture, naïve résumé",
    "Numbers 42 and 3.14 and x2y",
    "snake_case and kebab-case words",
    "emoji 😀 party 🎉",
    "Ελληνικά γράμματα",
    "重要なお知らせ",
    "The quick brown fox jumps over the lazy dog",
    "Foxes are quick; jumping is fun",
]
QUERIES = [
    "run", "running", "ran", "runner", "книга", "книги", "книжный", "read книга", "елка",
    "ёлка", "cafe", "café", "naive", "42", "3", "14", "x2y", "snake", "case", "kebab",
    "😀", "party", "γράμματα", "重要なお知らせ", "fox", "jump", "quick fox", "the", "zzz",
]  # fmt: skip


@pytest.fixture
def postgres_app(smtp):
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("needs TEST_DATABASE_URL (PostgreSQL)")
    url = with_driver(url)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    app = build_app((url, {"connect_args": {"options": f"-csearch_path={schema}"}}), smtp)
    yield app
    close_app(app)
    with admin.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def sqlite_app(tmp_path, smtp):
    app = build_app((f"sqlite:///{tmp_path / 'both.db'}", {}), smtp)
    yield app
    close_app(app)


def load(app):
    with app.app_context():
        user = User(username="john", email="john@example.com", password_hash="x")
        user.email_verified_at = clock.utcnow()
        db.session.add(user)
        db.session.add_all(Post(body=text, author=user) for text in DATA)
        db.session.commit()


@pytest.mark.postgres
def test_sqlite_and_postgresql_find_the_same_posts(sqlite_app, postgres_app):
    from microblog import search

    results = {}
    for name, app in (("sqlite", sqlite_app), ("postgresql", postgres_app)):
        load(app)
        with app.app_context():
            from microblog.words import query_terms

            answers = {}
            for query in QUERIES:
                terms = query_terms(query)
                if not terms:
                    answers[query] = []
                    continue
                fetch = search.post_fetcher(terms)
                answers[query] = [post.id for post in fetch(None, True, 100)]
            results[name] = answers
    assert results["sqlite"] == results["postgresql"]
    assert results["sqlite"]["книга"] == [6, 5, 4, 3]  # every form, the mixed post too
    assert results["sqlite"]["run"] == [2, 1]


def test_the_migration_indexes_the_posts_that_exist_before_it(database_url, smtp):
    app = create_app(app_config(database_url, smtp))
    with app.app_context():
        flask_migrate.upgrade(revision="f4a10c0de002")
        db.session.execute(
            sa.text(
                'INSERT INTO "user" (username, username_key, email, password_hash, session_token,'
                " locale, followers_count, following_count, timeline_on_read, email_verified_at,"
                " created_at, last_seen)"
                " VALUES ('ivan', 'ivan', 'ivan@example.com', 'x', 't', 'ru', 0, 0, false,"
                " :now, :now, :now)"
            ),
            {"now": clock.utcnow()},
        )
        db.session.execute(
            sa.text(
                "INSERT INTO post (body, timestamp, user_id) VALUES"
                " ('Читаю книги #1', :now, 1), ('running #2', :now, 1), ('🎉 #3', :now, 1)"
            ),
            {"now": clock.utcnow()},
        )
        db.session.commit()
        flask_migrate.upgrade()
    client = app.test_client()
    assert found_posts(search(client, "книга", kind="posts")) == [1]
    assert found_posts(search(client, "run", kind="posts")) == [2]
    languages = [lang for lang, _ in bodies(client.get("/user/ivan").text)]
    assert languages == ["ru", "en", "ru"]
    with app.app_context():
        flask_migrate.downgrade(revision="f4a10c0de002")
        db.engine.dispose()
