"""Page throughput under `gunicorn -w 2`, against the framework's ceiling, in one run.

    .venv/bin/python tests/benchmarks/bench_pages.py [--seconds 10] [--connections 4]

Serves /explore (1,000 posts seeded, 25 a page) and /auth/login from the app,
then the same two pages, byte for byte, from a minimal Flask app that
returns them as constants under the same gunicorn settings: the ceiling.
Both servers run side by side and each page is measured on one right after
the other. Prints markdown tables.
"""

import argparse
import tempfile
from datetime import timedelta
from pathlib import Path

from common import (
    Gunicorn,
    app_env,
    free_port,
    get,
    load,
    load_generator,
    machine_table,
    markdown_table,
    migrate,
    ms,
    seeding_app,
)

PAGES = ("/explore", "/auth/login")
POSTS = 1000
AUTHORS = 20

CEILING_APP = '''
"""The framework's ceiling: Flask under the same gunicorn, answering constant pages."""
from pathlib import Path

from flask import Flask

HERE = Path(__file__).parent
PAGES = {{path: (HERE / name).read_bytes() for path, name in {pages!r}.items()}}
app = Flask(__name__)


@app.route("/<path:path>")
def page(path):
    return PAGES["/" + path], {{"Content-Type": "text/html; charset=utf-8"}}


@app.route("/")
def index():
    return "ok"
'''


def seed(database_url):
    """1,000 posts by 20 authors, a minute apart."""
    from microblog import clock
    from microblog.extensions import db
    from microblog.models import Post, User

    app = seeding_app(database_url)
    with app.app_context():
        authors = [
            User(username=f"author{n}", email=f"author{n}@example.com", password_hash="x")
            for n in range(AUTHORS)
        ]
        db.session.add_all(authors)
        start = clock.utcnow() - timedelta(days=1)
        db.session.add_all(
            Post(
                body=f"Post number {n}: something worth saying in a sentence or two.",
                author=authors[n % AUTHORS],
                timestamp=start + timedelta(minutes=n),
            )
            for n in range(POSTS)
        )
        db.session.commit()
        db.engine.dispose()


def write_ceiling_app(folder, port):
    """Capture the app's real pages, so that the ceiling sends the same bytes."""
    names = {}
    for number, path in enumerate(PAGES):
        status, _, body = get("127.0.0.1", port, path)
        assert status == 200, (path, status)
        names[path] = f"page{number}.html"
        (folder / names[path]).write_bytes(body)
    (folder / "ceiling.py").write_text(CEILING_APP.format(pages=names))
    return {path: (folder / name).stat().st_size for path, name in names.items()}


def measure(ports, seconds, connections):
    """Each page on each server, the two servers back to back, so that drift hits both."""
    results = {name: {} for name in ports}
    for path in PAGES:
        for name, port in ports.items():
            load(port, path, 1, connections)  # warm up: imports, templates, pools
            results[name][path] = load(port, path, seconds, connections)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="per page and server")
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port, ceiling_port = free_port(), free_port()
        env = app_env(f"sqlite:///{folder / 'bench.db'}", port)
        migrate(env)
        seed(env["DATABASE_URL"])
        with Gunicorn(env, port, folder / "app.log", threads=1, access_log=False):
            sizes = write_ceiling_app(folder, port)
            with Gunicorn(
                env,
                ceiling_port,
                folder / "ceiling.log",
                "ceiling:app",
                folder,
                threads=1,
                access_log=False,
            ):
                results = measure(
                    {"microblog": port, "ceiling": ceiling_port}, args.seconds, args.connections
                )

    print(machine_table())
    print()
    print(
        f"gunicorn -w 2 (sync workers), SQLite, {POSTS} posts; load: {load_generator()}, "
        f"{args.connections} connections, {args.seconds} s per row\n"
    )
    rows = []
    for path in PAGES:
        for name in ("microblog", "ceiling"):
            result = results[name][path]
            rows.append(
                (
                    f"`{path}`",
                    name,
                    f"{sizes[path] / 1024:.1f} KiB",
                    f"{result['rps']:.0f}",
                    ms(result["p50"]),
                    ms(result["p99"]),
                    result["errors"],
                )
            )
    header = ("page", "server", "size", "req/s", "p50", "p99", "errors")
    print(markdown_table(header, rows))
    print()
    ratios = [
        (f"`{path}`", f"{results['microblog'][path]['rps'] / results['ceiling'][path]['rps']:.0%}")
        for path in PAGES
    ]
    print(markdown_table(("page", "microblog / ceiling (req/s)"), ratios))


if __name__ == "__main__":
    main()
