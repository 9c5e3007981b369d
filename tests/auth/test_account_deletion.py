"""Deleting an account: gone at once, nothing of it stays behind, and the goodbye still arrives."""

from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from microblog import jobs
from microblog.auth.deletion import PURGE, purge_account
from microblog.auth.models import KnownDevice, LoginThrottle, SessionRecord
from microblog.extensions import db
from microblog.mail.outbox import OutboxMessage
from microblog.models import Post, TimelineEntry, User, followers
from support.auth import PASSWORD, AuthActions, flashes
from support.posts import add_posts, shown
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


@pytest.mark.settings(TIMELINE_DELETE_BATCH=1)  # the job has batches left to run
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
    assert rows_of(app, susan, "susan@example.com")["user"] == 1  # the tombstone, until the job
    assert jobs.run_pending(app) > 1

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


@pytest.mark.settings(TIMELINE_DELETE_BATCH=1)
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
    assert jobs.run_pending(app) > 1

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


@contextmanager
def counting_writes(app):
    """(statements sent, rows changed) while the block runs: what a request holds the lock for."""
    seen = {"statements": 0, "rows": 0}

    def record(conn, cursor, statement, parameters, context, executemany):
        seen["statements"] += 1
        if statement.lstrip().upper().startswith(("UPDATE", "DELETE", "INSERT")):
            seen["rows"] += max(cursor.rowcount, 0)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "after_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "after_cursor_execute", record)


def busy_account(app, make_user, name, count):
    """`name` with `count` posts, `count` followers and `count` people followed."""
    owner = make_user(name)
    others = [make_user(f"{name}-{n}") for n in range(count)]
    with app.app_context():
        user = db.session.get(User, owner)
        for other in map(db.session.get, [User] * count, others):
            other.follow(user)
            user.follow(other)
        db.session.commit()
    add_posts(app, name, count)
    return owner


@pytest.mark.settings(TIMELINE_DELETE_BATCH=2)
def test_the_request_does_the_same_bounded_work_for_3_posts_and_followers_as_for_30(app, make_user):
    """Statements and rows written do not grow with the account: the job does the rest."""
    costs = []
    for name, count in (("small", 3), ("large", 30)):
        busy_account(app, make_user, name, count)
        client = app.test_client()
        AuthActions(client).login(name)
        with counting_writes(app) as seen:
            response = client.post("/auth/delete_account", data={"password": PASSWORD})
        assert response.headers["Location"] == "/index"
        costs.append(dict(seen))
    assert costs[0] == costs[1]
    assert costs[1]["rows"] < 20  # the old single transaction changed over 1,000 rows here
    assert jobs.run_pending(app) > 2


@pytest.mark.parametrize("fanout_limit", [1000, 0], ids=["copied", "read-at-request-time"])
@pytest.mark.settings(TIMELINE_DELETE_BATCH=1)
def test_a_deleted_account_is_gone_from_every_page_before_its_job_runs(
    app, client, auth, make_user, fanout_limit
):
    app.config["TIMELINE_FANOUT_LIMIT"] = fanout_limit  # 0: her posts merged when bob reads
    susan = make_user("susan")
    make_user("bob")
    bob_client = app.test_client()
    bob = AuthActions(bob_client)
    bob.login("bob")
    bob_client.post("/follow/susan")
    add_posts(app, "susan", 3)
    add_posts(app, "bob", 1)
    assert shown(bob_client.get("/index").text, "susan") == [2, 1, 0]
    assert shown(client.get("/explore").text, "susan") == [2, 1, 0]

    auth.login()
    client.post("/auth/delete_account", data={"password": PASSWORD})
    assert rows_of(app, susan, "susan@example.com")["posts"] == 3  # still there, for the job
    tombstone = f"deleted:{susan}"
    for path in ("/user/susan", f"/user/{tombstone}", "/user/susan/followers"):
        assert client.get(path).status_code == 404
    for page in ("/explore", "/"):
        assert shown(client.get(page).text, "susan") == []
    home = bob_client.get("/index").text
    assert shown(home, "susan") == [] and shown(home, "bob") == [0]
    for listing in ("/user/bob/followers", "/user/bob/following"):
        people = bob_client.get(listing).text
        assert "/user/susan" not in people and tombstone not in people
    assert bob_client.post(f"/follow/{tombstone}").status_code == 302
    assert "Invalid username or password." in auth.login(tombstone).text

    assert jobs.run_pending(app) > 1
    assert rows_of(app, susan, "susan@example.com")["posts"] == 0
    with app.app_context():
        counts = db.session.scalar(sa.select(User).filter_by(username="bob"))
        assert (counts.followers_count, counts.following_count) == (0, 0)


