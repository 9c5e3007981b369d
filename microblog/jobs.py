"""Background jobs that ride the database, as the outbox does: no broker to run.

A job is a row, written in the transaction that needs it (so it exists
exactly when that change is committed). A worker claims due rows with a
lease: one UPDATE under SQLite's write lock, `FOR UPDATE SKIP LOCKED` on
PostgreSQL, so two workers never take the same job. A claim whose lease ran
out (its process died) is due again. Each run does one bounded batch and
commits it, so no write lock is held longer than a batch; a handler says
whether work remains, and the job is deleted only when none does. Handlers
are idempotent (a batch that re-runs after a crash finds its rows gone), so a
job that runs twice has no second visible effect. Failures retry with a
growing delay, up to JOB_MAX_ATTEMPTS, then the row stays `failed`.

The runner thread lives in the mail workers' processes (started and
stopped with them), or runs in the foreground with `flask jobs run`.
"""

import json
import logging
import threading
import uuid
from datetime import timedelta

import click
import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from flask.cli import AppGroup

from microblog import clock
from microblog.extensions import db

log = logging.getLogger("microblog.jobs")

PENDING, RUNNING, FAILED = "pending", "running", "failed"
HANDLERS = {}


class Job(db.Model):
    __tablename__ = "job"
    __table_args__ = (sa.Index("ix_job_state_run_after", "state", "run_after"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(64))
    payload: so.Mapped[str] = so.mapped_column(sa.Text)  # JSON
    state: so.Mapped[str] = so.mapped_column(sa.String(16), default=PENDING)
    run_after: so.Mapped[sa.DateTime] = so.mapped_column(sa.DateTime, default=clock.utcnow)
    lease_until: so.Mapped[sa.DateTime | None] = so.mapped_column(sa.DateTime)
    claim_token: so.Mapped[str | None] = so.mapped_column(sa.String(32))
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    last_error: so.Mapped[str | None] = so.mapped_column(sa.String(500))


def handler(kind):
    """Register `function(**payload) -> bool` for `kind`: True when nothing is left to do."""

    def register(function):
        HANDLERS[kind] = function
        return function

    return register


def enqueue(kind, **payload):
    """A job, in the caller's transaction; the runner is woken once it is committed."""
    db.session.add(Job(kind=kind, payload=json.dumps(payload, sort_keys=True)))
    db.session.info["jobs_app"] = current_app._get_current_object()


def _due(now):
    return sa.or_(
        sa.and_(Job.state == PENDING, Job.run_after <= now),
        sa.and_(Job.state == RUNNING, Job.lease_until < now),
    )


def claim(session, lease_seconds):
    """Take one due job under a new claim token, or None; committed at once."""
    now = clock.utcnow()
    candidate = (
        sa.select(Job.id)
        .where(_due(now))
        .order_by(Job.run_after, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidate = list(session.scalars(candidate))  # locked first (see mail.outbox)
    else:
        candidate = candidate.scalar_subquery()
    token = uuid.uuid4().hex
    job = session.execute(
        sa.update(Job)
        .where(Job.id.in_(candidate), _due(now))
        .values(
            state=RUNNING,
            claim_token=token,
            lease_until=now + timedelta(seconds=lease_seconds),
            attempts=Job.attempts + 1,
        )
        .returning(Job.id, Job.kind, Job.payload, Job.attempts, Job.claim_token)
        .execution_options(synchronize_session=False)
    ).first()
    session.commit()
    return job


def run_one(app):
    """Claim one due job and run one batch of it; False when none was due."""
    config = app.config
    session = db.session
    job = claim(session, config["JOB_LEASE_SECONDS"])
    if job is None:
        return False
    mine = sa.and_(Job.id == job.id, Job.claim_token == job.claim_token)
    try:
        done = HANDLERS[job.kind](**json.loads(job.payload))
        if done:
            session.execute(sa.delete(Job).where(mine))
        else:  # more batches: due again at once, behind any other due job
            session.execute(
                sa.update(Job)
                .where(mine)
                .values(state=PENDING, run_after=clock.utcnow(), lease_until=None, attempts=0)
            )
        session.commit()  # the batch and the job's new state together
    except Exception as exc:
        session.rollback()
        log.exception("Job %s (%s) failed", job.id, job.kind)
        failed = job.attempts >= config["JOB_MAX_ATTEMPTS"]
        session.execute(
            sa.update(Job)
            .where(mine)
            .values(
                state=FAILED if failed else PENDING,
                run_after=clock.utcnow() + timedelta(seconds=2**job.attempts),
                lease_until=None,
                last_error=repr(exc)[:500],
            )
        )
        session.commit()
    return True


def run_pending(app, at_most=None):
    """Run due jobs in this thread until none is due (or `at_most` batches); how many ran."""
    ran = 0
    with app.app_context():
        while (at_most is None or ran < at_most) and run_one(app):
            ran += 1
    return ran


class Runner:
    """The job thread of one process, beside the mail workers (started and stopped with them)."""

    def __init__(self, app):
        self.app = app
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread = None
        self.lock = threading.Lock()

    def start(self):
        with self.lock:
            if self.thread is not None and self.thread.is_alive():
                return
            self.stopping.clear()
            self.thread = threading.Thread(target=self.run, name="job-runner", daemon=True)
            self.thread.start()

    def run(self):
        while not self.stopping.is_set():
            self.wake.clear()
            try:
                busy = run_pending(self.app, at_most=100)
            except Exception:
                log.exception("Job runner failed; it will try again")
                busy = 0
            if not busy:
                self.wake.wait(self.app.config["JOB_POLL_INTERVAL"])

    def notify(self):
        self.start()
        self.wake.set()

    def stop(self, timeout=None):
        self.stopping.set()
        self.wake.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)


@sa.event.listens_for(so.Session, "after_commit")
def _wake_after_commit(session):
    app = session.info.pop("jobs_app", None)
    if app is not None and "jobs" in app.extensions:
        app.extensions["jobs"].notify()


@sa.event.listens_for(so.Session, "after_rollback")
def _forget_after_rollback(session):
    session.info.pop("jobs_app", None)


jobs_cli = AppGroup("jobs", help="Background jobs (timeline and deleted-account clean-up).")


@jobs_cli.command("run")
@click.option("--once", is_flag=True, help="Run what is due now, then exit.")
def run_command(once):
    """Run background jobs in the foreground (for processes without mail workers)."""
    app = current_app._get_current_object()
    if once:
        click.echo(f"{run_pending(app)} batch(es) run")
        return
    runner = Runner(app)
    runner.start()
    try:
        runner.thread.join()
    except KeyboardInterrupt:
        runner.stop(10)


def init_app(app, beside_workers):
    """A runner per app, run by `beside_workers(app, runner)` (the mail workers' processes)."""
    if app.config["MAIL_WORKERS"] > 0:
        app.extensions["jobs"] = Runner(app)
        beside_workers(app, app.extensions["jobs"])
    app.cli.add_command(jobs_cli)
