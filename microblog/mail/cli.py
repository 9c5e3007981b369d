"""`flask mail ...`: look into the outbox and act on it from a shell or cron."""

from datetime import timedelta

import click
from flask.cli import AppGroup

from microblog.extensions import db
from microblog.mail import outbox
from microblog.mail.delivery import deliver_due

mail_cli = AppGroup("mail", help="Inspect and deliver the email outbox.")


@mail_cli.command("status")
def status():
    """Count messages by state and show the oldest one still waiting."""
    for state, count in outbox.counts_by_state(db.session).items():
        click.echo(f"{state:>8}: {count}")
    oldest = outbox.oldest_unsent(db.session)
    if oldest is None:
        click.echo("oldest pending: none")
    else:
        click.echo(
            f"oldest pending: #{oldest.id} queued {oldest.created_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"{oldest.attempts} attempt(s), next try {oldest.next_attempt_at:%H:%M:%S} UTC"
            + (f", last error: {oldest.last_error}" if oldest.last_error else "")
        )


@mail_cli.command("retry")
def retry():
    """Queue failed messages again, with a fresh retry deadline."""
    click.echo(f"requeued {outbox.requeue_failed(db.session)} failed message(s)")


@mail_cli.command("send-pending")
def send_pending():
    """Deliver everything due now, in this process (for cron or a separate worker)."""
    settled = deliver_due()
    counts = outbox.counts_by_state(db.session)
    click.echo(f"settled {settled} message(s); still pending: {counts[outbox.PENDING]}")


@mail_cli.command("purge")
@click.option("--days", default=30, show_default=True, help="Keep messages younger than this.")
def purge(days):
    """Delete sent and dropped messages older than --days (failed ones stay)."""
    removed = outbox.purge_settled(db.session, timedelta(days=days))
    click.echo(f"deleted {removed} settled message(s) older than {days} day(s)")
