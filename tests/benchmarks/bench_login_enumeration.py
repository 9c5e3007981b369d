"""Does a failed sign-in take the same time whether the account exists, paused or not?

Interleaves sign-in POSTs with a wrong password for an existing account
(by username and by email), an unknown username and an unknown address,
each both before its pause (its counter is cleared, untimed, before every
try, so the try is always an ordinary failure) and during a pause, in a
random order each round. Prints the median and 95th percentile per case and
the differences of medians, as a markdown table for the README.

Production settings (not debug or testing, CSRF on, the default password
hash) on a SQLite file, with RATELIMIT_ENABLED=false (one client address)
and MAIL_WORKERS=0; the request path is timed through Flask's test client.

    python tests/benchmarks/bench_login_enumeration.py [--rounds 25] [--warmup 2]
"""

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from microblog import clock, create_app
from microblog.auth.passwords import hash_password
from microblog.auth.signin import find_account
from microblog.auth.throttle import LoginThrottle, throttle_key
from microblog.extensions import db
from microblog.models import User

HOST = "microblog.example"
CASES = {  # case: (identifier, paused)
    "account, by name": ("susan", False),
    "account, by email": ("susan@example.com", False),
    "unknown name": ("nobody", False),
    "unknown email": ("nobody@example.com", False),
    "paused account": ("paula", True),
    "paused unknown name": ("nobody-paused", True),
}


def build(folder):
    """A production-like app on a fresh SQLite file, with two accounts, one paused."""
    Flask.auto_find_instance_path = lambda self: str(folder / "instance")
    app = create_app(
        {
            "SECRET_KEY": "benchmark-secret-key-that-is-long-enough-for-hs256",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.db'}",
            "SERVER_NAME": HOST,
            "PREFERRED_URL_SCHEME": "https",
            "RATELIMIT_ENABLED": False,
            "MAIL_WORKERS": 0,
            "MAIL_SERVER": "mail.invalid",  # never reached: MAIL_WORKERS=0
            "ADMINS": [],
        }
    )
    with app.app_context(), app.test_request_context():
        db.create_all()
        for name in ("susan", "paula"):
            db.session.add(
                User(username=name, email=f"{name}@example.com", password_hash=hash_password(name))
            )
        db.session.commit()
        for identifier, paused in CASES.values():
            if paused:
                user, folded = find_account(identifier)
                db.session.add(
                    LoginThrottle(
                        key=throttle_key(user, folded),
                        user_id=user.id if user else None,
                        paused_until=clock.utcnow() + timedelta(days=365),
                        paused_at=clock.utcnow(),
                        pauses=1,
                    )
                )
        db.session.commit()
    return app


def clear_counter(app, identifier):
    with app.app_context():
        user, folded = find_account(identifier)
        db.session.execute(
            sa.delete(LoginThrottle).where(LoginThrottle.key == throttle_key(user, folded))
        )
        db.session.commit()


def visitor(app):
    """A browser that has loaded the form: its session cookie and CSRF token."""
    client = app.test_client()
    page = client.get("/auth/login", base_url=f"https://{HOST}")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    return client, client.get_cookie("session", domain=HOST).value, token


def timed_sign_in(app, identifier, expected, client, cookie, token):
    client.set_cookie("session", cookie, domain=HOST)
    started = time.perf_counter_ns()
    response = client.post(
        "/auth/login",
        base_url=f"https://{HOST}",
        data={"username": identifier, "password": "a wrong password!!", "csrf_token": token},
        headers={"Referer": f"https://{HOST}/auth/login"},
    )
    elapsed = time.perf_counter_ns() - started
    if response.status_code != expected:
        raise SystemExit(f"unexpected answer for {identifier}: {response.status_code}")
    return elapsed / 1000


def measure(app, rounds, warmup):
    client, cookie, token = visitor(app)
    samples = {case: [] for case in CASES}
    for round_number in range(warmup + rounds):
        order = list(CASES)
        random.shuffle(order)
        for case in order:
            identifier, paused = CASES[case]
            if not paused:
                clear_counter(app, identifier)
            elapsed = timed_sign_in(app, identifier, 429 if paused else 200, client, cookie, token)
            if round_number >= warmup:
                samples[case].append(elapsed)
    return samples


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(samples, rounds):
    medians = {case: statistics.median(values) for case, values in samples.items()}
    pairs = [
        ("unknown name", "account, by name"),
        ("unknown email", "account, by email"),
        ("paused unknown name", "paused account"),
    ]
    lines = [
        f"{rounds} interleaved rounds, times in ms (Python {sys.version.split()[0]}, SQLite, "
        "default password hash)",
        "",
        "| case | median | p95 |",
        "| --- | ---: | ---: |",
    ]
    for case, values in samples.items():
        lines.append(
            f"| {case} | {medians[case] / 1000:.1f} | {percentile(values, 0.95) / 1000:.1f} |"
        )
    lines += ["", "| unknown - existing | difference of medians |", "| --- | ---: |"]
    for unknown, known in pairs:
        lines.append(
            f"| {unknown} - {known} | {(medians[unknown] - medians[known]) / 1000:+.2f} ms |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app = build(Path(folder))
        samples = measure(app, args.rounds, args.warmup)
        with app.app_context():
            db.engine.dispose()
    print(report(samples, args.rounds))


if __name__ == "__main__":
    main()
