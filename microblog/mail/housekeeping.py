"""Housekeeping: the deletions that keep every table bounded, run by the mail workers.

The app's tables that grow with use (sent mail, sign-in throttle rows,
known browsers, ended sessions) are trimmed here, on a schedule, in the
background: the request path pays nothing. Other packages register their
chores (`add_chore`); mail imports none of them.

However many processes run workers (every gunicorn worker, `flask mail
worker`, cron's `flask mail send-pending`), one round runs per
HOUSEKEEPING_INTERVAL in one process at a time: a lease row in the
database (a `mail_counter` row holding when the next round is due) that
one UPDATE takes, so two processes can never both take it. A process that
dies in a round only delays the next one by an interval.
"""

import logging
import threading
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from microblog import clock
from microblog.extensions import db
from microblog.mail.metrics import MailCounter
from microblog.mail.outbox import purge_settled

log = logging.getLogger("microblog.mail")

LEASE = ("housekeeping", "next_round")  # a mail_counter row: (name, tag)
EPOCH = datetime(1970, 1, 1)


def add_chore(app, name, chore):
    """Run `chore(now)` in every round (in an app context); it returns how many rows went."""
    app.extensions.setdefault("housekeeping", {})[name] = chore


def _seconds(moment):
    return (moment - EPOCH).total_seconds()


def take_lease(session, now, interval):
    """True when this process may run the round due now; the next one is `interval` away."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    name, tag = LEASE
    session.execute(
        insert(MailCounter).values(name=name, tag=tag, value=0.0).on_conflict_do_nothing()
    )
    taken = session.execute(
        sa.update(MailCounter)
        .where(MailCounter.name == name, MailCounter.tag == tag, MailCounter.value <= _seconds(now))
        .values(value=_seconds(now) + interval)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return taken.rowcount == 1


def run_round():
    """One round if it is due and no other process has it: {chore: rows deleted}, or None."""
    config = current_app.config
    now = clock.utcnow()
    if not take_lease(db.session, now, config["HOUSEKEEPING_INTERVAL"]):
        return None
    keep = timedelta(seconds=config["MAIL_KEEP_SENT"])
    chores = {"outbox": lambda _now: purge_settled(db.session, keep)}
    chores.update(current_app.extensions.get("housekeeping", {}))
    done = {}
    for name, chore in chores.items():
        try:
            done[name] = chore(now)
        except Exception:
            db.session.rollback()
            log.exception("Housekeeping of %s failed; the next round tries again", name)
    if any(done.values()):
        log.info(
            "Housekeeping: %s",
            ", ".join(f"{name} {count}" for name, count in done.items() if count),
        )
    return done


class Schedule:
    """When this process last asked for the lease: the database is asked once a minute at most."""

    CHECK_EVERY = 60.0  # seconds

    def __init__(self):
        self.lock = threading.Lock()
        self.checked = float("-inf")

    def maybe_run(self, app):
        """Called by idle workers; one thread of the process asks, the others go on."""
        now = clock.monotonic()
        every = min(self.CHECK_EVERY, app.config["HOUSEKEEPING_INTERVAL"])
        if every <= 0:  # HOUSEKEEPING_INTERVAL=0: the workers keep no house
            return None
        if now - self.checked < every or not self.lock.acquire(blocking=False):
            return None
        try:
            self.checked = now
            with app.app_context():
                return run_round()
        except Exception:
            log.exception("Housekeeping could not run; it will try again")
            return None
        finally:
            self.lock.release()
