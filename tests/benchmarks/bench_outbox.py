"""How fast the outbox drains, against a server that takes 50 ms per message.

Run it as a script (it is not part of the test run):

    /tmp/venv/bin/python tests/benchmarks/bench_outbox.py [--messages 500]

It starts its own aiosmtpd server in a process of its own, as a real server
would be (50 ms per message, at most 10 connections at once, so at most
10 x 20 = 200 messages a second), queues the emails in a fresh SQLite
database in one transaction, and times the worker threads until every
message has arrived. With TEST_DATABASE_URL set (PostgreSQL), each run uses a
fresh schema in that database instead. Prints a markdown table.
"""

import argparse
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for smtp_server

from microblog import create_app
from microblog.config import database_url as with_driver
from microblog.extensions import db
from microblog.mail import send_email
from microblog.mail.outbox import counts_by_state
from microblog.mail.workers import dispatcher
from smtp_server import SmtpServer

SERVER_DELAY = 0.05
SERVER_CONNECTIONS = 10
CEILING = SERVER_CONNECTIONS / SERVER_DELAY  # messages per second the server can take


class Database:
    """A fresh database per run: a SQLite file, or a PostgreSQL schema."""

    def __init__(self, directory):
        self.postgres = with_driver(os.environ.get("TEST_DATABASE_URL"))
        self.schema = f"bench_{uuid.uuid4().hex[:12]}"
        self.directory = directory

    def __enter__(self):
        if not self.postgres:
            return f"sqlite:///{self.directory / f'{self.schema}.db'}", {}
        self.admin = sa.create_engine(self.postgres)
        with self.admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
        return self.postgres, {"connect_args": {"options": f"-csearch_path={self.schema}"}}

    def __exit__(self, *exc):
        if self.postgres:
            with self.admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{self.schema}" CASCADE'))
            self.admin.dispose()


def serve(pipe):
    """The SMTP server's process: starts the server, then answers the benchmark's requests."""
    server = SmtpServer().start()
    mailbox = server.mailbox
    pipe.send((server.host, server.port))
    while (request := pipe.recv()) != "stop":
        if request == "reset":
            mailbox.clear()
            mailbox.delay, mailbox.max_connections = SERVER_DELAY, SERVER_CONNECTIONS
            pipe.send(None)
        else:  # ("wait", count): block until `count` messages arrived, then report
            server.wait_for(request[1], timeout=600)
            time.sleep(0.5)  # a duplicate would arrive right after
            ids = [message["Message-ID"] for message in mailbox.messages]
            pipe.send((ids, mailbox.peak, mailbox.refused))
    server.stop()


class RemoteServer:
    """The benchmark's end of the server process."""

    def __enter__(self):
        self.pipe, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(target=serve, args=(child,))
        self.process.start()
        self.host, self.port = self.pipe.recv()
        return self

    def reset(self):
        self.pipe.send("reset")
        self.pipe.recv()

    def wait_for(self, count):
        self.pipe.send(("wait", count))
        return self.pipe.recv()

    def __exit__(self, *exc):
        self.pipe.send("stop")
        self.process.join(10)


def make_app(url, engine_options, server, workers):
    app = create_app(
        {
            "TESTING": True,  # no log files under instance/
            "SECRET_KEY": "benchmark-secret-key-of-at-least-32-bytes",
            "SERVER_NAME": "localhost",
            "SQLALCHEMY_DATABASE_URI": url,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
            "MAIL_SERVER": server.host,
            "MAIL_PORT": server.port,
            "MAIL_DEFAULT_SENDER": "Microblog <no-reply@example.com>",
            "MAIL_WORKERS": workers,
        }
    )
    with app.app_context():
        db.create_all()
    return app


def queue(app, count):
    """All the emails in one transaction: the workers start when it commits."""
    with app.app_context():
        for n in range(count):
            send_email(f"Bench {n}", None, [f"reader{n}@example.com"], f"Message {n}", None)
        db.session.commit()


class ThreadSampler:
    """Threads of the process, and the mail threads among them, sampled every 2 ms."""

    def __init__(self):
        self.peak = self.peak_mail = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self):
        while not self.done.wait(0.002):
            threads = [t for t in threading.enumerate() if t is not self.thread]
            self.peak = max(self.peak, len(threads))
            self.peak_mail = max(self.peak_mail, sum(t.name.startswith("mail-") for t in threads))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def run(server, directory, label, instances, workers, count):
    """Queue `count` emails, let `instances` apps with `workers` threads each send them."""
    server.reset()
    with Database(directory) as (url, engine_options):
        apps = [make_app(url, engine_options, server, workers) for _ in range(instances)]
        with ThreadSampler() as sampler:
            started = time.monotonic()
            queue(apps[0], count)
            for app in apps[1:]:  # the other instances wake at their next request
                app.test_client().get("/healthz")
            ids, peak_connections, refused = server.wait_for(count)
            elapsed = time.monotonic() - started - 0.5  # the server waited for duplicates
        for app in apps:
            dispatcher(app).stop(timeout=10)
        with apps[0].app_context():
            sent = counts_by_state(db.session)["sent"]
        for app in apps:
            with app.app_context():
                db.engine.dispose()
    return {
        "setup": label,
        "delivered": len(set(ids)),
        "rows sent": sent,
        "duplicates": len(ids) - len(set(ids)),
        "wall time": f"{elapsed:.2f} s",
        "msg/s": f"{count / elapsed:.0f}",
        "of ceiling": f"{count / elapsed / CEILING:.0%}",
        "peak threads": f"{sampler.peak} ({sampler.peak_mail} mail)",
        "peak connections": peak_connections,
        "refused": refused,
    }


def markdown(rows):
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args()
    logging.getLogger("microblog.audit").setLevel(logging.WARNING)  # a line per email otherwise
    setups = [
        ("1 app, MAIL_WORKERS=10", 1, 10),
        ("1 app, MAIL_WORKERS=2 (default)", 1, 2),
        ("2 app instances sharing the database, 5 workers each", 2, 5),
    ]
    with RemoteServer() as server, tempfile.TemporaryDirectory() as directory:
        rows = [
            run(server, Path(directory), label, instances, workers, args.messages)
            for label, instances, workers in setups
        ]
    database = "PostgreSQL" if os.environ.get("TEST_DATABASE_URL") else "SQLite"
    print(
        f"{args.messages} emails, {database}; server: {SERVER_DELAY * 1000:.0f} ms per message, "
        f"at most {SERVER_CONNECTIONS} connections (ceiling {CEILING:.0f} msg/s)\n"
    )
    print(markdown(rows))


if __name__ == "__main__":
    main()
