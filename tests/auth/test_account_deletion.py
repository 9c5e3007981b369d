"""Deleting an account: nothing of it stays behind, and the goodbye still arrives."""

import sqlalchemy as sa

from microblog.auth.models import KnownDevice, LoginThrottle, SessionRecord
from microblog.extensions import db
from microblog.mail.outbox import OutboxMessage
from microblog.models import Post, TimelineEntry, User, followers
from support.auth import PASSWORD, AuthActions, flashes
from support.smtp import html_of, text_of


def rows_of(app, user_id, address):
    """Every row that names the account: user, posts, follows, sessions, devices, throttle, mail."""
    with app.app_context():
        count = lambda query: db.session.scalar(sa.select(sa.func.count()).select_from(query))  # noqa: E731
        return {
            "user": count(sa.select(User).where(User.id == user_id).subquery()),
            "posts": count(sa.select(Post).where(Post.user_id == user_id).subquery()),
            "follows": count(
                sa.select(followers)
                .where(
                    sa.or_(followers.c.follower_id == user_id, followers.c.followed_id == user_id)
                )
                .subquery()
            ),
            "sessions": count(
                sa.select(SessionRecord).where(SessionRecord.user_id == user_id).subquery()
            ),
            "devices": count(
                sa.select(KnownDevice).where(KnownDevice.user_id == user_id).subquery()
            ),
            "throttle": count(
                sa.select(LoginThrottle).where(LoginThrottle.user_id == user_id).subquery()
            ),
            "mail": count(
                sa.select(OutboxMessage)
                .where(
                    sa.or_(
                        OutboxMessage.user_id == user_id, OutboxMessage.recipients.contains(address)
                    )
                )
                .subquery()
            ),
        }


def test_deletion_leaves_no_rows_behind_and_still_delivers_the_goodbye(
    app, client, auth, make_user, deliver, smtp
):
    susan, bob = make_user("susan"), make_user("bob")
    with app.app_context():
        user, other = db.session.get(User, susan), db.session.get(User, bob)
        user.follow(other)
        other.follow(user)
        db.session.add_all([Post(body="mine", author=user), Post(body="bob's", author=other)])
        db.session.commit()
    auth.request_reset("susan@example.com")
    deliver()  # a sent email about her: its row names her
    smtp.wait_for(1)
    auth.request_reset("susan@example.com")  # unsent mail to her: must not go out afterwards
    auth.login(password="a wrong guess, counted by the throttle")
    AuthActions(app.test_client()).login()  # a second device: its session record goes too
    auth.login()
    assert rows_of(app, susan, "susan@example.com")["sessions"] == 2
    assert rows_of(app, susan, "susan@example.com")["devices"] == 2

    page = client.get("/auth/delete_account")
    assert page.status_code == 200 and 'name="password"' in page.text
    response = client.post("/auth/delete_account", data={"password": PASSWORD})
    assert response.headers["Location"] == "/index"
    assert "Your account and your posts have been deleted" in flashes(client.get("/explore"))[0]

    with app.app_context():
        [goodbye] = db.session.scalars(sa.select(OutboxMessage)).all()
        assert goodbye.user_id is None
        assert goodbye.context == {"username": "susan", "locale": "en"}
    deliver()
    messages = smtp.wait_for(2)
    assert len(messages) == 2
    message = messages[1]
    assert message["Subject"] == "[Microblog] Your account was deleted"
    assert message.envelope_recipients == ["susan@example.com"]
    assert "Dear susan" in text_of(message) and "Dear susan" in html_of(message)

    assert rows_of(app, susan, "susan@example.com") == {
        "user": 0,
        "posts": 0,
        "follows": 0,
        "sessions": 0,
        "devices": 0,
        "throttle": 0,
        "mail": 1,  # the goodbye's row, sent, body erased
    }
    assert rows_of(app, bob, "bob@example.com")["posts"] == 1
    with app.app_context():  # the counts on bob's profile no longer count her
        counts = db.session.get(User, bob)
        assert (counts.followers_count, counts.following_count) == (0, 0)
    assert client.get("/index").headers["Location"].startswith("/auth/login")
    assert "Invalid username or password." in auth.login().text
    assert auth.register("susan").headers["Location"] == "/auth/login"  # name and address free


def everything_of_others(app, gone_id, gone_address):
    """Every row of the other accounts, as (table, row) pairs: none names her id or address."""
    tables = [SessionRecord, KnownDevice, LoginThrottle, OutboxMessage, TimelineEntry, Post]
    with app.app_context():
        rows = set()
        for table in [model.__table__ for model in tables] + [followers]:
            for row in db.session.execute(sa.select(table)):
                values = row._mapping
                ids = {values.get(c) for c in ("user_id", "owner_id", "author_id")}
                ids |= {values.get(c) for c in ("follower_id", "followed_id")}
                if gone_id not in ids and gone_address not in values.get("recipients", ""):
                    rows.add((table.name, tuple(repr(value) for value in row)))
        return rows


def test_deletion_takes_nothing_of_anyone_else(app, client, auth, make_user, deliver, caplog):
    """Each of her rows goes; every row of bob and carol, of each kind, stays as it was."""
    susan, bob, carol = make_user("susan"), make_user("bob"), make_user("carol")
    with app.app_context():
        users = {
            name: db.session.get(User, i) for name, i in (("s", susan), ("b", bob), ("c", carol))
        }
        users["b"].follow(users["c"])
        users["b"].follow(users["s"])
        users["c"].follow(users["s"])
        users["s"].follow(users["b"])
        for name in "sbc":
            db.session.add(Post(body=f"by {name}", author=users[name]))
        db.session.commit()
    for name in ("bob", "carol", "susan"):
        other = AuthActions(app.test_client())
        other.request_reset(f"{name}@example.com")  # mail still queued for each
        # By address: that bucket keeps its failure when the name then signs in.
        other.login(f"{name}@example.com", password="a wrong guess, counted by the throttle")
        other.login(name)  # a session and a known device each
    auth.login()
    before = everything_of_others(app, susan, "susan@example.com")
    kinds = {table for table, _ in before}
    assert kinds >= {"session_record", "known_device", "login_throttle", "outbox"}
    assert kinds >= {"timeline_entry", "post", "followers"}

    response = client.post("/auth/delete_account", data={"password": PASSWORD})
    assert response.headers["Location"] == "/index"
    assert f"account.deleted user={susan}" in caplog.messages  # the audit trail names her

    assert everything_of_others(app, susan, "susan@example.com") == before
    with app.app_context():  # her posts left bob's and carol's timelines, and hers went
        assert not db.session.scalars(
            sa.select(TimelineEntry).where(
                sa.or_(TimelineEntry.owner_id == susan, TimelineEntry.author_id == susan)
            )
        ).all()
    assert deliver() == 3  # bob's and carol's reset emails, and her goodbye


def test_a_wrong_password_deletes_nothing(app, client, auth, make_user, deliver, smtp):
    susan = make_user("susan")
    auth.login()
    response = client.post("/auth/delete_account", data={"password": "not my password at all"})
    assert response.status_code == 200
    assert "This is not your current password." in response.text
    assert rows_of(app, susan, "susan@example.com")["user"] == 1
    assert deliver() == 0


def test_deletion_needs_a_signed_in_user_and_a_post(client, auth, make_user):
    assert client.get("/auth/delete_account").headers["Location"].startswith("/auth/login?next=")
    make_user("susan")
    auth.login()
    assert (
        client.get("/auth/delete_account", query_string={"password": PASSWORD}).status_code == 200
    )
    assert "Hi, susan!" in client.get("/index").text
