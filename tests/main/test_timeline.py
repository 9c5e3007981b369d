"""The home timeline, filled on write: posts, follows, unfollows and deletes keep it right."""

import re
from datetime import timedelta

import sqlalchemy as sa

from microblog import clock
from microblog.extensions import db
from microblog.models import Post, TimelineEntry, User
from support.posts import add_posts, pager_links, shown


def timeline_of(app, username):
    with app.app_context():
        owner = db.session.scalar(sa.select(User.id).where(User.username == username))
        query = (
            sa.select(Post.body)
            .join(TimelineEntry, TimelineEntry.post_id == Post.id)
            .where(TimelineEntry.owner_id == owner)
            .order_by(TimelineEntry.timestamp.desc())
        )
        return db.session.scalars(query).all()


def test_a_new_post_reaches_the_author_and_every_follower_only(app, client, make_user, auth):
    for name in ("john", "mary", "zed"):
        make_user(name)
    make_user("susan")
    for follower in ("mary", "zed"):
        auth.login(follower)
        client.post("/follow/susan")
        auth.logout()
    add_posts(app, "susan", 1)
    assert timeline_of(app, "susan") == ["susan post 0"]
    assert timeline_of(app, "mary") == timeline_of(app, "zed") == ["susan post 0"]
    assert timeline_of(app, "john") == []


def test_following_brings_their_recent_posts_and_unfollowing_takes_them_away(
    app, client, make_user, auth
):
    make_user("john")
    make_user("susan")
    add_posts(app, "john", 3)
    auth.login("susan")
    client.post("/follow/john")
    assert shown(client.get("/index").text) == [2, 1, 0]
    client.post("/unfollow/john")
    assert shown(client.get("/index").text) == []
    assert "Your timeline is empty" in client.get("/index").text


def test_following_copies_at_most_the_backfill_setting(app, client, make_user, auth):
    app.config["TIMELINE_BACKFILL"] = 2
    make_user("john")
    make_user("susan")
    add_posts(app, "john", 5)
    auth.login("susan")
    client.post("/follow/john")
    assert timeline_of(app, "susan") == ["john post 4", "john post 3"]


def test_the_follow_counts_are_kept_in_step(app, client, make_user, auth):
    make_user("john")
    make_user("susan")
    auth.login("susan")
    client.post("/follow/john")
    client.post("/follow/john")
    with app.app_context():
        john = db.session.scalar(sa.select(User).where(User.username == "john"))
        susan = db.session.scalar(sa.select(User).where(User.username == "susan"))
        assert (john.followers_count, susan.following_count) == (1, 1)
    client.post("/unfollow/john")
    client.post("/unfollow/john")
    with app.app_context():
        john = db.session.scalar(sa.select(User).where(User.username == "john"))
        susan = db.session.scalar(sa.select(User).where(User.username == "susan"))
        assert (john.followers_count, susan.following_count) == (0, 0)


def follow_all(client, auth, followers, username):
    for follower in followers:
        auth.login(follower)
        client.post(f"/follow/{username}")
        auth.logout()


def is_big(app, username):
    with app.app_context():
        return db.session.scalar(sa.select(User.timeline_on_read).where(User.username == username))


def test_an_author_past_the_fanout_limit_is_read_into_home_pages_not_copied(
    app, client, make_user, auth
):
    app.config["TIMELINE_FANOUT_LIMIT"] = 1
    for name in ("john", "mary", "zed", "susan"):
        make_user(name)
    follow_all(client, auth, ["mary"], "john")
    assert not is_big(app, "john")
    follow_all(client, auth, ["zed"], "john")
    assert is_big(app, "john")
    add_posts(app, "john", 2)
    assert timeline_of(app, "john") == ["john post 1", "john post 0"]
    assert timeline_of(app, "mary") == timeline_of(app, "zed") == []  # nothing copied
    auth.login("mary")
    assert shown(client.get("/index").text) == [1, 0]
    auth.logout()
    auth.login("susan")  # does not follow john
    assert shown(client.get("/index").text) == []


def test_the_big_mark_stays_when_followers_leave(app, client, make_user, auth):
    """Else posts written while big (never copied) would vanish from the followers left."""
    app.config["TIMELINE_FANOUT_LIMIT"] = 1
    for name in ("john", "mary", "zed"):
        make_user(name)
    follow_all(client, auth, ["mary", "zed"], "john")
    add_posts(app, "john", 1)
    auth.login("zed")
    client.post("/unfollow/john")
    auth.logout()
    assert is_big(app, "john")
    auth.login("mary")
    assert shown(client.get("/index").text) == [0]


