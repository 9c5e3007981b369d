"""Email: the outbox every message goes through, its workers and its commands.

What other packages may use of mail is exported here, and only here.
"""

from microblog.mail import bounces, error_reports, metrics, signing, workers
from microblog.mail.bounces import ACCOUNT, ACTIVITY, clear_undeliverable, is_undeliverable
from microblog.mail.cli import mail_cli
from microblog.mail.delivery import composer, rehearse_send
from microblog.mail.housekeeping import add_chore
from microblog.mail.outbox import (
    count_recent_emails,
    count_recent_requests,
    defer_email,
    drop_account_mail,
    drop_queued_mail,
    send_email,
)

__all__ = [
    "ACCOUNT",
    "ACTIVITY",
    "add_chore",
    "clear_undeliverable",
    "composer",
    "count_recent_emails",
    "count_recent_requests",
    "defer_email",
    "drop_account_mail",
    "drop_queued_mail",
    "init_app",
    "is_undeliverable",
    "rehearse_send",
    "run_beside_workers",
    "send_email",
]


def run_beside_workers(app, companion):
    """Run another background thread (`start()`, `stop(timeout)`) in the workers' processes."""
    workers.dispatcher(app).companions.append(companion)


def init_app(app):
    """The app's DKIM key, bounce banner, worker pool, error reports, `/metrics`, commands."""
    signing.init_app(app)
    app.jinja_env.globals["undeliverable"] = bounces.is_undeliverable  # the owner's banner
    workers.init_app(app)
    metrics.init_app(app)
    error_reports.init_app(app)
    app.cli.add_command(mail_cli)
