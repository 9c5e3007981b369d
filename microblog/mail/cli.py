"""`flask mail ...`: look into the outbox and act on it from a shell or cron."""

import logging
import os
import signal
import threading
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from microblog.extensions import db
from microblog.mail import bounces, housekeeping, metrics, outbox, signing
from microblog.mail.delivery import deliver_due
from microblog.mail.workers import dispatcher
from microblog.redact import mask_email

log = logging.getLogger("microblog.mail")

IDLE_LOG_INTERVAL = 60  # seconds: the worker's log says at most this often that it is alive
BOUNCE_MAX_BYTES = 10 * 1024 * 1024  # a report quotes at most the message: ours are small

mail_cli = AppGroup("mail", help="Inspect and deliver the email outbox.")


@mail_cli.command("status")
def status():
    """Count messages by state, show the oldest one still waiting, and the /metrics figures."""
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
    figures = metrics.snapshot(db.session, current_app.config["MAIL_PROBE_MAX_DELAY"])
    click.echo(f"oldest pending age: {figures['oldest_pending_age']:.0f}s")
    for name in ("sent", "failed", "retried"):
        by_tag = ", ".join(f"{tag} {value:.0f}" for tag, value in sorted(figures[name].items()))
        click.echo(f"{name} by tag: {by_tag or 'none'}")
    count = figures["latency_buckets"][-1][1]
    if count:
        median = next(le for le, n in figures["latency_buckets"] if n >= count / 2)
        click.echo(
            f"SMTP send time: {count:.0f} sends, mean {figures['latency_sum'] / count:.3f}s, "
            f"median <= {median}s"
        )
    click.echo(f"circuits open (processes holding mail back): {figures['open_circuits']}")


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
    housekeeping.run_round()  # when due, and no other process has it: cron keeps house too


@mail_cli.command("purge")
@click.option("--days", default=30, show_default=True, help="Keep messages younger than this.")
def purge(days):
    """Delete sent and dropped messages older than --days (failed ones stay)."""
    removed = outbox.purge_settled(db.session, timedelta(days=days))
    click.echo(f"deleted {removed} settled message(s) older than {days} day(s)")


@mail_cli.command("worker")
@click.option(
    "--threads",
    type=int,
    default=None,
    help="Sender threads always running (default: MAIL_WORKERS, or 2 when it is 0).",
)
def worker(threads):
    """Run the mail workers in the foreground, for web processes that set MAIL_WORKERS=0.

    SIGTERM or Ctrl-C: the workers finish the message in hand, then exit.
    """
    app = current_app._get_current_object()
    threads = threads or app.config["MAIL_WORKERS"] or 2
    pool = dispatcher(app)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    pool.start(size=threads)
    log.info("Mail worker started: %d thread(s), up to %d", threads, pool.limit.ceiling)
    sent = 0
    while not stop.wait(IDLE_LOG_INTERVAL):
        if pool.sent != sent:  # a line a minute while busy, none while idle
            log.info("Mail worker: %d email(s) sent in the last minute", pool.sent - sent)
            sent = pool.sent
    log.info("Mail worker stopping: finishing the messages in hand")
    pool.stop()
    log.info("Mail worker stopped")


@mail_cli.command("dkim-record")
def dkim_record():
    """Print the DNS TXT record that publishes the DKIM key (DKIM_* settings)."""
    signer = signing.signer_of(current_app)
    if signer is None:
        raise click.ClickException(
            "DKIM signing is off: set DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY_PATH"
        )
    click.echo(signing.zone_line(signer))


@mail_cli.command("bounce")
@click.option(
    "--delivered-to",
    default=None,
    help="The address the bounce came to (VERP); default: $ORIGINAL_RECIPIENT, $RECIPIENT, "
    "then the Delivered-To, X-Original-To and To headers.",
)
@click.argument("source", type=click.File("rb"), default="-")
def bounce(delivered_to, source):
    """Read one bounce on stdin (an MTA pipe alias), or SOURCE; mark addresses failed for good.

    Activity email to a marked address stops; account email is still tried.
    A temporary failure changes nothing. Input that is not a bounce exits
    with one line and changes nothing.
    """
    data = source.read(BOUNCE_MAX_BYTES + 1)
    if len(data) > BOUNCE_MAX_BYTES:
        raise click.ClickException(f"input over {BOUNCE_MAX_BYTES} bytes: not read")
    delivered_to = (
        delivered_to or os.environ.get("ORIGINAL_RECIPIENT") or os.environ.get("RECIPIENT")
    )
    try:
        permanent, temporary = bounces.read_bounce(data, current_app.config, delivered_to)
    except bounces.BounceError as exc:
        raise click.ClickException(str(exc)) from None
    if not permanent:
        what = "a temporary failure" if temporary else "no failed address"
        click.echo(f"bounce: {what}; nothing changed")
        return
    marked = bounces.record_bounce(db.session, permanent)
    for address in marked:
        log.info("Address marked undeliverable after a bounce: %s", mask_email(address))
    named = ", ".join(mask_email(address) for address in sorted(permanent))
    click.echo(f"bounce: failed for good: {named}; newly marked: {len(marked)}")