def walk(client, url, rel):
    """Every post body shown, page by page, following `rel` links from `url`."""
    seen, pages = [], 0
    while url and pages < 20:  # a cursor that does not move would loop for ever
        html = client.get(url).text
        seen.extend(re.findall(r"(\w+ post \d+)<", html))
        url = pager_links(html)[0 if rel == "next" else 1]
        pages += 1
    return seen, pages


def test_paging_through_copied_and_merged_posts_repeats_and_skips_nothing(
    app, client, make_user, auth
):
    """Two sources interleaved, same timestamps across them, and posts in both sources.

    john's first posts are copied (he was small), then he grows past the limit and
    later posts are merged at read time; bob is always copied; ann is big from the
    start. Several posts share a timestamp so the tie-breaker (post id) matters.
    """
    app.config.update(TIMELINE_FANOUT_LIMIT=2, POSTS_PER_PAGE=4)
    for name in ("susan", "john", "bob", "ann", "x1", "x2"):
        make_user(name)
    follow_all(client, auth, ["susan"], "john")
    follow_all(client, auth, ["susan"], "bob")
    follow_all(client, auth, ["susan", "x1", "x2"], "ann")
    start = clock.utcnow() - timedelta(days=1)
    add_posts(app, "john", 3, start=start)  # copied
    follow_all(client, auth, ["x1", "x2"], "john")
    assert is_big(app, "john") and is_big(app, "ann") and not is_big(app, "bob")
    add_posts(app, "john", 3, start=start + timedelta(minutes=3))  # merged (bodies repeat 0-2)
    add_posts(app, "bob", 6, start=start)  # same timestamps as john's
    add_posts(app, "ann", 5, start=start + timedelta(seconds=30))
    with app.app_context():
        expected = db.session.scalars(
            sa.select(Post.body)
            .join(User, User.id == Post.user_id)
            .where(User.username.in_(["john", "bob", "ann"]))
            .order_by(Post.timestamp.desc(), Post.id.desc())
        ).all()
        ids = db.session.scalars(
            sa.select(Post.id)
            .join(User, User.id == Post.user_id)
            .where(User.username.in_(["john", "bob", "ann"]))
            .order_by(Post.timestamp.desc(), Post.id.desc())
        ).all()
    assert len(expected) == 17
    auth.login("susan")
    older, pages = walk(client, "/index", "next")
    assert older == expected and pages == 5
    # and back: from the last page, the newer links give the same posts in the same order
    last = "/index"
    for _ in range(pages - 1):
        last = pager_links(client.get(last).text)[0]
    newer, _ = walk(client, last, "prev")
    page_of = [expected[i : i + 4] for i in range(0, 17, 4)]
    assert newer == [body for page in reversed(page_of) for body in page]
    assert len(set(ids)) == 17


def test_unfollowing_a_big_account_takes_its_posts_out_at_once(app, client, make_user, auth):
    app.config["TIMELINE_FANOUT_LIMIT"] = 1
    for name in ("john", "mary", "zed"):
        make_user(name)
    add_posts(app, "john", 2)  # backfilled into mary's timeline when she follows
    follow_all(client, auth, ["mary", "zed"], "john")
    add_posts(app, "john", 2, start=clock.utcnow() - timedelta(hours=1))
    auth.login("mary")
    assert len(shown(client.get("/index").text)) == 4
    client.post("/unfollow/john")
    assert shown(client.get("/index").text) == []


def test_edits_and_deletes_of_a_big_accounts_post_show_on_home_pages(app, client, make_user, auth):
    app.config["TIMELINE_FANOUT_LIMIT"] = 1
    for name in ("john", "mary", "zed"):
        make_user(name)
    follow_all(client, auth, ["mary", "zed"], "john")
    add_posts(app, "john", 2)
    with app.app_context():
        first, second = db.session.scalars(sa.select(Post.id).order_by(Post.id)).all()
    auth.login("john")
    client.post(f"/post/{first}/edit", data={"post": "john post 7"})
    client.post(f"/post/{second}/delete")
    auth.logout()
    auth.login("mary")
    page = client.get("/index").text
    assert shown(page) == [7]
    assert "edited" in page
