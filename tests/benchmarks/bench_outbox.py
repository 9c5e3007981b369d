"""Delivery as deployed: recovery after SMTP outages, and a burst at a capped server.

    .venv/bin/python tests/benchmarks/bench_outbox.py [--database-url postgresql://...]
        [--messages 200] [--outages 3,60]

`gunicorn -w 2 --threads 4 wsgi:app` with DEFAULT mail settings sends to a
real aiosmtpd server running in a process of its own:

- Recovery: the server is stopped; visitors ask for password resets over
  HTTP (their emails fail and are held back); after the outage the server
  starts again on the same port, and we time how long the held-back mail
  takes to arrive. The 10-minute outage shifts the clock (microblog.clock,
  in an in-process app with the same default settings and its worker
  threads) instead of waiting ten minutes.
- Burst: the emails are queued in one transaction; the server admits 5
  connections (a 6th gets "421 too many connections") and takes 50 ms per
  message, so its ceiling is 100 msg/s. Throughput is the drain rate, from
  the first arrival to the last (the workers find mail queued by another
  process at their next poll, MAIL_POLL_INTERVAL, 2 s).

The database is a fresh SQLite file, or a fresh schema in the PostgreSQL
database given with --database-url, created with `flask db upgrade`.
Prints Markdown tables.
"""

import argparse
import multiprocessing
import smtplib
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from common import (
    REPO,
    Gunicorn,
    Session,
    app_env,
    free_port,
    get,
    machine_table,
    markdown_table,
    migrate,
    seeding_app,
)
from microblog import clock, create_app
from microblog.config import database_url
from microblog.extensions import db
from microblog.mail import metrics, send_email
from microblog.mail.outbox import PENDING, OutboxMessage, counts_by_state
from microblog.mail.workers import dispatcher
from microblog.models import User

SERVER_DELAY = 0.05
SERVER_CONNECTIONS = 5
CEILING = SERVER_CONNECTIONS / SERVER_DELAY
HELD_BACK = 5  # reset requests made during each outage
RESET = "/auth/reset_password_request"


def serve(pipe, port):
    """The SMTP server's process: stop/start (an outage), reset, and report arrivals."""
    sys.path.insert(0, str(REPO / "tests"))
    from support.smtp import SmtpServer

    server = SmtpServer(port=port).start()
    mailbox = server.mailbox
    arrivals = []
    original = mailbox.handle_DATA

    async def timed(*args):
        answer = await original(*args)
        arrivals.append(time.time())
        return answer

    mailbox.handle_DATA = timed
    pipe.send(None)
    while (request := pipe.recv()) != "quit":
        command, *values = request
        if command == "stop":
            server.stop()
            pipe.send(None)
        elif command == "start":
            server.start()
            pipe.send(time.time())
        elif command == "reset":
            mailbox.clear()
            arrivals.clear()
            mailbox.delay, mailbox.max_connections = values
            pipe.send(None)
        elif command == "wait":
            server.wait_for(values[0], timeout=values[1])
            time.sleep(0.5)  # a duplicate would arrive right after
            ids = [message["Message-ID"] for message in mailbox.messages]
            pipe.send((ids, list(arrivals), mailbox.peak, mailbox.refused))
    server.stop()


class RemoteServer:
    """The benchmark's end of the SMTP server's process."""

    def __init__(self):
        self.port = free_port()
        self.host = "127.0.0.1"

    def __enter__(self):
        self.pipe, child = multiprocessing.Pipe()
        context = multiprocessing.get_context("spawn")
        self.process = context.Process(target=serve, args=(child, self.port))
        self.process.start()
        self.pipe.recv()
        return self

    def ask(self, *request):
        self.pipe.send(request)
        return self.pipe.recv()

    def __exit__(self, *exc):
        self.pipe.send("quit")
        self.process.join(10)


class Database:
    """A fresh SQLite file, or a fresh schema in the given PostgreSQL database."""

    def __init__(self, url, folder):
        self.base, self.folder = url, folder
        self.schema = f"bench_{uuid.uuid4().hex[:12]}"

    def __enter__(self):
        if not self.base:
            return f"sqlite:///{self.folder / 'bench.db'}"
        self.admin = sa.create_engine(database_url(self.base))
        with self.admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
        return f"{self.base}?options={quote(f'-csearch_path={self.schema}')}"

    def __exit__(self, *exc):
        if self.base:
            with self.admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{self.schema}" CASCADE'))
            self.admin.dispose()


