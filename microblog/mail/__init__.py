"""Email: the outbox every message goes through, its workers and its commands.

What other packages may use of mail is exported here, and only here.
"""

from microblog.mail import error_reports, metrics, workers
from microblog.mail.cli import mail_cli
from microblog.mail.delivery import composer, rehearse_send
from microblog.mail.outbox import (
    count_recent_emails,
    defer_email,
    drop_account_mail,
    drop_queued_mail,
    send_email,
)

__all__ = [
    "composer",
    "count_recent_emails",
    "defer_email",
    "drop_account_mail",
    "drop_queued_mail",
    "init_app",
    "rehearse_send",
    "send_email",
]


def init_app(app):
    """The app's worker pool, error reports, `/metrics` and `flask mail` commands."""
    workers.init_app(app)
    metrics.init_app(app)
    error_reports.init_app(app)
    app.cli.add_command(mail_cli)
