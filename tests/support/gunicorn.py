"""The production server as a process: `gunicorn -w 2 wsgi:app` in the repository.

The tests and the benchmark scripts start it the same way; the access log
(with the worker's pid on each line) tells which worker served what.
"""

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlencode, urlsplit

from support.auth import PASSWORD, email_link
from support.visitor import Visitor

REPO = Path(__file__).resolve().parents[2]
ACCESS_LINE = re.compile(r"^<(\d+)> (\w+) (\S+) HTTP/[\d.]+ (\d{3})$", re.M)

# What the process inherits from the machine; every setting of the app comes from `server_env`.
MACHINE = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")


def database_url_for_env(database_url):
    """The test's database as one URL: a SQLite file, or PostgreSQL with the test's schema."""
    url, engine_options = database_url
    options = engine_options.get("connect_args", {}).get("options")
    return f"{url}?{urlencode({'options': options})}" if options else url


def server_env(database_url, smtp, port, host="127.0.0.1", **extra):
    """What the contract's outside suite exports, and nothing else: plain HTTP, real defaults.

    `extra` is for settings an operator would set (ADMINS), never for
    working around the product.
    """
    env = {key: value for key, value in os.environ.items() if key in MACHINE}
    env.update(
        SERVER_NAME=f"{host}:{port}",
        SECRET_KEY=secrets.token_hex(32),
        DATABASE_URL=database_url_for_env(database_url),
        MAIL_SERVER=smtp.host,
        MAIL_PORT=str(smtp.port),
        RATELIMIT_ENABLED="false",
        **extra,
    )
    return env


class Gunicorn:
    """`gunicorn -w 2 --threads N <app>` on loopback, its output (access log with pids) in a file.

    Also a context manager: started on entry, stopped with SIGTERM on exit.
    """

    def __init__(self, env, port, log_path, app="wsgi:app", cwd=REPO, threads=4, access_log=True):
        self.env, self.port, self.log_path = env, port, Path(log_path)
        self.app, self.cwd, self.threads, self.access_log = app, cwd, threads, access_log
        self.base_url = f"http://127.0.0.1:{port}"
        self.process = None

    def migrate(self):
        """The contract's schema command, against the server's database."""
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "microblog", "db", "upgrade"],
            cwd=REPO,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=30,
        )

    def start(self):
        from gunicorn.config import Config

        command = [sys.executable, "-m", "gunicorn", "-w", "2", "--threads", str(self.threads)]
        command += ["-b", f"127.0.0.1:{self.port}"]
        if self.access_log:  # a benchmark measures the server without it
            command += ["--access-logfile", "-", "--access-logformat", "%(p)s %(r)s %(s)s"]
        if "control_socket_disable" in Config().settings:
            command.append("--no-control-socket")  # gunicorn 25+: one shared path in $HOME
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*command, self.app],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its workers die with it (see kill)
            )
        self.wait_until_both_workers_booted()
        return self

    def wait_until_both_workers_booted(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"gunicorn died:\n{self.log()}"
            if self.log().count("Booting worker") >= 2 and self.answers():
                return
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"gunicorn did not start:\n{self.log()}")

    def answers(self):
        """Any HTTP answer counts: a benchmark's bare app has no /healthz."""
        try:
            Visitor(self.base_url).get("/healthz")
            return True
        except (URLError, ConnectionError):
            return False

    def log(self):
        return self.log_path.read_text(errors="replace")

    def pids_that_served(self, method, path):
        return {
            int(pid)
            for pid, verb, target, _status in ACCESS_LINE.findall(self.log())
            if verb == method and urlsplit(target).path == path
        }

    def stop(self, timeout=10):
        """SIGTERM, as a process manager sends it; the exit status, or None if it hung."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        """SIGKILL the arbiter and its workers: none may send mail into the next test."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop(timeout=30)
        self.kill()


def register(visitor, username, smtp):
    """Sign up as a person does: the form, then the emailed link's form and the password.

    The link is opened in a browser of its own (the mail app's), which it
    signs in: `visitor` stays signed out, as before the verification.
    """
    answer = visitor.submit(
        "/auth/register",
        username=username,
        email=f"{username}@example.com",
        password=PASSWORD,
        password2=PASSWORD,
    )
    assert answer.location == "/auth/login", answer.text
    message = smtp.wait_for(len(smtp.messages) + 1)[-1]
    assert message["Subject"] == "[Microblog] Verify your email address"
    verified = verify_email(Visitor(visitor.base_url), email_link(message, "verify_email"))
    assert verified.location == "/index", verified.text


def verify_email(visitor, link, password=PASSWORD):
    """Open the verification link and post its form with the account's password."""
    return visitor.submit(urlsplit(link).path, password=password)


def sign_in(visitor, username, password):
    return visitor.submit("/auth/login", username=username, password=password)
