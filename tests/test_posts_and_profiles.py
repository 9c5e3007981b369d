"""Posting, timelines, following and profiles."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.extensions import db
from microblog.models import Post, User


@pytest.fixture
def susan(auth, make_user):
    """Susan, signed in."""
    make_user("susan")
    auth.login()


def add_posts(app, username, count, start=None):
    """`count` posts by `username`, one minute apart, oldest first."""
    start = start or clock.utcnow() - timedelta(days=1)
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == username))
        for n in range(count):
            db.session.add(
                Post(
                    body=f"{username} post {n}", author=user, timestamp=start + timedelta(minutes=n)
                )
            )
        db.session.commit()


def test_index_needs_a_signed_in_user(client):
    assert client.get("/").headers["Location"] == "/auth/login?next=%2F"


def test_a_post_appears_on_the_timeline(app, client, susan):
    response = client.post("/index", data={"post": "Hello, world"})
    assert response.headers["Location"] == "/index"
    page = client.get("/index")
    assert "Your post is now live!" in page.text
    assert "Hello, world" in page.text
    with app.app_context():
        assert db.session.scalar(sa.select(Post.body)) == "Hello, world"


@pytest.mark.parametrize("body", ["", "x" * 141])
def test_an_empty_or_too_long_post_is_a_form_error(app, client, susan, body):
    response = client.post("/index", data={"post": body})
    assert response.status_code == 200
    assert "invalid-feedback" in response.text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Post)) == 0


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
def test_pages_of_posts_link_older_and_newer(app, client, make_user):
    make_user("john")
    add_posts(app, "john", 7)
    first = client.get("/explore").text
    assert "john post 6" in first and "john post 4" in first and "john post 3" not in first
    assert 'href="/explore?page=2"' in first
    second = client.get("/explore?page=2").text
    assert "john post 3" in second and 'href="/explore?page=1"' in second
    last = client.get("/explore?page=3").text
    assert "john post 0" in last and 'href="/explore?page=4"' not in last


def test_a_page_past_the_end_is_empty_not_an_error(app, client, make_user):
    make_user("john")
    add_posts(app, "john", 1)
    response = client.get("/explore?page=99")
    assert response.status_code == 200 and "No posts yet." in response.text


def test_follow_and_unfollow_change_the_counts(client, make_user, susan):
    make_user("john")
    assert client.post("/follow/john").headers["Location"] == "/user/john"
    assert "1 followers" in client.get("/user/john").text
    assert "1 following" in client.get("/user/susan").text
    client.post("/unfollow/john")
    assert "0 followers" in client.get("/user/john").text


def test_following_twice_counts_once(client, make_user, susan):
    make_user("john")
    client.post("/follow/john")
    client.post("/follow/john")
    assert "1 followers" in client.get("/user/john").text


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
