"""Can an attacker tell from the reset request's timing whether an address has an account?

    .venv/bin/python tests/benchmarks/bench_reset_enumeration.py [--rounds 2000]
        [--database-url postgresql://postgres@127.0.0.1:5432/test]

Measures what an attacker measures: POST /auth/reset_password_request through
HTTP, against `gunicorn -w 2 --threads 4 wsgi:app` run as a plain
deployment runs it (`flask db upgrade`, then SERVER_NAME, a random
SECRET_KEY, DATABASE_URL, MAIL_SERVER/MAIL_PORT of a real aiosmtpd server in
a process of its own, RATELIMIT_ENABLED=false, and nothing else: the default
MAIL_WORKERS run and send). Each POST comes from a fresh visitor (GET the
form for a session and a CSRF token, untimed; then the timed POST on the same
keep-alive connection). Each round loads the form for one visitor per case,
then sends their POSTs back to back, in a random order:

- registered: an account that has not asked yet, so its email is composed
  and sent (a new account each round);
- throttled: one registered address, every round, as an attacker would
  reuse it: past ACCOUNT_EMAILS_PER_HOUR (3) its requests are dropped;
- unknown: an address with no account (a new one each round).

With --database-url the schema goes into a fresh PostgreSQL database created
for the run (and dropped after it); by default, a SQLite file in a
temporary folder. Prints Markdown: per case, the median and p95, the
difference of medians from the unknown address and P(known slower), the
probability that a random POST of that case is slower than a random unknown
one (0.5: indistinguishable); then the same POSTs grouped by the case of the
POST just before them, which shows whether the work the mail workers do for
one case leaks into the requests that follow (an attacker who always sends
a known address right before an unknown one would see it as a difference
between the cases).
"""

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from common import (
    Gunicorn,
    LoadedForm,
    database,
    deployment_env,
    free_port,
    machine_table,
    markdown_table,
    migrate,
    p_slower,
    percentile,
    seeding_app,
    smtp_server,
)

FORM = "/auth/reset_password_request"
CASES = ("registered", "throttled", "unknown")
GOAL_MS, GOAL_P = 0.3, (0.45, 0.55)


def address(case, number):
    """Addresses of one length and shape whatever the case."""
    prefix = {"registered": "user", "throttled": "tomt", "unknown": "nope"}[case]
    return f"{prefix}{0 if case == 'throttled' else number:05d}@example.com"


def seed(database_url, accounts):
    """The registered accounts, written directly (their password hash is never used)."""
    from microblog.extensions import db
    from microblog.models import User

    app = seeding_app(database_url)
    with app.app_context():
        db.session.add(User(username="tomt", email=address("throttled", 0), password_hash="x"))
        db.session.add_all(
            User(username=f"user{n}", email=address("registered", n), password_hash="x")
            for n in range(accounts)
        )
        db.session.commit()
        db.engine.dispose()


def measure(port, rounds, warmup, chooser):
    """Interleaved rounds; returns {case: [seconds]} and [(previous case, case, seconds)].

    Each round loads the form for one fresh visitor per case, then sends
    their POSTs back to back in a random order: each POST follows the one
    before it as closely as an attacker can make it.
    """
    samples = {case: [] for case in CASES}
    sequence = []
    previous = None
    for number in range(warmup + rounds):
        order = list(CASES)
        chooser.shuffle(order)
        visitors = [LoadedForm(port, FORM) for _ in order]
        for case, visitor in zip(order, visitors, strict=True):
            email = address(case, number)
            elapsed, response = visitor.timed_post({"email": email})
            if response.status != 302 or not response.headers["Location"].endswith("/auth/login"):
                raise SystemExit(f"unexpected answer for {email}: {response.status}")
            if number >= warmup:
                samples[case].append(elapsed)
                sequence.append((previous, case, elapsed))
            previous = case
    return samples, sequence


def case_table(samples):
    """Per case: median, p95, difference of medians from unknown, P(known slower)."""
    unknown = samples["unknown"]
    base = statistics.median(unknown)
    rows = []
    verdicts = []
    for case, values in samples.items():
        median = statistics.median(values)
        if case == "unknown":
            difference, p = "", ""
        else:
            gap = (median - base) * 1000
            probability = p_slower(values, unknown)
            verdicts.append(abs(gap) < GOAL_MS and GOAL_P[0] <= probability <= GOAL_P[1])
            difference, p = f"{gap:+.2f} ms", f"{probability:.3f}"
        rows.append(
            (
                case,
                f"{median * 1000:.2f} ms",
                f"{percentile(values, 0.95) * 1000:.2f} ms",
                difference,
                p,
            )
        )
    header = ("case", "median", "p95", "median - unknown", "P(slower than unknown)")
    return markdown_table(header, rows), all(verdicts)


def carryover_table(sequence):
    """Every POST grouped by the case of the POST just before it, against "after unknown".

    The previous POST is the one the workers are still busy with: a difference
    here is their work for one case showing in the requests that follow.
    """
    by_previous = {case: [] for case in CASES}
    for previous, _case, elapsed in sequence:
        if previous is not None:
            by_previous[previous].append(elapsed)
    after_unknown = by_previous["unknown"]
    base = statistics.median(after_unknown)
    rows = []
    verdicts = []
    for previous, values in by_previous.items():
        median = statistics.median(values)
        if previous == "unknown":
            difference, p = "", ""
        else:
            gap = (median - base) * 1000
            probability = p_slower(values, after_unknown)
            verdicts.append(abs(gap) < GOAL_MS and GOAL_P[0] <= probability <= GOAL_P[1])
            difference, p = f"{gap:+.2f} ms", f"{probability:.3f}"
        rows.append((f"after {previous}", len(values), f"{median * 1000:.2f} ms", difference, p))
    header = ("POSTs", "count", "median", "median - after unknown", "P(slower than after unknown)")
    return markdown_table(header, rows), all(verdicts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--database-url", help="a PostgreSQL URL; default: a SQLite file")
    parser.add_argument("--seed", type=int, help="of the order of the cases in each round")
    args = parser.parse_args()
    chooser = random.Random(args.seed)

    with tempfile.TemporaryDirectory() as tmp, smtp_server() as (smtp_port, received):
        folder = Path(tmp)
        with database(args.database_url, folder, "bench_reset") as url:
            port = free_port()
            env = deployment_env(url, port, smtp_port)
            migrate(env)
            seed(url, args.warmup + args.rounds)
            server = Gunicorn(env, port, folder / "app.log", access_log=False)
            with server:
                started = time.monotonic()
                samples, sequence = measure(port, args.rounds, args.warmup, chooser)
                elapsed = time.monotonic() - started
                time.sleep(3)  # the last emails leave
    kind = "PostgreSQL" if args.database_url else "SQLite"
    table, met = case_table(samples)
    print(machine_table())
    print()
    print(
        f"`gunicorn -w 2 --threads 4 wsgi:app`, {kind}, default MAIL_WORKERS (2), aiosmtpd; "
        f"{args.rounds} rounds (after {args.warmup} of warm-up) of one POST per case in random "
        f"order, {elapsed:.0f} s; {received['messages']} emails received.\n"
    )
    print(table)
    print()
    goal = f"|difference| < {GOAL_MS} ms and P within [{GOAL_P[0]}, {GOAL_P[1]}]"
    print(f"Goal ({goal}) for every case: {'met' if met else 'NOT met'}.")
    print()
    table, met = carryover_table(sequence)
    print(table)
    print()
    print(f"Same goal for the POSTs that follow each case: {'met' if met else 'NOT met'}.")


if __name__ == "__main__":
    main()
