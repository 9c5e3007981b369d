"""Do pages stay as fast at 1,000,000 posts as at 1,000? 10,000 users, in-process.

    .venv/bin/python tests/benchmarks/bench_scale.py            # SQLite: 1,000 and 1,000,000 posts
    .venv/bin/python tests/benchmarks/bench_scale.py --postgresql postgresql://postgres@127.0.0.1:5432
    .venv/bin/python tests/benchmarks/bench_scale.py --database-url URL --posts 1000000

Builds the data with bulk inserts, filling what the write path fills (posts,
followers, the follow counters and the home timelines), then times each page
through the Flask test client: the median of repeated requests, after warm-up.
Pages: /index for `viewer500` (follows the 500 active users, who write 90% of
the posts) and `viewer3` (follows 3 accounts that rarely post), first page and
the page 40 `rel="next"` links deep (or the deepest there is); /explore, first
and deep; an active user's profile; /search for a common word (in 90% of the posts,
first and deep), a Russian word in another form than the posts' (10%), a rare word
(10 posts, whatever the size) and the start of a name. One of the active users (user00001) is a
celebrity, read into timelines at request time (`User.timeline_on_read`)
instead of copied: viewer500's pages merge both sources. Goal: at most 2x the
1,000-post figure.

With --database-url the database (empty, or absent for SQLite) is built and
kept: serve it with gunicorn and sign in as viewer500 or viewer3 with the
printed password to check the figures through HTTP. With --postgresql, a
database per size is created on that server and dropped afterwards.
"""

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from html import unescape
from pathlib import Path

from common import REPO, SECRET_KEY, app_env, insert, machine_table, markdown_table, migrate

USERS = 10_000
ACTIVE = 500  # users who write ACTIVE_SHARE of the posts; viewer500 follows them all
ACTIVE_SHARE = 0.9
CELEBRITY = 1  # an active user whose posts are merged at read time, not copied
QUIET_FOLLOWED = 3  # viewer3 follows this many of the others
RANDOM_FOLLOWS = 2  # everyone else follows this many random users
DEEP = 40  # rel="next" links followed for the deep page
VIEWER_PASSWORD = "bench scale viewer passphrase"
BATCH = 20_000
RUNS = 15
WARMUP = 3
NEXT_LINK = re.compile(r'rel="next" href="([^"]+)"')
RARE_POSTS = 10  # posts with the rare word, at every size
SEARCHES = [
    ("/search common word", "/search?q=saying"),
    ("/search Russian word", "/search?q=книга&kind=posts"),
    ("/search rare word", "/search?q=aurora"),
    ("/search person", "/search?q=user0004&kind=people"),
]


