"""Does the reset request take the same time whoever owns the address? Measure it.

Interleaves POSTs to /auth/reset_password_request for a registered address,
an unknown one, one whose account is already at its hourly limit, and one
the mail server refuses (its last reset email failed for good), in a
random order each round, and prints the
median and 95th percentile per case and the differences of medians, as a
markdown table for the README.

The app runs with production settings (not debug, not testing, CSRF on,
the default password hash) on a SQLite file in a temporary folder, with
RATELIMIT_ENABLED=false (every request comes from one address) and
MAIL_WORKERS=0, so that nothing is composed or sent while measuring: the
request path alone is timed, through Flask's test client.

    python tests/benchmarks/bench_reset_enumeration.py [--rounds 2000] [--warmup 200]
"""

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from flask import Flask

from microblog import clock, create_app
from microblog.auth.passwords import hash_password
from microblog.extensions import db
from microblog.mail.outbox import FAILED, SENT, OutboxMessage
from microblog.models import User

CASES = {
    "registered": "susan@example.com",
    "unknown": "nobody@example.com",
    "throttled": "tom@example.com",
    "mail fails": "mallory@example.com",
}


def build(folder):
    """A production-like app on a fresh SQLite file, with its three accounts."""
    Flask.auto_find_instance_path = lambda self: str(folder / "instance")
    app = create_app(
        {
            "SECRET_KEY": "benchmark-secret-key-that-is-long-enough-for-hs256",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.db'}",
            "SERVER_NAME": "microblog.example",
            "PREFERRED_URL_SCHEME": "https",
            "RATELIMIT_ENABLED": False,
            "MAIL_WORKERS": 0,
            "MAIL_SERVER": "mail.invalid",  # never reached: MAIL_WORKERS=0
            "ADMINS": [],
        }
    )
    with app.app_context():
        db.create_all()
        for name in ("susan", "tom", "mallory"):
            db.session.add(
                User(username=name, email=f"{name}@example.com", password_hash=hash_password(name))
            )
        db.session.commit()
        tom = db.session.query(User).filter_by(username="tom").one()
        for _ in range(app.config["RESET_EMAILS_PER_HOUR"]):
            db.session.add(earlier_reset(tom, SENT))
        mallory = db.session.query(User).filter_by(username="mallory").one()
        db.session.add(earlier_reset(mallory, FAILED))
        db.session.commit()
    return app


def earlier_reset(user, state):
    """A reset email composed for this user a moment ago, then sent or failed."""
    now = clock.utcnow()
    return OutboxMessage(
        kind="email",
        tag="password_reset",
        user_id=user.id,
        message_id=f"<{random.random()}@microblog.example>",
        sender="no-reply@microblog.example",
        recipients=json.dumps([user.email]),
        state=state,
        created_at=now,
        next_attempt_at=now,
        deadline_at=now,
        sent_at=now,
    )


def visitor(app):
    """A browser that has loaded the form: its session cookie and CSRF token."""
    client = app.test_client()
    page = client.get("/auth/reset_password_request", base_url="https://microblog.example")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    return client, client.get_cookie("session", domain="microblog.example").value, token


def timed_request(app, email, client, cookie, token):
    """One POST, from the same fresh session every time (so flashes do not pile up)."""
    client.set_cookie("session", cookie, domain="microblog.example")
    started = time.perf_counter_ns()
    response = client.post(
        "/auth/reset_password_request",
        base_url="https://microblog.example",
        data={"email": email, "csrf_token": token},
        headers={"Referer": "https://microblog.example/auth/reset_password_request"},
    )
    elapsed = time.perf_counter_ns() - started
    if response.headers.get("Location") != "/auth/login":
        raise SystemExit(f"unexpected answer for {email}: {response.status}")
    return elapsed / 1000


def measure(app, rounds, warmup):
    client, cookie, token = visitor(app)
    samples = {case: [] for case in CASES}
    for round_number in range(warmup + rounds):
        order = list(CASES)
        random.shuffle(order)
        for case in order:
            elapsed = timed_request(app, CASES[case], client, cookie, token)
            if round_number >= warmup:
                samples[case].append(elapsed)
    return samples


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(samples, rounds):
    medians = {case: statistics.median(values) for case, values in samples.items()}
    baseline = medians["registered"]
    lines = [
        f"{rounds} interleaved rounds, times in µs (Python {sys.version.split()[0]}, SQLite)",
        "",
        "| case | median | p95 | median - registered |",
        "| --- | ---: | ---: | ---: |",
    ]
    for case, values in samples.items():
        lines.append(
            f"| {case} | {medians[case]:.0f} | {percentile(values, 0.95):.0f} "
            f"| {medians[case] - baseline:+.0f} |"
        )
    spread = max(medians.values()) - min(medians.values())
    lines += ["", f"Largest difference of medians: {spread:.0f} µs."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app = build(Path(folder))
        samples = measure(app, args.rounds, args.warmup)
        with app.app_context():
            db.engine.dispose()
    print(report(samples, args.rounds))


if __name__ == "__main__":
    main()
