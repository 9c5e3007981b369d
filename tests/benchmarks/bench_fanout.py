"""Posting and deleting as an author with N followers against one with 10, through gunicorn.

    .venv/bin/python tests/benchmarks/bench_fanout.py [--followers 10000 1000000]
        [--postgresql postgresql://postgres@127.0.0.1:5432/postgres]
    .venv/bin/python tests/benchmarks/bench_fanout.py --database-url URL --followers N

With --database-url it builds that database (schema by `flask db upgrade`,
then bulk multi-row INSERTs) and keeps it: `celebrity` with N followers,
`quiet` with 10, `follower1` following both, all verified, one password
printed as `password: ...`. Without it, for each N it builds a fresh database
(SQLite, or one PostgreSQL database per size with --postgresql), serves it
with gunicorn (2 workers, the mail workers and the job runner running as in
production) and measures, taking the two authors in turns, RUNS times each:
POST /index, the time until follower1's /index shows the post, and the POST
that deletes it. Meanwhile a prober signs in nobody and asks /healthz (one
read of the database) every 20 ms: its slowest answer is how long another
request waited. Last, celebrity deletes its account: the time of that POST,
the time until the background job has removed its last row (its N follows
among them), and the slowest /healthz meanwhile.
"""

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import (
    REPO,
    Gunicorn,
    Session,
    app_env,
    free_port,
    get,
    insert,
    machine_table,
    markdown_table,
    migrate,
    seeding_app,
)

PASSWORD = "bench fanout passphrase"
BATCH = 10_000
RUNS = 10


def build(database_url, followers_n):
    """The three named accounts and N - 1 other followers of celebrity; seconds it took."""
    migrate(app_env(database_url, 5000))
    started = time.monotonic()
    import sqlalchemy as sa

    from microblog import clock
    from microblog.auth.passwords import hash_password
    from microblog.extensions import db
    from microblog.models import User, followers
    from microblog.usernames import skeleton

    app = seeding_app(database_url)
    with app.app_context():
        limit = app.config["TIMELINE_FANOUT_LIMIT"]
        password_hash = hash_password(PASSWORD)
        now = clock.utcnow()
        named = ["celebrity", "quiet", "follower1"]
        fans = followers_n - 1

        def users():
            for n, name in enumerate(named, start=1):
                yield {
                    "id": n,
                    "username": name,
                    "username_key": skeleton(name),
                    "email": f"{name}@example.com",
                    "email_verified_at": now,
                    "created_at": now,
                    "password_hash": password_hash,
                    "session_token": f"bench-{n}",
                    "last_seen": now,
                }
            for n in range(4, 4 + fans):
                name = f"fan{n}"
                yield {
                    "id": n,
                    "username": name,
                    "username_key": skeleton(name),
                    "email": f"{name}@example.com",
                    "email_verified_at": now,
                    "created_at": now,
                    "password_hash": "!",
                    "session_token": f"bench-{n}",
                    "last_seen": now,
                }

        insert(db, User.__table__, users(), BATCH)

        def edges():
            yield {"follower_id": 3, "followed_id": 1}
            yield {"follower_id": 3, "followed_id": 2}
            for n in range(4, 4 + fans):
                yield {"follower_id": n, "followed_id": 1}
            for n in range(4, 4 + min(9, fans)):
                yield {"follower_id": n, "followed_id": 2}

        insert(db, followers, edges(), BATCH)
        with db.engine.begin() as connection:  # what follow() keeps, set in bulk
            quiet_followers = 1 + min(9, fans)
            for user_id, count in ((1, followers_n), (2, quiet_followers)):
                connection.execute(
                    sa.update(User)
                    .where(User.id == user_id)
                    .values(followers_count=count, timeline_on_read=count > limit)
                )
            connection.execute(sa.update(User).where(User.id >= 4).values(following_count=1))
            connection.execute(
                sa.update(User)
                .where(User.id.in_(range(4, 4 + min(9, fans))))
                .values(following_count=2)
            )
            connection.execute(sa.update(User).where(User.id == 3).values(following_count=2))
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT setval('user_id_seq', 3 + :n)"), {"n": fans})
                for table in ("user", "followers", "post", "timeline_entry"):
                    connection.execute(sa.text(f'ANALYZE "{table}"'))
            else:
                connection.execute(sa.text("ANALYZE"))
        db.engine.dispose()
    return time.monotonic() - started


def signed_in(port, username):
    session = Session(port)
    token = session.csrf_token("/auth/login")
    status, text = session.request(
        "POST", "/auth/login", {"username": username, "password": PASSWORD, "csrf_token": token}
    )
    alerts = re.findall(r'class="alert[^>]*>(.*?)<', text, re.S)
    assert status == 302, f"sign-in of {username} failed: {status} {alerts}"
    return session


def timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def latest_post_id(engine, username):
    import sqlalchemy as sa

    with engine.connect() as connection:
        return connection.scalar(
            sa.text(
                'SELECT post.id FROM post JOIN "user" ON "user".id = post.user_id '
                'WHERE "user".username = :name ORDER BY post.id DESC LIMIT 1'
            ),
            {"name": username},
        )


