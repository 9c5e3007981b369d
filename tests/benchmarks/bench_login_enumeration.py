"""Can an attacker tell from a failed sign-in's timing whether the account exists?

    .venv/bin/python tests/benchmarks/bench_login_enumeration.py [--rounds 1000]
        [--database-url postgresql://postgres@127.0.0.1:5432/test]

Measures what an attacker measures: POST /auth/login with a wrong password,
through HTTP, against `gunicorn -w 2 --threads 4 wsgi:app` run as a
plain deployment runs it (`flask db upgrade`, then SERVER_NAME, a
random SECRET_KEY, DATABASE_URL, MAIL_SERVER/MAIL_PORT of a real aiosmtpd
server in a process of its own, RATELIMIT_ENABLED=false, and nothing else:
the default Argon2id parameters and MAIL_WORKERS). Each POST comes from a
fresh visitor (GET the form, untimed; then the timed POST on the same
keep-alive connection). Each round loads the form for one visitor per case,
then sends their POSTs back to back, in a random order:

- account, by name / by email: a verified account (a new one each round, so
  its two failures a round never reach LOGIN_FAILURES_PER_ACCOUNT);
- unknown name / unknown email: no such account (new each round);
- paused account / paused unknown name: one of each, paused for the whole
  run, as an attacker who keeps guessing would meet them (answered 429).

Every account's hash is one real Argon2id hash with the default parameters,
computed once: the server checks the wrong password against it in full.
Prints Markdown: per case, the median and p95, and the difference of medians
and P(slower) against the unknown case of the same kind (name against name,
email against email, paused against paused).
"""

import argparse
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from common import (
    SECRET_KEY,
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

FORM = "/auth/login"
WRONG_PASSWORD = "not the password of anyone here"
# case: (identifier for round n, its unknown counterpart, expected status)
CASES = {
    "account, by name": (lambda n: f"user{n:05d}", "unknown name", 200),
    "account, by email": (lambda n: f"user{n:05d}@example.com", "unknown email", 200),
    "unknown name": (lambda n: f"nope{n:05d}", None, 200),
    "unknown email": (lambda n: f"nope{n:05d}@example.com", None, 200),
    "paused account": (lambda n: "paula", "paused unknown name", 429),
    "paused unknown name": (lambda n: "nopaa", None, 429),
}
GOAL_MS, GOAL_P = 0.3, (0.45, 0.55)


def production_hash():
    """One Argon2id hash with the parameters the server uses (none of the seeding shortcuts)."""
    from microblog import create_app
    from microblog.auth.passwords import hash_password

    app = create_app(
        {
            "READ_INSTANCE_CONFIG": False,
            "TESTING": True,
            "SECRET_KEY": SECRET_KEY,
            "MAIL_WORKERS": 0,
        }
    )
    with app.app_context():
        return hash_password("the accounts' real password, never typed")


def seed(database_url, accounts):
    """Verified accounts sharing one real hash, and the two pauses."""
    from microblog import clock
    from microblog.auth.models import LoginThrottle
    from microblog.auth.signin import find_account
    from microblog.auth.throttle import throttle_key
    from microblog.extensions import db
    from microblog.models import User

    password_hash = production_hash()
    app = seeding_app(database_url)
    with app.app_context():
        now = clock.utcnow()
        names = ["paula", *(f"user{n:05d}" for n in range(accounts))]
        db.session.add_all(
            User(
                username=name,
                email=f"{name}@example.com",
                password_hash=password_hash,
                email_verified_at=now,
            )
            for name in names
        )
        db.session.commit()
        for case in ("paused account", "paused unknown name"):
            user, folded = find_account(CASES[case][0](0))
            db.session.add(
                LoginThrottle(
                    key=throttle_key(user, folded),
                    user_id=user.id if user else None,
                    paused_until=now + timedelta(days=365),
                    paused_at=now,
                    pauses=1,
                )
            )
        db.session.commit()
        db.engine.dispose()


def measure(port, rounds, warmup, chooser):
    """Interleaved rounds: {case: [seconds]}."""
    samples = {case: [] for case in CASES}
    for number in range(warmup + rounds):
        order = list(CASES)
        chooser.shuffle(order)
        visitors = [LoadedForm(port, FORM) for _ in order]
        for case, visitor in zip(order, visitors, strict=True):
            identifier, _, expected = CASES[case]
            fields = {"username": identifier(number), "password": WRONG_PASSWORD}
            elapsed, response = visitor.timed_post(fields)
            if response.status != expected:
                raise SystemExit(f"unexpected answer for {case}: {response.status}")
            if number >= warmup:
                samples[case].append(elapsed)
    return samples


def case_table(samples):
    rows, verdicts = [], []
    for case, values in samples.items():
        counterpart = CASES[case][1]
        difference = p = ""
        if counterpart:
            baseline = samples[counterpart]
            gap = (statistics.median(values) - statistics.median(baseline)) * 1000
            probability = p_slower(values, baseline)
            verdicts.append(abs(gap) < GOAL_MS and GOAL_P[0] <= probability <= GOAL_P[1])
            difference, p = f"{gap:+.2f} ms vs {counterpart}", f"{probability:.3f}"
        rows.append(
            (
                case,
                f"{statistics.median(values) * 1000:.2f} ms",
                f"{percentile(values, 0.95) * 1000:.2f} ms",
                difference,
                p,
            )
        )
    header = ("case", "median", "p95", "median - unknown", "P(slower than unknown)")
    return markdown_table(header, rows), all(verdicts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--database-url", help="a PostgreSQL URL; default: a SQLite file")
    parser.add_argument("--seed", type=int, help="of the order of the cases in each round")
    args = parser.parse_args()
    chooser = random.Random(args.seed)

    with tempfile.TemporaryDirectory() as tmp, smtp_server() as (smtp_port, received):
        folder = Path(tmp)
        with database(args.database_url, folder, "bench_login") as url:
            port = free_port()
            env = deployment_env(url, port, smtp_port)
            migrate(env)
            seed(url, args.warmup + args.rounds)
            server = Gunicorn(env, port, folder / "app.log", access_log=False)
            with server:
                started = time.monotonic()
                samples = measure(port, args.rounds, args.warmup, chooser)
                elapsed = time.monotonic() - started
    kind = "PostgreSQL" if args.database_url else "SQLite"
    table, met = case_table(samples)
    print(machine_table())
    print()
    print(
        f"`gunicorn -w 2 --threads 4 wsgi:app`, {kind}, default Argon2id and MAIL_WORKERS, "
        f"aiosmtpd; {args.rounds} rounds (after {args.warmup} of warm-up) of one POST per case "
        f"in random order, {elapsed:.0f} s; {received['messages']} emails received.\n"
    )
    print(table)
    print()
    goal = f"|difference| < {GOAL_MS} ms and P within [{GOAL_P[0]}, {GOAL_P[1]}]"
    print(f"Goal ({goal}) for every pair: {'met' if met else 'NOT met'}.")


if __name__ == "__main__":
    main()