def build(database_url, posts, seed=13):
    """Users, follows, posts and timelines, as bulk inserts; returns the viewers' names."""
    import sqlalchemy as sa

    from microblog import clock
    from microblog.auth.passwords import hash_password
    from microblog.extensions import db
    from microblog.models import Post, TimelineEntry, User, followers, index_posts
    from microblog.usernames import skeleton

    rng = random.Random(seed)
    app = measuring_app(database_url)
    with app.app_context():
        viewer_hash = hash_password(VIEWER_PASSWORD)
        now = clock.utcnow()
        names = [f"user{n:05d}" for n in range(1, USERS - 1)] + ["viewer500", "viewer3"]
        insert(
            db,
            User.__table__,
            (
                {
                    "id": n,
                    "username": name,
                    "username_key": skeleton(name),
                    "email": f"{name}@example.com",
                    "email_verified_at": now,
                    "created_at": now,
                    "password_hash": viewer_hash if name.startswith("viewer") else "!",
                    "session_token": f"bench-{n}",
                    "last_seen": now,
                    "followers_count": 0,
                    "following_count": 0,
                }
                for n, name in enumerate(names, start=1)
            ),
        )
        viewer500, viewer3 = USERS - 1, USERS
        active = range(1, ACTIVE + 1)
        quiet = range(ACTIVE + 1, USERS - 1)
        edges = {(viewer500, author) for author in active}
        edges |= {(viewer3, author) for author in rng.sample(quiet, QUIET_FOLLOWED)}
        for follower in quiet:
            for followed in rng.sample(range(1, USERS - 1), RANDOM_FOLLOWS):
                if followed != follower:
                    edges.add((follower, followed))
        insert(db, followers, ({"follower_id": a, "followed_id": b} for a, b in edges), BATCH)

        start = clock.utcnow() - timedelta(days=365)
        step = timedelta(days=365) / max(posts, 1)

        rare_every = max(posts // RARE_POSTS, 1)

        def post_rows():
            for n in range(1, posts + 1):
                author = rng.choice(active) if rng.random() < ACTIVE_SHARE else rng.choice(quiet)
                if n % 10 == 0:
                    body, language = f"Запись {n}: читаю книги и думаю о главном.", "ru"
                else:
                    body, language = f"Post {n}: something worth saying in a sentence or two.", "en"
                if n % rare_every == 0:
                    body += " An aurora tonight."
                yield {
                    "id": n,
                    "body": body,
                    "language": language,
                    "timestamp": start + step * n,
                    "user_id": author,
                }

        loaded = (Post.__table__, TimelineEntry.__table__)
        with db.engine.begin() as connection:  # an index built once is faster than kept up
            for table in loaded:
                for index in table.indexes:
                    index.drop(connection)
        insert(db, Post.__table__, post_rows(), BATCH)
        with db.engine.begin() as connection:
            # What follow()/unfollow() and the post fan-out keep up to date, done in bulk.
            connection.execute(
                sa.text(
                    'UPDATE "user" SET '
                    "followers_count = (SELECT COUNT(*) FROM followers "
                    'WHERE followed_id = "user".id), '
                    "following_count = (SELECT COUNT(*) FROM followers "
                    'WHERE follower_id = "user".id)'
                )
            )
            columns = ["owner_id", "post_id", "author_id", "timestamp"]
            connection.execute(
                sa.update(User).where(User.id == CELEBRITY).values(timeline_on_read=True)
            )
            connection.execute(
                sa.insert(TimelineEntry).from_select(
                    columns, sa.select(Post.user_id, Post.id, Post.user_id, Post.timestamp)
                )
            )
            connection.execute(
                sa.insert(TimelineEntry).from_select(
                    columns,
                    sa.select(followers.c.follower_id, Post.id, Post.user_id, Post.timestamp)
                    .join(followers, followers.c.followed_id == Post.user_id)
                    .where(Post.user_id != CELEBRITY)  # read at request time
                    .order_by(followers.c.follower_id, Post.id),  # primary key order
                )
            )
            for table in loaded:
                for index in table.indexes:
                    index.create(connection)
        index_all_posts(db, index_posts)
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                for table in ("user", "followers", "post", "timeline_entry"):
                    connection.execute(sa.text(f'ANALYZE "{table}"'))
            else:
                connection.execute(sa.text("ANALYZE"))
        db.engine.dispose()


def index_all_posts(db, index_posts):
    """The search index of every post, in batches, its GIN index (PostgreSQL) built after."""
    import sqlalchemy as sa

    postgresql = db.engine.dialect.name == "postgresql"
    if postgresql:
        with db.engine.begin() as connection:
            connection.execute(sa.text("DROP INDEX ix_post_search_terms"))
    last = 0
    while True:
        with db.engine.begin() as connection:
            rows = connection.execute(
                sa.text("SELECT id, body FROM post WHERE id > :last ORDER BY id LIMIT :batch"),
                {"last": last, "batch": BATCH},
            ).all()
            if not rows:
                break
            index_posts(connection, rows)
        last = rows[-1][0]
    if postgresql:
        with db.engine.begin() as connection:
            connection.execute(
                sa.text("CREATE INDEX ix_post_search_terms ON post_search USING gin (terms)")
            )
            connection.execute(sa.text("ANALYZE post_search"))


def measuring_app(database_url):
    from microblog import create_app

    return create_app(
        {
            "READ_INSTANCE_CONFIG": False,
            "TESTING": True,
            "SECRET_KEY": SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "WTF_CSRF_ENABLED": False,  # signed_in() posts the sign-in form
            "MAIL_WORKERS": 0,
            "RATELIMIT_ENABLED": False,
            "LAST_SEEN_INTERVAL": 10**9,  # measure reads, not the once-a-minute write
        }
    )


def signed_in(app, username):
    """A test client signed in as `username` through the sign-in form (a session record)."""
    client = app.test_client()
    answer = client.post("/auth/login", data={"username": username, "password": VIEWER_PASSWORD})
    assert answer.headers.get("Location") == "/index", f"{username} could not sign in"
    return client


def deep_url(client, url, links):
    """Follow up to `links` rel="next" links from `url`: (the URL reached, links followed)."""
    followed = 0
    while followed < links:
        match = NEXT_LINK.search(client.get(url).text)
        if not match:
            break
        url, followed = unescape(match.group(1)), followed + 1
    return url, followed


def measure(database_urls):
    """{url: {label: (median wall s, median CPU s, page reached)}}, sizes measured in turns.

    One request per page and database per round, so that a busy moment of the
    machine lands on every size alike rather than on one. CPU time (this
    process's, time.process_time) is what the ratio uses: on a shared machine
    wall time also counts other programs' turns on the CPU. SQLite reads are
    in-process work, so CPU time includes them; waits for the disk or for
    PostgreSQL are the difference between the two figures.
    """
    targets = []  # (url, label, client, path, page number)
    apps = []
    for database_url in database_urls:
        app = measuring_app(database_url)
        apps.append(app)
        visitor = app.test_client()
        pages = [
            ("/index viewer500", signed_in(app, "viewer500"), "/index"),
            ("/index viewer3", signed_in(app, "viewer3"), "/index"),
            ("/explore", visitor, "/explore"),
            ("profile (active user)", visitor, "/user/user00001"),
            *((label, visitor, path) for label, path in SEARCHES),
        ]
        for label, client, path in pages:
            targets.append((database_url, f"{label}, page 1", client, path, 1))
            deep, followed = deep_url(client, path, DEEP)
            targets.append((database_url, f"{label}, deep", client, deep, followed + 1))
    wall = {index: [] for index in range(len(targets))}
    cpu = {index: [] for index in range(len(targets))}
    for round_number in range(WARMUP + RUNS):
        for index, (_url, _label, client, path, _page) in enumerate(targets):
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.get(path)
            elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
            assert response.status_code == 200, path
            if round_number >= WARMUP:
                wall[index].append(elapsed)
                cpu[index].append(elapsed_cpu)
    results = {url: {} for url in database_urls}
    for index, (url, label, _client, _path, page) in enumerate(targets):
        results[url][label] = (
            statistics.median(wall[index]),
            statistics.median(cpu[index]),
            page,
        )
    for app in apps:
        with app.app_context():
            from microblog.extensions import db

            db.engine.dispose()
    return results


def build_timed(database_url, posts):
    """Schema by `flask db upgrade`, then the data; returns the build time in seconds."""
    migrate(app_env(database_url, 5000))
    started = time.monotonic()
    build(database_url, posts)
    return time.monotonic() - started


def postgres_database(server_url, name):
    """A fresh PostgreSQL database on `server_url`; returns its URL and a dropper."""
    import sqlalchemy as sa

    from microblog.config import database_url

    admin = sa.create_engine(database_url(server_url.rstrip("/") + "/postgres"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(sa.text(f"CREATE DATABASE {name}"))

    def drop():
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    return server_url.rstrip("/") + f"/{name}", drop


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--database-url", help="build into this database and keep it")
    parser.add_argument("--postgresql", help="a PostgreSQL server URL: one database per size")
    args = parser.parse_args()
    if args.database_url and len(args.posts) != 1:
        parser.error("--database-url takes one --posts size")
    sys.path.insert(0, str(REPO))

    from microblog.config import database_url as with_driver

    with tempfile.TemporaryDirectory() as tmp:
        urls, droppers = {}, []
        try:
            for posts in args.posts:
                if args.database_url:
                    urls[posts] = with_driver(args.database_url)
                elif args.postgresql:
                    url, drop = postgres_database(args.postgresql, f"microblog_bench_{posts}")
                    urls[posts], droppers = with_driver(url), [*droppers, drop]
                else:
                    urls[posts] = f"sqlite:///{Path(tmp) / f'scale-{posts}.db'}"
            built = {posts: build_timed(url, posts) for posts, url in urls.items()}
            measured = measure(list(urls.values()))
        finally:
            for drop in droppers:
                drop()
    if args.database_url:
        print(
            f"Kept {args.database_url}: sign in as viewer500 or viewer3, "
            f"password {VIEWER_PASSWORD!r}\n"
        )
    report(args, {posts: (built[posts], measured[url]) for posts, url in urls.items()})


def report(args, runs):
    backend = (
        "PostgreSQL" if (args.postgresql or "postgres" in (args.database_url or "")) else "SQLite"
    )
    sizes = sorted(runs)
    print(machine_table())
    print()
    builds = ", ".join(f"{n:,} posts {runs[n][0]:.0f} s" for n in sizes)
    print(
        f"{backend}, in-process (Flask test client), {USERS:,} users, median of {RUNS} "
        f"requests taken in turns; build time: {builds}\n"
    )
    labels = list(runs[sizes[0]][1])
    header = ["page"] + [f"{n:,} posts: CPU (wall)" for n in sizes]
    if len(sizes) > 1:
        header.append(f"{sizes[-1]:,} / {sizes[0]:,} (CPU)")
    rows = []
    for label in labels:
        cells = [label]
        for n in sizes:
            wall, cpu, page = runs[n][1][label]
            cells.append(f"{cpu * 1000:.1f} ms ({wall * 1000:.1f} ms), page {page}")
        if len(sizes) > 1:
            ratio = runs[sizes[-1]][1][label][1] / runs[sizes[0]][1][label][1]
            cells.append(f"{ratio:.2f}x")
        rows.append(cells)
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
