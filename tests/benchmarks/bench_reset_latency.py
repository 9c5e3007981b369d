"""Does asking for a reset wait for SMTP? Its latency with a 2-second SMTP server, in one run.

    .venv/bin/python tests/benchmarks/bench_reset_latency.py [--seconds 20] [--clients 4]

`gunicorn -w 2` with MAIL_WORKERS=2 sends to a real aiosmtpd server that
takes 2 s to accept each message. Each client process is one visitor (its
own session and CSRF token) that alternates POST /auth/reset_password_request
for a registered address and GET /auth/login, timing both. If the request
waited for the email it would take 2 s; the outbox should make it cost what
a page costs. Prints markdown tables.
"""

import argparse
import multiprocessing
import random
import tempfile
import time
from pathlib import Path

from common import (
    Gunicorn,
    Session,
    app_env,
    free_port,
    machine_table,
    markdown_table,
    migrate,
    ms,
    seeding_app,
    summary,
)
from support.smtp import SmtpServer

SMTP_DELAY = 2.0
USERS = 200
RESET = "/auth/reset_password_request"
LOGIN = "/auth/login"


def seed(database_url):
    from microblog.extensions import db
    from microblog.models import User

    app = seeding_app(database_url)
    with app.app_context():
        db.session.add_all(
            User(username=f"user{n}", email=f"user{n}@example.com", password_hash="x")
            for n in range(USERS)
        )
        db.session.commit()
        db.engine.dispose()


def visitor(port, seconds, seed_value, queue):
    """One person's session: reset request, sign-in page, again, timing each request."""
    chooser = random.Random(seed_value)
    session = Session(port)
    token = session.csrf_token(RESET)
    timings = {RESET: [], LOGIN: []}
    errors = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        email = f"user{chooser.randrange(USERS)}@example.com"
        for method, path, fields in (
            ("POST", RESET, {"csrf_token": token, "email": email}),
            ("GET", LOGIN, None),
        ):
            started = time.perf_counter()
            status, _ = session.request(method, path, fields)
            timings[path].append(time.perf_counter() - started)
            errors += status not in (200, 302)
    queue.put((timings, errors))


def run_visitors(port, seconds, clients):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [
        context.Process(target=visitor, args=(port, seconds, n, queue)) for n in range(clients)
    ]
    for process in processes:
        process.start()
    results = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    timings = {path: [t for result, _ in results for t in result[path]] for path in (RESET, LOGIN)}
    return timings, sum(errors for _, errors in results)


def outbox_states(database_url):
    from microblog.extensions import db
    from microblog.mail.outbox import counts_by_state

    app = seeding_app(database_url)
    with app.app_context():
        counts = counts_by_state(db.session)
        db.engine.dispose()
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    smtp = SmtpServer().start()
    smtp.mailbox.delay = SMTP_DELAY
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            port = free_port()
            env = app_env(
                f"sqlite:///{folder / 'bench.db'}",
                port,
                MAIL_SERVER=smtp.host,
                MAIL_PORT=smtp.port,
                MAIL_WORKERS=2,
                ACCOUNT_EMAILS_PER_HOUR=1_000_000,  # every request makes a real, slow email
            )
            migrate(env)
            seed(env["DATABASE_URL"])
            with Gunicorn(env, port, folder / "app.log", threads=1, access_log=False):
                started = time.monotonic()
                timings, errors = run_visitors(port, args.seconds, args.clients)
                elapsed = time.monotonic() - started
                delivered = len(smtp.messages)
                states = outbox_states(env["DATABASE_URL"])
    finally:
        smtp.stop()

    print(machine_table())
    print()
    print(
        f"gunicorn -w 2, MAIL_WORKERS=2, SQLite; SMTP server takes {SMTP_DELAY:.0f} s per "
        f"message; {args.clients} visitors for {args.seconds} s, each alternating the two "
        "requests on fresh connections\n"
    )
    rows = []
    for label, path in (("POST " + RESET, RESET), ("GET " + LOGIN, LOGIN)):
        stats = summary(timings[path])
        rows.append(
            (
                f"`{label}`",
                stats["n"],
                ms(stats["p50"]),
                ms(stats["p95"]),
                ms(stats["max"]),
            )
        )
    print(markdown_table(("request", "count", "p50", "p95", "max"), rows))
    print()
    ratio = summary(timings[RESET])["p50"] / summary(timings[LOGIN])["p50"]
    print(
        markdown_table(
            ("", ""),
            [
                ("reset p50 / login p50", f"{ratio:.2f}"),
                ("non-2xx/3xx answers", errors),
                (f"emails delivered during the {elapsed:.0f} s run", delivered),
                ("outbox at the end", ", ".join(f"{k} {v}" for k, v in states.items() if v)),
            ],
        )
    )


if __name__ == "__main__":
    main()