def seed_users(app, count):
    with app.app_context():
        db.session.add_all(
            User(username=f"user{n}", email=f"user{n}@example.com", password_hash="x")
            for n in range(count)
        )
        db.session.commit()


def queue_emails(app, count):
    with app.app_context():
        for n in range(count):
            send_email(f"Bench {n}", None, [f"reader{n}@example.com"], f"Message {n}", None)
        db.session.commit()


def outbox(app):
    """Counts by state, and the errors of the messages now held back."""
    with app.app_context():
        counts = counts_by_state(db.session)
        held = sa.select(OutboxMessage.last_error).where(
            OutboxMessage.state == PENDING, OutboxMessage.last_error.is_not(None)
        )
        errors = sorted(set(db.session.scalars(held)))
        db.session.remove()
    return counts, errors


def wait_for_states(app, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts, errors = outbox(app)
        if predicate(counts, errors):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the outbox never got there: {outbox(app)}")


def wait_for_circuit(app, timeout=60):
    """Until a process (as recorded in the database) holds mail back, its circuit open."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with app.app_context():
            figures = metrics.snapshot(db.session, app.config["MAIL_PROBE_MAX_DELAY"])
            db.session.remove()
        if figures["open_circuits"]:
            return
        time.sleep(0.05)
    raise RuntimeError("no circuit opened")


def warm_up(port):
    """Requests on both gunicorn workers, so that both start their mail threads."""
    threads = [
        threading.Thread(target=get, args=("127.0.0.1", port, "/healthz")) for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def request_resets(port, first, count):
    for n in range(first, first + count):
        session = Session(port)
        token = session.csrf_token(RESET)
        session.request("POST", RESET, {"csrf_token": token, "email": f"user{n}@example.com"})


def recovery(server, app, port, outage, first_user):
    """Stop the server, queue mail over HTTP, restart after `outage` s; seconds to deliver."""
    server.ask("reset", 0.0, None)
    server.ask("stop")
    stopped = time.monotonic()
    request_resets(port, first_user, HELD_BACK)
    wait_for_circuit(app)  # a worker was refused: its circuit is open
    time.sleep(max(0.0, outage - (time.monotonic() - stopped)))
    back = server.ask("start")
    ids, arrivals, _, _ = server.ask("wait", HELD_BACK, outage + 120)
    return max(arrivals) - back, len(ids)


def shifted_recovery(server, url, minutes):
    """The long outage, in-process: the clock jumps `minutes` while the server is down."""
    server.ask("reset", 0.0, None)
    app = create_app(
        {
            "READ_INSTANCE_CONFIG": False,
            "SECRET_KEY": "benchmark-secret-key-of-at-least-32-bytes-long",
            "SERVER_NAME": "127.0.0.1",
            "TESTING": True,  # logs to stderr, not instance/logs
            "SQLALCHEMY_DATABASE_URI": database_url(url),
            "MAIL_SERVER": server.host,
            "MAIL_PORT": server.port,
        }
    )
    server.ask("stop")
    queue_emails(app, HELD_BACK)  # the commit starts this app's workers
    wait_for_circuit(app)
    real_utcnow, real_monotonic = clock.utcnow, clock.monotonic
    shift = minutes * 60
    clock.utcnow = lambda: real_utcnow() + timedelta(seconds=shift)
    clock.monotonic = lambda: real_monotonic() + shift
    try:
        time.sleep(3)  # the workers live in the shifted time for a while, server still down
        back = server.ask("start")
        ids, arrivals, _, _ = server.ask("wait", HELD_BACK, 120)
    finally:
        dispatcher(app).stop(10)
        clock.utcnow, clock.monotonic = real_utcnow, real_monotonic
        with app.app_context():
            db.engine.dispose()
    return max(arrivals) - back, len(ids)


def burst(server, app, count):
    server.ask("reset", SERVER_DELAY, SERVER_CONNECTIONS)
    queued = time.time()
    queue_emails(app, count)
    ids, arrivals, peak, refused = server.ask("wait", count, 120)
    wait_for_states(app, lambda counts, errors: counts["pending"] + counts["sending"] == 0)
    counts, _ = outbox(app)
    drain = (len(arrivals) - 1) / (max(arrivals) - min(arrivals))
    return {
        "msg/s": f"{drain:.0f}",
        "of ceiling": f"{drain / CEILING:.0%}",
        "first arrival": f"{min(arrivals) - queued:.2f} s after the commit",
        "lost": count - len(set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        "rows sent": counts["sent"],
        "refused connections": refused,
        "peak connections": peak,
    }


def bare_client(server, count):
    """What the same server gives a client with no database and no pool: the real ceiling.

    SERVER_CONNECTIONS threads of plain smtplib, each on one connection, send
    `count` small messages between them; the drain rate is measured as for the burst.
    """
    server.ask("reset", SERVER_DELAY, SERVER_CONNECTIONS)
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "Hi"
    message.set_content("Body of a message\n")

    def send(n):
        with smtplib.SMTP(server.host, server.port) as connection:
            for _ in range(n):
                connection.send_message(message)

    share = count // SERVER_CONNECTIONS
    threads = [threading.Thread(target=send, args=(share,)) for _ in range(SERVER_CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _ids, arrivals, _peak, _refused = server.ask("wait", share * SERVER_CONNECTIONS, 120)
    return (len(arrivals) - 1) / (max(arrivals) - min(arrivals))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--outages", default="3,60", help="seconds, comma-separated")
    args = parser.parse_args()
    outages = [float(value) for value in args.outages.split(",") if value]
    database = "PostgreSQL" if args.database_url else "SQLite"

    with tempfile.TemporaryDirectory() as tmp, RemoteServer() as server:
        folder = Path(tmp)
        with Database(args.database_url, folder) as url:
            port = free_port()
            env = app_env(url, port, MAIL_SERVER=server.host, MAIL_PORT=server.port)
            env["GUNICORN_CMD_ARGS"] = "--threads 4"
            migrate(env)
            app = seeding_app(url)
            seed_users(app, HELD_BACK * len(outages))
            rows = []
            with Gunicorn(env, port, folder / "app.log", threads=1, access_log=False):
                warm_up(port)
                for n, outage in enumerate(outages):
                    seconds, delivered = recovery(server, app, port, outage, n * HELD_BACK)
                    rows.append((f"{outage:.0f} s", f"{seconds:.2f} s", f"{delivered}/{HELD_BACK}"))
                warm_up(port)
                log_start = (folder / "app.log").stat().st_size
                burst_row = burst(server, app, args.messages)
            with open(folder / "app.log", "rb") as log:
                log.seek(log_start)
                burst_log = log.read().decode(errors="replace")
            burst_row["pool shrank (throttled)"] = burst_log.count("Mail server throttles")
            burst_row["circuits opened"] = burst_log.count("Mail server unavailable")
            bare = bare_client(server, args.messages)
            burst_row["bare smtplib client, msg/s"] = f"{bare:.0f}"
            burst_row["app / bare client"] = f"{float(burst_row['msg/s']) / bare:.0%}"
            seconds, delivered = shifted_recovery(server, url, 10)
            rows.append(("10 min (clock shifted)", f"{seconds:.2f} s", f"{delivered}/{HELD_BACK}"))
            with app.app_context():
                db.engine.dispose()

    print(machine_table())
    print(f"\n{database}, `gunicorn -w 2 --threads 4 wsgi:app`, default mail settings.\n")
    print(f"Recovery: {HELD_BACK} reset emails requested during an SMTP outage\n")
    print(
        markdown_table(
            ("outage", "last held-back email arrived after the server's return", "delivered"), rows
        )
    )
    print(
        f"\nBurst: {args.messages} emails; server {SERVER_DELAY * 1000:.0f} ms per message, "
        f"at most {SERVER_CONNECTIONS} connections (ceiling {CEILING:.0f} msg/s)\n"
    )
    print(markdown_table(tuple(burst_row), [tuple(burst_row.values())]))


if __name__ == "__main__":
    main()
