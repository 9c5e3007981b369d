"""Background jobs in the database: claimed once, re-claimed when a lease runs out, retried."""

import time

import pytest
import sqlalchemy as sa

from microblog import jobs
from microblog.extensions import db
from microblog.models import TimelineEntry, User
from support.auth import PASSWORD
from support.posts import add_posts, shown


def rows_of(app, owner, author):
    with app.app_context():
        ids = dict(db.session.execute(sa.select(User.username, User.id)).all())
        return db.session.scalar(
            sa.select(sa.func.count())
            .select_from(TimelineEntry)
            .where(TimelineEntry.owner_id == ids[owner], TimelineEntry.author_id == ids[author])
        )


def job_states(app):
    with app.app_context():
        return db.session.scalars(sa.select(jobs.Job.state)).all()


def test_an_unfollow_answers_with_one_batch_and_a_job_finishes_it(app, client, make_user, auth):
    app.config["TIMELINE_DELETE_BATCH"] = 2
    make_user("john")
    make_user("susan")
    add_posts(app, "john", 5)
    auth.login("susan")
    client.post("/follow/john")
    client.post("/unfollow/john")
    assert rows_of(app, "susan", "john") == 3
    assert job_states(app) == ["pending"]
    assert shown(client.get("/index").text) == []  # out of the page at once
    assert jobs.run_pending(app) == 2  # two batches: 2 rows, then the last 1
    assert rows_of(app, "susan", "john") == 0
    assert job_states(app) == []


def test_following_again_before_the_job_runs_keeps_the_new_rows(app, client, make_user, auth):
    app.config["TIMELINE_DELETE_BATCH"] = 2
    make_user("john")
    make_user("susan")
    add_posts(app, "john", 5)
    auth.login("susan")
    client.post("/follow/john")
    client.post("/unfollow/john")
    client.post("/follow/john")  # the rows left behind are not copied twice
    jobs.run_pending(app)
    assert rows_of(app, "susan", "john") == 5
    assert shown(client.get("/index").text) == [4, 3, 2, 1, 0]


@jobs.handler("test.noop")
def noop():
    return True


def test_a_claimed_job_is_taken_again_only_once_its_lease_ran_out(app, shifted):
    with app.app_context():
        jobs.enqueue("test.noop")
        db.session.commit()
        first = jobs.claim(db.session, 60)
        assert first is not None
        assert jobs.claim(db.session, 60) is None  # held: no second worker gets it
        shifted(61)  # its process died; the lease ran out
        again = jobs.claim(db.session, 60)
        assert again.id == first.id and again.claim_token != first.claim_token


def test_a_failing_job_is_retried_later_then_left_failed(app, shifted):
    calls = []

    @jobs.handler("test.fails")
    def fails():
        calls.append(1)
        raise RuntimeError("no")

    app.config["JOB_MAX_ATTEMPTS"] = 2
    with app.app_context():
        jobs.enqueue("test.fails")
        db.session.commit()
    assert jobs.run_pending(app) == 1
    assert jobs.run_pending(app) == 0  # not due yet: it waits before the retry
    shifted(10)
    assert jobs.run_pending(app) == 1
    shifted(100)
    assert jobs.run_pending(app) == 0
    assert len(calls) == 2 and job_states(app) == ["failed"]


def test_the_runner_thread_runs_a_committed_job(app):
    done = []

    @jobs.handler("test.records")
    def records(value):
        done.append(value)
        return True

    runner = jobs.Runner(app)
    app.extensions["jobs"] = runner  # as the mail workers' processes have it
    try:
        with app.app_context():
            jobs.enqueue("test.records", value=7)
            db.session.commit()  # wakes the runner
        deadline = time.monotonic() + 5
        while not done and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.stop(5)
        del app.extensions["jobs"]
    assert done == [7] and job_states(app) == []


@pytest.mark.settings(MAIL_WORKERS=1, JOB_POLL_INTERVAL=0.1)
def test_a_job_left_by_a_dead_process_is_run_by_the_next_ones_mail_workers(app, client):
    """Nothing wakes the runner for it: the first request starts the workers and the runner."""
    done = []

    @jobs.handler("test.left")
    def left():
        done.append(1)
        return True

    with app.app_context():  # written as by a process that died before waking anyone
        db.session.execute(sa.insert(jobs.Job).values(kind="test.left", payload="{}"))
        db.session.commit()
    client.get("/")
    deadline = time.monotonic() + 10
    while job_states(app) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done == [1] and job_states(app) == []


def test_flask_jobs_run_once_runs_what_is_due(app):
    """For a deployment whose web processes run no mail workers."""
    with app.app_context():
        jobs.enqueue("test.noop")
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["jobs", "run", "--once"])
    assert result.exit_code == 0 and "1 batch(es) run" in result.output
    assert job_states(app) == []


@pytest.mark.settings(MAIL_WORKERS=1, JOB_POLL_INTERVAL=0.1, TIMELINE_DELETE_BATCH=1)
def test_the_mail_workers_runner_purges_a_deleted_account_batch_by_batch(
    app, client, make_user, auth
):
    """No one runs the jobs by hand: the runner beside the mail workers does every batch."""
    make_user("john")
    make_user("susan")
    add_posts(app, "john", 3)
    auth.login("susan")
    client.post("/follow/john")
    auth.logout()
    auth.login("john")
    client.post("/auth/delete_account", data={"password": PASSWORD})
    deadline = time.monotonic() + 20
    while job_states(app) and time.monotonic() < deadline:
        time.sleep(0.05)
    with app.app_context():
        assert db.session.scalars(sa.select(User.username)).all() == ["susan"]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(TimelineEntry)) == 0
        assert db.session.get(User, 2).following_count == 0
