"""What delivery is doing, for Prometheus (`/metrics`) and for `flask mail status`.

Every figure is read from the database at scrape time, not from the memory
of the process that answers: with several gunicorn workers (and a separate
`flask mail worker`, and several hosts) a scrape reaches one process, yet it
must see them all. The outbox itself gives the depth by state and the age of
the oldest pending message; counters and the send-latency histogram are rows
of `mail_counter`, incremented in the transaction that settles a batch (one
upsert per batch), so they survive restarts and need no shared directory
(prometheus_client's multiprocess mode needs one, wiped at each start).
"""

import hmac
import os
import socket
import time
from collections import Counter

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import abort, current_app, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from sqlalchemy.dialects import postgresql, sqlite

from microblog import clock
from microblog.extensions import db
from microblog.mail.outbox import PENDING, SENDING, OutboxMessage, counts_by_state

# Seconds; an SMTP exchange on a LAN takes milliseconds, a slow relay seconds.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
NO_TAG = "none"
CIRCUIT = "circuit_open"


class MailCounter(db.Model):
    """A named total, by tag: sent/failed/retried messages, latency buckets, open circuits."""

    __tablename__ = "mail_counter"

    name: so.Mapped[str] = so.mapped_column(sa.String(64), primary_key=True)
    tag: so.Mapped[str] = so.mapped_column(sa.String(64), primary_key=True)
    value: so.Mapped[float] = so.mapped_column(sa.Float, default=0.0)


class Tally(Counter):
    """Increments gathered while a batch is delivered, written with its settle."""

    def sent(self, tag, seconds):
        self["sent", tag or NO_TAG] += 1
        self["latency_sum", ""] += seconds
        bucket = next((str(le) for le in LATENCY_BUCKETS if seconds <= le), "+Inf")
        self["latency_bucket", bucket] += 1

    def retried(self, tag):
        self["retried", tag or NO_TAG] += 1

    def failed(self, tag):
        self["failed", tag or NO_TAG] += 1


def add(session, tally):
    """Add a tally to the stored totals (one upsert); the caller commits."""
    if not tally:
        return
    rows = [{"name": name, "tag": tag, "value": value} for (name, tag), value in tally.items()]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(MailCounter).values(rows)
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["name", "tag"],
            set_={"value": MailCounter.value + insert.excluded.value},
        )
    )


def process_name():
    return f"{socket.gethostname()}:{os.getpid()}"


def set_circuit(session, is_open):
    """Record this process's circuit: the time it was last seen open, or 0 once closed."""
    session.execute(
        sa.delete(MailCounter).where(MailCounter.name == CIRCUIT, MailCounter.tag == process_name())
    )
    if is_open:
        session.add(MailCounter(name=CIRCUIT, tag=process_name(), value=time.time()))
    session.commit()


def snapshot(session, probe_max_delay):
    """Every figure, as plain values: what `/metrics` and `flask mail status` show."""
    totals = {(row.name, row.tag): row.value for row in session.scalars(sa.select(MailCounter))}
    oldest = session.scalar(
        sa.select(sa.func.min(OutboxMessage.created_at)).where(
            OutboxMessage.state.in_([PENDING, SENDING])
        )
    )
    # A process that died with its circuit open stops refreshing its row.
    fresh = time.time() - 2 * probe_max_delay - 10
    by = {"sent": {}, "failed": {}, "retried": {}}
    for (name, tag), value in totals.items():
        if name in by:
            by[name][tag] = value
    buckets, cumulative = [], 0.0
    for le in (*map(str, LATENCY_BUCKETS), "+Inf"):
        cumulative += totals.get(("latency_bucket", le), 0.0)
        buckets.append((le, cumulative))
    return {
        "depth": counts_by_state(session),
        "oldest_pending_age": (clock.utcnow() - oldest).total_seconds() if oldest else 0.0,
        **by,
        "latency_buckets": buckets,
        "latency_sum": totals.get(("latency_sum", ""), 0.0),
        "open_circuits": sum(
            1 for (name, _), seen in totals.items() if name == CIRCUIT and seen > fresh
        ),
    }


class OutboxCollector:
    """prometheus_client collector over one `snapshot`."""

    def __init__(self, figures):
        self.figures = figures

    def collect(self):
        figures = self.figures
        depth = GaugeMetricFamily(
            "microblog_mail_outbox_messages", "Outbox messages by state", labels=["state"]
        )
        for state, count in figures["depth"].items():
            depth.add_metric([state], count)
        yield depth
        yield GaugeMetricFamily(
            "microblog_mail_oldest_pending_age_seconds",
            "Age of the oldest message not yet sent (0: none)",
            value=figures["oldest_pending_age"],
        )
        for name, help_text in (
            ("sent", "Messages accepted by the SMTP server"),
            ("failed", "Messages given up (permanent error or deadline)"),
            ("retried", "Attempts that failed and were scheduled again"),
        ):
            family = CounterMetricFamily(f"microblog_mail_{name}", help_text, labels=["tag"])
            for tag, value in sorted(figures[name].items()):
                family.add_metric([tag], value)
            yield family
        yield HistogramMetricFamily(
            "microblog_mail_send_seconds",
            "Time the SMTP server took to accept one message",
            buckets=figures["latency_buckets"],
            sum_value=figures["latency_sum"],
        )
        yield GaugeMetricFamily(
            "microblog_mail_circuit_open",
            "Processes holding mail back because the SMTP server is unavailable",
            value=figures["open_circuits"],
        )


def render(figures):
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OutboxCollector(figures))
    return generate_latest(registry)


def metrics_view():
    """Prometheus text format, for whoever holds METRICS_TOKEN; 404 for anyone else."""
    token = current_app.config.get("METRICS_TOKEN")
    sent = request.headers.get("Authorization", "")
    if not token or not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        abort(404)
    figures = snapshot(db.session, current_app.config["MAIL_PROBE_MAX_DELAY"])
    return render(figures), 200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}


def init_app(app):
    """`/metrics` on the app itself: the blueprints are fixed by the design card."""
    app.add_url_rule("/metrics", "metrics", metrics_view)
