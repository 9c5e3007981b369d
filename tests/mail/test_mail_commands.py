"""`flask mail status|retry|send-pending|purge`: what an operator sees and does."""

import os
import re
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.extensions import db
from microblog.mail.outbox import DROPPED, FAILED, PENDING, SENT, OutboxMessage, new_message
from support.app import TEST_SECRET_KEY
from support.outbox import outbox_rows, queue_emails


@pytest.fixture
def mail(app):
    """Run `flask --app microblog mail ...` against the test's app; its output."""
    runner = app.test_cli_runner()

    def run(*args):
        result = runner.invoke(args=["mail", *args])
        assert result.exit_code == 0, result.output
        return result.output

    return run


def count_of(output, state):
    return int(re.search(rf"^\s*{state}: (\d+)$", output, re.M).group(1))


def test_status_of_an_empty_outbox(mail):
    output = mail("status")
    assert all(count_of(output, state) == 0 for state in ("pending", "sending", "sent", "failed"))
    assert "oldest pending: none" in output


def test_status_counts_by_state_and_shows_the_oldest_waiting(mail, app, smtp, deliver):
    smtp.mailbox.rejected_recipients.add("gone@example.com")
    queue_emails(app, 1, recipients=["gone@example.com"])
    queue_emails(app, 1)
    deliver()
    smtp.mailbox.max_connections = 0
    queue_emails(app, 2)
    deliver()

    output = mail("status")
    assert [count_of(output, s) for s in ("pending", "sent", "failed")] == [2, 1, 1]
    oldest = outbox_rows(app)[2]
    assert f"oldest pending: #{oldest.id} queued" in output
    assert "0 attempt(s)" in output  # refused before it was claimed: not its failure
    assert "last error" not in output


def test_send_pending_delivers_in_this_process(mail, app, smtp):
    queue_emails(app, 3)
    assert mail("send-pending") == "settled 3 message(s); still pending: 0\n"
    assert len(smtp.wait_for(3)) == 3
    assert smtp.mailbox.connections == 1


def test_send_pending_says_what_is_left_when_the_server_refuses(mail, app, smtp):
    smtp.mailbox.max_connections = 0
    queue_emails(app, 2)
    assert mail("send-pending") == "settled 0 message(s); still pending: 2\n"


def test_retry_requeues_failed_messages_with_a_new_deadline(mail, app, smtp):
    smtp.mailbox.rejected_recipients.add("reader@example.com")
    queue_emails(app, 1, recipients=["reader@example.com"])
    mail("send-pending")
    [failed] = outbox_rows(app)
    assert failed.state == "failed"

    smtp.mailbox.rejected_recipients.clear()  # the mailbox exists again
    assert mail("retry") == "requeued 1 failed message(s)\n"
    [requeued] = outbox_rows(app)
    assert requeued.state == "pending"
    assert requeued.deadline_at > failed.deadline_at
    mail("send-pending")
    assert smtp.wait_for(1)[0]["To"] == "reader@example.com"
    assert outbox_rows(app)[0].state == "sent"


def test_purge_deletes_old_settled_messages_and_keeps_the_rest(app, mail):
    """Sent and dropped rows go after --days; failed and pending ones stay to be acted on."""
    old = clock.utcnow() - timedelta(days=40)
    with app.app_context():
        for state in (SENT, DROPPED, FAILED, PENDING):
            row = new_message("s", None, ["a@example.com"], "t", None, state=state)
            row.created_at = old
            db.session.add(row)
        db.session.add(new_message("s", None, ["a@example.com"], "t", None, state=SENT))
        db.session.commit()
    assert "deleted 2 settled message(s)" in mail("purge", "--days", "30")
    with app.app_context():
        states = sorted(db.session.scalars(sa.select(OutboxMessage.state)))
    assert states == [FAILED, PENDING, SENT]


# `flask --app microblog mail worker`: the mail workers in a process of their own.
#
# Run as an operator runs it, as a subprocess with the production configuration,
# next to an app whose web processes set MAIL_WORKERS=0.


REPO = Path(__file__).resolve().parents[2]


class Worker:
    """The command's process, with its output collected line by line."""

    def __init__(self, env):
        self.lines = []
        self.changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "microblog", "mail", "worker"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.rstrip())
                self.changed.notify_all()

    def wait_for_line(self, text, timeout=30):
        with self.changed:
            found = self.changed.wait_for(lambda: any(text in line for line in self.lines), timeout)
        assert found, f"no line with {text!r} in:\n" + "\n".join(self.lines)

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.reader.join(10)
        self.process.stdout.close()


@pytest.fixture
def worker(database_url, smtp, tmp_path):
    url, engine_options = database_url
    options = engine_options.get("connect_args", {}).get("options")
    if options:  # PostgreSQL: the test's schema
        url = f"{url}?options={quote(options)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "MAIL_"))}
    env.update(
        DATABASE_URL=url,
        SECRET_KEY=TEST_SECRET_KEY,
        SERVER_NAME="localhost",
        MAIL_SERVER=smtp.host,
        MAIL_PORT=str(smtp.port),
        MAIL_WORKERS="0",  # the web processes' setting: the worker runs its own default
        MAIL_POLL_INTERVAL="0.2",
        LOG_TO_STDOUT="1",
        PYTHONUNBUFFERED="1",
    )
    workers = []

    def start():
        workers.append(Worker(env))
        return workers[-1]

    yield start
    for process in workers:
        process.close()


def test_the_worker_process_sends_what_the_web_processes_queue_and_is_quiet_idle(app, smtp, worker):
    running = worker()
    running.wait_for_line("Mail worker started: 2 thread(s)")
    queue_emails(app, 3)  # MAIL_WORKERS=0 here: only the worker process sends
    assert len(smtp.wait_for(3, timeout=30)) == 3
    for n in (1, 2, 3):  # two threads send them: their lines come in any order
        running.wait_for_line(f"email.sent id={n} ")
    with running.changed:
        idle_from = len(running.lines)
    # Idle, polling every 0.2 s, until the next email: no line for the polls.
    queue_emails(app, 1)
    smtp.wait_for(4, timeout=30)
    running.wait_for_line("email.sent id=4")
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(30) == 0
    assert {row.state for row in outbox_rows(app)} == {"sent"}
    quiet = [line for line in running.lines[idle_from:] if "email.sent id=4" not in line]
    assert all("Mail worker stop" in line for line in quiet), quiet


def test_sigterm_finishes_the_message_in_hand_and_gives_back_the_rest(app, smtp, worker):
    smtp.mailbox.gate = threading.Event()
    running = worker()
    try:
        queue_emails(app, 12)  # more than the pool's ceiling (10): some are never in hand
        assert smtp.mailbox.receiving.wait(30), "the worker never started a send"
        running.process.send_signal(signal.SIGTERM)
        running.wait_for_line("Mail worker stopping")
    finally:
        smtp.mailbox.gate.set()  # the message in hand is accepted
    assert running.process.wait(30) == 0
    rows = outbox_rows(app)
    sent = [row for row in rows if row.state == "sent"]
    # Every thread finishes the message it had in hand (on a loaded machine more than one
    # thread may have one when the signal lands) and gives back the rest, untried.
    assert 1 <= len(sent) < len(rows)
    assert sorted(m["Message-ID"] for m in smtp.messages) == sorted(r.message_id for r in sent)
    assert {row.state for row in rows} - {"sent"} == {"pending"}
    assert all(row.attempts == 0 for row in rows if row.state == "pending")
    running.wait_for_line("Mail worker stopped")
