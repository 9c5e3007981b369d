"""Do people who sign up or sign in at the same moment all get in, at the first try?

Runs the contract's deployment (`gunicorn -w 2 --threads 4 -b 127.0.0.1:PORT
wsgi:app`, SQLite, an aiosmtpd server this script runs, per-IP limits off)
and sends bursts of 8 and 32 simultaneous sign-ups from distinct clients
(source addresses 127.0.1.x, a cookie jar each), then opens every
verification link from the emails at once (posting the password where the
link shows a form asking for it), then 8 or 32 simultaneous sign-ins from
fresh browsers. For each step: answers that succeeded, 503s, other answers,
and the latency (p50, p95) of the timed POST or GET. Twice: on the machine
as it is, and with one core kept busy by another process
(`python -c "while 1: pass"`).

    .venv/bin/python tests/benchmarks/bench_burst.py [--sizes 8 32]
"""

import argparse
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from common import CSRF_INPUT, Gunicorn, free_port, machine_table, markdown_table, migrate, ms
from common import percentile as nearest_rank
from support.auth import email_link
from support.smtp import SmtpServer

PASSWORD = "correct horse battery staple"
PASSWORD_FIELD = re.compile(r'<input[^>]*name="password"')


class Client:
    """One person's browser from a source address of its own: a cookie jar, fresh connections."""

    def __init__(self, port, source):
        self.port, self.source = port, source
        self.cookies = {}

    def request(self, method, path, fields=None):
        """(status, Location, body, seconds until the whole answer)."""
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if fields is not None:
            body = urlencode(fields)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = HTTPConnection(
            "127.0.0.1", self.port, timeout=60, source_address=(self.source, 0)
        )
        try:
            started = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
            elapsed = time.perf_counter() - started
        finally:
            connection.close()
        for cookie in response.headers.get_all("Set-Cookie") or []:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name] = value
        return response.status, response.headers.get("Location"), text, elapsed

    def token(self, path):
        return CSRF_INPUT.search(self.request("GET", path)[2]).group(1)


def sources(count):
    return [f"127.0.1.{n}" for n in range(1, count + 1)]


def at_once(steps):
    """Run every step in a thread of its own, released at the same moment: their results."""
    start = threading.Barrier(len(steps))
    results = [None] * len(steps)

    def run(index, step):
        start.wait(30)
        try:
            results[index] = step()
        except OSError as error:
            results[index] = (0, None, str(error), float("nan"))

    threads = [threading.Thread(target=run, args=item) for item in enumerate(steps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def tally(results, expected_location):
    """(succeeded, 503, other, p50, p95) of one step's answers."""
    ok = sum(location == expected_location for _status, location, _text, _s in results)
    busy = sum(status == 503 for status, *_ in results)
    seconds = [s for *_, s in results if s == s]  # not NaN: answered
    p50, p95 = nearest_rank(seconds, 0.5), nearest_rank(seconds, 0.95)
    return ok, busy, len(results) - ok - busy, p50, p95


def verification(client, link):
    """Open the link; where it shows a form asking for the password, post it (a timed POST)."""
    path = urlsplit(link).path
    answer = client.request("GET", path)
    status, _location, text, _seconds = answer
    if status == 200 and PASSWORD_FIELD.search(text):
        token = CSRF_INPUT.search(text).group(1)
        return client.request("POST", path, {"csrf_token": token, "password": PASSWORD})
    return answer


def wait_for_emails(smtp, count, timeout=120):
    deadline = time.monotonic() + timeout
    while len(smtp.messages) < count:
        assert time.monotonic() < deadline, f"{len(smtp.messages)} of {count} emails arrived"
        time.sleep(0.1)


def burst(port, smtp, size, prefix):
    """Sign-ups, their verifications, sign-ins: `size` at once each; a table row per step."""
    names = [f"{prefix}{n}" for n in range(size)]
    clients = [Client(port, source) for source in sources(size)]
    tokens = [client.token("/auth/register") for client in clients]
    before = len(smtp.messages)
    signed_up = at_once(
        [
            lambda c=client, name=name, token=token: c.request(
                "POST",
                "/auth/register",
                {
                    "csrf_token": token,
                    "username": name,
                    "email": f"{name}@example.com",
                    "password": PASSWORD,
                    "password2": PASSWORD,
                },
            )
            for client, name, token in zip(clients, names, tokens, strict=True)
        ]
    )
    rows = [("sign-up", *tally(signed_up, "/auth/login"))]

    wanted = sum(location == "/auth/login" for _s, location, *_ in signed_up)
    wait_for_emails(smtp, before + wanted)
    links = {}
    for message in smtp.messages[before:]:
        [to] = message.envelope_recipients
        links[to.split("@")[0]] = email_link(message, "verify_email")
    verified = at_once(
        [
            lambda c=client, link=links[name]: verification(c, link)
            for client, name in zip(clients, names, strict=True)
            if name in links
        ]
    )
    rows.append(("verification", *tally(verified, "/index")))  # verifying signs in

    browsers = [Client(port, source) for source in sources(size)]
    tokens = [browser.token("/auth/login") for browser in browsers]
    signed_in = at_once(
        [
            lambda b=browser, name=name, token=token: b.request(
                "POST",
                "/auth/login",
                {"csrf_token": token, "username": name, "password": PASSWORD},
            )
            for browser, name, token in zip(browsers, names, tokens, strict=True)
        ]
    )
    rows.append(("sign-in", *tally(signed_in, "/index")))
    return rows


@contextmanager
def one_core_busy():
    neighbour = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    try:
        yield
    finally:
        neighbour.kill()
        neighbour.wait()


@contextmanager
def as_it_is():
    yield


MACHINES = {"idle": as_it_is, "one core busy": one_core_busy}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-burst-"))
    smtp = SmtpServer().start()
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "SERVER_NAME": f"127.0.0.1:{port}",
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
        "MAIL_SERVER": smtp.host,
        "MAIL_PORT": str(smtp.port),
        "RATELIMIT_ENABLED": "false",
        # An operator's hashing settings, to compare them (PASSWORD_HASH_NICE=5 ...).
        **{k: v for k, v in os.environ.items() if k.startswith("PASSWORD_HASH_")},
    }
    migrate(env)
    server = Gunicorn(env, port, folder / "gunicorn.log", access_log=False).start()
    rows = []
    try:
        Client(port, "127.0.0.1").request("GET", "/auth/login")  # warm up
        for machine, condition in MACHINES.items():
            for size in args.sizes:
                with condition():
                    prefix = f"{machine.split()[0][:4]}{size}x"
                    for step, ok, busy, other, p50, p95 in burst(port, smtp, size, prefix):
                        rows.append(
                            (machine, size, step, f"{ok}/{size}", busy, other, ms(p50), ms(p95))
                        )
    finally:
        server.stop(timeout=30)
        server.kill()
        smtp.stop()

    print("## Sign-up and sign-in bursts (gunicorn -w 2 --threads 4, Argon2id m=19 MiB t=2 p=1)\n")
    print(machine_table(), "\n")
    header = ("machine", "at once", "step", "succeeded", "503", "other", "p50", "p95")
    print(markdown_table(header, rows))
    eights = [row for row in rows if row[1] == 8]
    verdict = "met" if all(row[3] == "8/8" and row[4] == 0 for row in eights) else "NOT met"
    print(f"\nGoal (8 at once: every step succeeds, no 503, idle and busy): {verdict}.")


if __name__ == "__main__":
    main()