class Prober(threading.Thread):
    """GET /healthz every 20 ms: the slowest answer is the longest another request waited."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop, self.latencies = port, threading.Event(), []

    def run(self):
        while not self.stop.is_set():
            spent, _ = timed(lambda: get("127.0.0.1", self.port, "/healthz"))
            self.latencies.append(spent)
            time.sleep(0.02)


def measure(database_url):
    """Per author: the median POST, time to follower1's page, and delete, in seconds."""
    import sqlalchemy as sa

    from microblog.config import database_url as with_driver

    port = free_port()
    env = app_env(database_url, port)
    with tempfile.TemporaryDirectory() as tmp:
        server = Gunicorn(env, port, Path(tmp) / "gunicorn.log", access_log=False).start()
        engine = sa.create_engine(with_driver(database_url))
        try:
            sessions = {name: signed_in(port, name) for name in ("celebrity", "quiet")}
            reader = signed_in(port, "follower1")
            times = {name: {"post": [], "seen": [], "delete": []} for name in sessions}
            prober = Prober(port)
            prober.start()
            for run in range(RUNS):
                for name, session in sessions.items():
                    body = f"{name} says {run} at {time.time_ns()}"
                    token = session.csrf_token("/index")
                    posted = time.perf_counter()
                    spent, (status, _) = timed(
                        lambda s=session, f={"post": body, "csrf_token": token}: s.request(
                            "POST", "/index", f
                        )
                    )
                    assert status == 302, status
                    times[name]["post"].append(spent)
                    while body not in reader.request("GET", "/index")[1]:
                        assert time.perf_counter() - posted < 30, "never shown"
                    times[name]["seen"].append(time.perf_counter() - posted)
                    post_id = latest_post_id(engine, name)
                    spent, (status, _) = timed(
                        lambda s=session, u=f"/post/{post_id}/delete", f={"csrf_token": token}: (
                            s.request("POST", u, f)
                        )
                    )
                    assert status == 302, status
                    times[name]["delete"].append(spent)
            prober.stop.set()
            prober.join()
            deletion = delete_account(sessions["celebrity"], engine, port)
        finally:
            engine.dispose()
            server.kill()
    medians = {
        name: {what: statistics.median(values) for what, values in kinds.items()}
        for name, kinds in times.items()
    }
    return medians, max(prober.latencies), deletion


def delete_account(session, engine, port):
    """Seconds of the POST deleting celebrity, until its row is gone, slowest /healthz."""
    import sqlalchemy as sa

    prober = Prober(port)
    prober.start()
    token = session.csrf_token("/auth/delete_account")
    started = time.perf_counter()
    spent, (status, _) = timed(
        lambda: session.request(
            "POST", "/auth/delete_account", {"password": PASSWORD, "csrf_token": token}
        )
    )
    assert status == 302, status
    remaining = sa.text('SELECT count(*) FROM "user" WHERE id = 1')
    while True:
        with engine.connect() as connection:
            if connection.scalar(remaining) == 0:
                break
        assert time.perf_counter() - started < 1800, "the purge never finished"
        time.sleep(0.05)
    purged = time.perf_counter() - started
    prober.stop.set()
    prober.join()
    return spent, purged, max(prober.latencies)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--database-url", help="build into this database and keep it")
    parser.add_argument("--postgresql", help="a PostgreSQL server URL: one database per size")
    args = parser.parse_args()
    if args.database_url and len(args.followers) != 1:
        parser.error("--database-url takes one --followers size")
    sys.path.insert(0, str(REPO))

    from bench_scale import postgres_database

    if args.database_url:
        seconds = build(args.database_url, args.followers[0])
        print(
            f"Built {args.database_url} in {seconds:.0f} s: celebrity has "
            f"{args.followers[0]:,} followers, quiet 10, follower1 follows both"
        )
        print(f"password: {PASSWORD}")
        return
    backend = "PostgreSQL" if args.postgresql else "SQLite"
    rows, deletions = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.followers:
            drop = None
            if args.postgresql:
                url, drop = postgres_database(args.postgresql, f"microblog_fanout_{n}")
            else:
                url = f"sqlite:///{Path(tmp) / f'fanout-{n}.db'}"
            try:
                built = build(url, n)
                medians, waited, deletion = measure(url)
            finally:
                if drop:
                    drop()
            big, quiet = medians["celebrity"], medians["quiet"]
            rows.append(
                (
                    f"{n:,}",
                    backend,
                    f"{built:.0f} s",
                    f"{big['post'] * 1000:.1f} ms",
                    f"{quiet['post'] * 1000:.1f} ms",
                    f"{big['post'] / quiet['post']:.1f}x",
                    f"{big['delete'] * 1000:.1f} ms",
                    f"{quiet['delete'] * 1000:.1f} ms",
                    f"{big['delete'] / quiet['delete']:.1f}x",
                    f"{max(big['seen'], quiet['seen']) * 1000:.0f} ms",
                    f"{waited * 1000:.0f} ms",
                )
            )
            request, purged, purge_waited = deletion
            deletions.append(
                (
                    f"{n:,}",
                    backend,
                    f"{request * 1000:.1f} ms",
                    f"{purged:.1f} s",
                    f"{purge_waited * 1000:.0f} ms",
                )
            )
            print(f"{n:,} followers done", file=sys.stderr)
    print(machine_table())
    print()
    print(f"gunicorn -w 2 --threads 4, median of {RUNS} per author, taken in turns\n")
    header = (
        "followers",
        "database",
        "build",
        "POST celebrity",
        "POST quiet",
        "ratio",
        "delete celebrity",
        "delete quiet",
        "ratio",
        "follower1 sees it (median, slower author)",
        "slowest /healthz meanwhile",
    )
    print(markdown_table(header, rows))
    print()
    header = ("followers", "database", "POST delete_account", "purge done", "slowest /healthz")
    print(markdown_table(header, deletions))


if __name__ == "__main__":
    main()
