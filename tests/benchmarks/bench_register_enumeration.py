"""Does sign-up tell, by its timing, whether an address already has an account?

    .venv/bin/python tests/benchmarks/bench_register_enumeration.py [--rounds 60]

`gunicorn -w 2` with the production password hash (Argon2id with the
default parameters), the mail workers running and a real aiosmtpd server. Each round
POSTs /auth/register twice, in random order, with CSRF on: once with a free
address, once with the address of an existing account (a new username each
time, so neither is a form error). Both must answer 302 to /auth/login; the
table compares their latency. Prints markdown tables.
"""

import argparse
import random
import tempfile
import time
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlencode

from common import (
    Gunicorn,
    Session,
    app_env,
    free_port,
    machine_table,
    markdown_table,
    migrate,
    seeding_app,
    summary,
)
from support.smtp import SmtpServer

PASSWORD = "correct horse battery staple"
TAKEN = "susan@example.com"


def seed(database_url):
    from microblog.extensions import db
    from microblog.models import User

    app = seeding_app(database_url)
    with app.app_context():
        db.session.add(User(username="susan", email=TAKEN, password_hash="x"))
        db.session.commit()
        db.engine.dispose()


def post_register(session, token, username, email):
    """One sign-up POST on a fresh connection: (seconds, status, Location)."""
    body = urlencode(
        {
            "csrf_token": token,
            "username": username,
            "email": email,
            "password": PASSWORD,
            "password2": PASSWORD,
        }
    )
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": "; ".join(f"{k}={v}" for k, v in session.cookies.items()),
    }
    connection = HTTPConnection("127.0.0.1", session.port, timeout=60)
    try:
        started = time.perf_counter()
        connection.request("POST", "/auth/register", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    return elapsed, response.status, response.headers.get("Location")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    smtp = SmtpServer().start()
    chooser = random.Random(10)
    timings = {"free address": [], "taken address": []}
    with tempfile.TemporaryDirectory() as scratch:
        database_url = f"sqlite:///{Path(scratch) / 'bench.db'}"
        port = free_port()
        env = app_env(
            database_url, port, MAIL_SERVER=smtp.host, MAIL_PORT=smtp.port, MAIL_WORKERS=2
        )
        migrate(env)
        seed(database_url)
        with Gunicorn(env, port, Path(scratch) / "gunicorn.log", threads=1, access_log=False):
            session = Session(port)
            token = session.csrf_token("/auth/register")
            for n in range(-3, args.rounds):  # three rounds of warm-up, not counted
                cases = [("free address", f"new{n}@example.com"), ("taken address", TAKEN)]
                chooser.shuffle(cases)
                for case, email in cases:
                    username = f"{case.split()[0]}{n}".replace("-", "m")
                    elapsed, status, location = post_register(session, token, username, email)
                    if (status, location) != (302, "/auth/login"):
                        raise SystemExit(f"{case}: unexpected answer {status} {location}")
                    if n >= 0:
                        timings[case].append(elapsed)
    smtp.stop()

    stats = {case: summary(values) for case, values in timings.items()}
    base = stats["free address"]["p50"]
    rows = [
        (
            case,
            s["n"],
            f"{s['p50'] * 1000:.1f} ms",
            f"{s['p95'] * 1000:.1f} ms",
            f"{(s['p50'] - base) * 1000:+.1f} ms",
        )
        for case, s in stats.items()
    ]
    print(machine_table())
    print()
    print(markdown_table(("POST /auth/register", "n", "p50", "p95", "p50 - free"), rows))
    delivered = len(smtp.messages)
    print(f"\nEmails delivered during the run: {delivered} (verification and owner notices).")


if __name__ == "__main__":
    main()