@pytest.mark.settings(TIMELINE_DELETE_BATCH=1)
def test_the_name_and_address_are_free_the_moment_the_account_is_deleted(
    app, client, auth, make_user
):
    old = make_user("susan")
    add_posts(app, "susan", 3)
    auth.login()
    client.post("/auth/delete_account", data={"password": PASSWORD})
    assert job_states(app) == ["pending"]
    AuthActions(app.test_client(), auth.deliver, auth.smtp).sign_up("susan")
    assert auth.login().headers["Location"] == "/index"
    assert shown(client.get("/user/susan").text, "susan") == []  # not the old posts
    jobs.run_pending(app)
    with app.app_context():
        new = db.session.scalar(sa.select(User).filter_by(username="susan"))
        assert new.id != old and new.deleted_at is None
    assert rows_of(app, old, "nobody@example.com")["user"] == 0


def job_states(app):
    with app.app_context():
        return db.session.scalars(sa.select(jobs.Job.state)).all()


def follow_counts(app):
    with app.app_context():
        rows = db.session.execute(
            sa.select(User.username, User.followers_count, User.following_count).where(
                User.deleted_at.is_(None)
            )
        )
        return {name: (followers, following) for name, followers, following in rows}


@pytest.mark.settings(TIMELINE_DELETE_BATCH=2)
def test_a_purge_that_crashed_mid_batch_resumes_and_counts_each_follow_once(
    app, client, auth, make_user, shifted
):
    susan = busy_account(app, make_user, "susan", 5)
    auth.login()
    client.post("/auth/delete_account", data={"password": PASSWORD})
    assert jobs.run_pending(app, at_most=2) == 2
    with app.app_context():  # a worker takes the job, does a batch and dies before committing
        job = jobs.claim(db.session, 60)
        assert job is not None and purge_account(susan) is False
        db.session.rollback()
    assert jobs.run_pending(app) == 0  # its lease still holds
    shifted(61)
    with app.app_context():  # and a second job for the same account, as if it were queued twice
        jobs.enqueue(PURGE, user_id=susan)
        db.session.commit()
    assert jobs.run_pending(app) > 1
    assert job_states(app) == []
    assert rows_of(app, susan, "susan@example.com") == {
        "user": 0,
        "posts": 0,
        "follows": 0,
        "sessions": 0,
        "devices": 0,
        "throttle": 0,
        "mail": 1,  # the goodbye
    }
    assert follow_counts(app) == {f"susan-{n}": (0, 0) for n in range(5)}
    with app.app_context():
        assert purge_account(susan) is True  # a late rerun finds nothing to do
        assert db.session.scalar(sa.select(sa.func.count()).select_from(TimelineEntry)) == 0


def test_a_purge_for_an_id_now_naming_someone_else_touches_nothing(app, client, auth, make_user):
    """SQLite may give the last id again: a late run must not erase the newcomer."""
    make_user("bob")
    make_user("susan")
    auth.login()
    client.post("/auth/delete_account", data={"password": PASSWORD})  # gone in the request
    newcomer = make_user("carol")  # on SQLite, with susan's id
    add_posts(app, "carol", 2)
    with app.app_context():
        assert purge_account(newcomer) is True
        db.session.commit()
    left = rows_of(app, newcomer, "carol@example.com")
    assert (left["user"], left["posts"]) == (1, 2)
