"""Email: the outbox every message goes through, its workers and its commands."""

from microblog.mail import error_reports, metrics, workers
from microblog.mail.cli import mail_cli
from microblog.mail.outbox import send_email

__all__ = ["init_app", "send_email"]


def init_app(app):
    """The app's worker pool, error reports, `/metrics` and `flask mail` commands."""
    workers.init_app(app)
    metrics.init_app(app)
    error_reports.init_app(app)
    app.cli.add_command(mail_cli)
