"""The home timeline, filled on write: posts, follows, unfollows and deletes keep it right."""

import sqlalchemy as sa

from microblog.extensions import db
from microblog.models import Post, TimelineEntry, User
from support.posts import add_posts, shown


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
