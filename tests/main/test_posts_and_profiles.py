"""Posting, timelines, following and profiles."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.extensions import db
from microblog.models import Post, User
from support.posts import add_posts, pager_links, shown


@pytest.fixture
def susan(auth, make_user):
    """Susan, signed in."""
    make_user("susan")
    auth.login()


def test_visitors_get_a_home_page_with_the_latest_posts(app, client, make_user):
    make_user("john")
    add_posts(app, "john", 2)
    page = client.get("/")
    assert page.status_code == 200
    assert 'href="/auth/register"' in page.text and 'href="/auth/login"' in page.text
    assert page.text.index("john post 1") < page.text.index("john post 0")


def test_posting_needs_a_signed_in_user(app, client):
    assert client.post("/", data={"post": "Hi"}).headers["Location"] == "/auth/login?next=%2F"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Post)) == 0


def test_a_post_appears_on_the_timeline(app, client, susan):
    response = client.post("/index", data={"post": "Hello, world"})
    assert response.headers["Location"] == "/index"
    page = client.get("/index")
    assert "Your post is now live!" in page.text
    assert "Hello, world" in page.text
    with app.app_context():
        assert db.session.scalar(sa.select(Post.body)) == "Hello, world"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("", "Write something first."),
        ("x" * 281, "Posts can be up to 280 characters long; this one has 281."),
    ],
)
def test_an_empty_or_too_long_post_is_a_form_error(app, client, susan, body, error):
    response = client.post("/index", data={"post": body})
    assert response.status_code == 200
    assert error in response.text and "invalid-feedback" in response.text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Post)) == 0


def test_a_post_of_exactly_the_limit_is_kept_whole(app, client, susan):
    body = "word " * 55 + "last!"  # 280 characters
    client.post("/index", data={"post": body})
    with app.app_context():
        assert db.session.scalar(sa.select(Post.body)) == body


@pytest.mark.settings(POST_MAX_LENGTH=500)
def test_the_post_limit_is_a_setting(app, client, susan):
    client.post("/index", data={"post": "y" * 500})
    with app.app_context():
        assert db.session.scalar(sa.select(Post.body)) == "y" * 500
    assert 'data-max-length="500"' in client.get("/index").text


def test_timeline_shows_followed_users_but_not_others(app, client, make_user, susan):
    make_user("john")
    make_user("mary")
    add_posts(app, "john", 1)
    add_posts(app, "mary", 1)
    assert "john post 0" not in client.get("/index").text
    client.post("/follow/john")
    timeline = client.get("/index").text
    assert "john post 0" in timeline and "mary post 0" not in timeline


def test_explore_shows_everyone_newest_first(app, client, make_user):
    make_user("john")
    make_user("mary")
    add_posts(app, "john", 1)
    add_posts(app, "mary", 1, start=clock.utcnow())
    page = client.get("/explore").text
    assert page.index("mary post 0") < page.index("john post 0")


@pytest.mark.settings(POSTS_PER_PAGE=3)
@pytest.mark.parametrize("url", ["/explore", "/user/john", "/index"])
def test_pages_of_posts_walk_older_and_back_newer(app, client, make_user, auth, url):
    make_user("john")
    auth.login("john")
    add_posts(app, "john", 7)
    first = client.get(url).text
    assert shown(first) == [6, 5, 4]
    older, newer = pager_links(first)
    assert newer is None
    second = client.get(older).text
    assert shown(second) == [3, 2, 1]
    older, newer = pager_links(second)
    last = client.get(older).text
    assert shown(last) == [0]
    assert pager_links(last)[0] is None
    back = client.get(pager_links(last)[1]).text
    assert shown(back) == [3, 2, 1]
    assert shown(client.get(pager_links(back)[1]).text) == [6, 5, 4]


@pytest.mark.settings(POSTS_PER_PAGE=3)
def test_a_page_of_posts_is_not_moved_by_new_posts(app, client, make_user):
    """A cursor, not an offset: a post written meanwhile does not push the next page along."""
    make_user("john")
    add_posts(app, "john", 6)
    older, _ = pager_links(client.get("/explore").text)
    add_posts(app, "john", 1, start=clock.utcnow())
    assert shown(client.get(older).text) == [2, 1, 0]


def test_a_single_page_has_no_pager(app, client, make_user):
    make_user("john")
    add_posts(app, "john", 2)
    page = client.get("/explore").text
    assert pager_links(page) == (None, None) and "pagination" not in page


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "",
        "%00",
        "-1",
        "MTox",
        "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk6MQ",
        "x" * 5000,
        "LTE6LTE",
        "MTox\n",
        "MToxOjE",
    ],
)
@pytest.mark.parametrize("direction", ["before", "after"])
def test_a_hostile_cursor_is_a_404_or_a_page_never_an_error(
    app, client, make_user, cursor, direction
):
    make_user("john")
    add_posts(app, "john", 1)
    for url in ("/explore", "/user/john", "/user/john/followers", "/user/john/following"):
        response = client.get(f"{url}?{direction}={cursor}")
        assert response.status_code in (200, 404), (url, cursor)


def test_follow_and_unfollow_change_the_counts(client, make_user, susan):
    make_user("john")
    assert client.post("/follow/john").headers["Location"] == "/user/john"
    assert "1 follower<" in client.get("/user/john").text
    assert "1 following" in client.get("/user/susan").text
    client.post("/unfollow/john")
    assert "0 followers" in client.get("/user/john").text
    assert "0 following" in client.get("/user/susan").text


def test_following_twice_counts_once(client, make_user, susan):
    make_user("john")
    client.post("/follow/john")
    client.post("/follow/john")
    assert "1 follower<" in client.get("/user/john").text


def test_no_one_follows_themselves(client, susan):
    client.post("/follow/susan")
    assert "0 followers" in client.get("/user/susan").text


def test_following_needs_a_post(client, make_user, susan):
    make_user("john")
    assert client.get("/follow/john").status_code == 405


def test_following_someone_unknown_is_a_message_not_an_error(client, susan):
    response = client.post("/follow/nobody")
    assert response.headers["Location"] == "/index"
    assert "User nobody not found." in client.get("/index").text


def test_profile_shows_the_user_and_their_posts(app, client, make_user):
    make_user("john")
    add_posts(app, "john", 2)
    page = client.get("/user/john")
    assert page.status_code == 200
    assert "john post 1" in page.text and "data:image/svg+xml" in page.text


def test_unknown_profile_is_a_404_page(client):
    response = client.get("/user/nobody")
    assert response.status_code == 404 and "There is nothing at this address." in response.text


def test_edit_profile_saves_username_and_about_me(app, client, susan):
    form = client.get("/edit_profile").text
    assert 'value="susan"' in form
    response = client.post("/edit_profile", data={"username": "susan2", "about_me": "Hi there"})
    assert response.headers["Location"] == "/edit_profile"
    assert "Hi there" in client.get("/user/susan2").text


def test_edit_profile_refuses_a_taken_username(client, make_user, susan):
    make_user("john")
    response = client.post("/edit_profile", data={"username": "john", "about_me": ""})
    assert "Please use a different username." in response.text


def test_last_seen_is_written_at_most_once_a_minute(app, client, susan, monkeypatch):
    def last_seen():
        with app.app_context():
            return db.session.scalar(sa.select(User.last_seen).where(User.username == "susan"))

    now = clock.utcnow() + timedelta(hours=1)
    monkeypatch.setattr(clock, "utcnow", lambda: now)
    client.get("/explore")
    assert last_seen() == now
    later = now + timedelta(seconds=30)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    client.get("/explore")
    assert last_seen() == now
    much_later = now + timedelta(seconds=61)
    monkeypatch.setattr(clock, "utcnow", lambda: much_later)
    client.get("/explore")
    assert last_seen() == much_later


def test_about_me_keeps_its_line_breaks(client, susan):
    client.post("/edit_profile", data={"username": "susan", "about_me": "Line one\nLine two"})
    assert '<p class="about-me mb-2">Line one\nLine two</p>' in client.get("/user/susan").text


def test_the_change_password_form_names_the_account_for_password_managers(client, susan):
    page = client.get("/auth/change_password").text
    assert re.search(
        r'<input type="text" id="account-username" autocomplete="username" value="susan"', page
    )


def test_post_times_read_relative_with_the_exact_time_on_hover(app, client, make_user):
    make_user("john")
    add_posts(app, "john", 1, start=clock.utcnow() - timedelta(minutes=5, seconds=10))
    page = client.get("/explore").text
    assert re.search(
        r'<time datetime="[0-9-]+T[0-9:]+Z" title="[A-Z][a-z]+ [0-9]+, [0-9]{4}, [^"]+ UTC">'
        r"5 minutes ago</time>",
        page,
    )


@pytest.mark.parametrize("cursor", ["garbage", "%00", "-5", "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk6MQ"])
def test_a_hostile_cursor_on_the_home_timeline_is_a_404(client, susan, cursor):
    for direction in ("before", "after"):
        assert client.get(f"/index?{direction}={cursor}").status_code == 404
