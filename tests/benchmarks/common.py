"""What the benchmark scripts share: the machine, gunicorn, a load generator, tables.

The load comes from another process (wrk when installed, else Python client
processes), so that the client does not share the interpreter it measures.
"""

import bisect
import json
import multiprocessing
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # support

from support.gunicorn import Gunicorn as Gunicorn  # noqa: E402  (for the scripts)
from support.ports import free_port  # noqa: E402

SECRET_KEY = "benchmark-secret-key-of-at-least-32-bytes-long"
CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_table():
    rows = [
        ("CPUs (nproc)", str(len(os.sched_getaffinity(0)))),
        ("CPU model", cpu_model()),
        ("Python", platform.python_version()),
        ("OS", platform.platform(terse=True)),
    ]
    return markdown_table(("machine", ""), rows)


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def percentile(values, fraction):
    """The nearest-rank percentile of a list of numbers."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def app_env(database_url, port, **extra):
    """The production configuration the benchmarks serve: only what a load test must change."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "MAIL_"))}
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY=SECRET_KEY,
        SERVER_NAME=f"127.0.0.1:{port}",
        RATELIMIT_ENABLED="false",  # one client address sends everything
        LOG_TO_STDOUT="1",
        **{key: str(value) for key, value in extra.items()},
    )
    return env


def migrate(env):
    """Create the schema as a deployment does: `flask db upgrade`."""
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "microblog", "db", "upgrade"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )


def seeding_app(database_url):
    """An in-process app on the benchmark's database, to write its fixtures."""
    from microblog import create_app

    return create_app(
        {
            "READ_INSTANCE_CONFIG": False,
            "TESTING": True,
            "SECRET_KEY": SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": database_url,
            # Fast Argon2id for fixtures (upgraded at a seeded user's first sign-in).
            "PASSWORD_ARGON2_MEMORY_KIB": 256,
            "PASSWORD_ARGON2_TIME_COST": 1,
            "MAIL_WORKERS": 0,
        }
    )


def get(host, port, path, headers=None):
    """One request on a fresh connection: (status, headers, body)."""
    connection = HTTPConnection(host, port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


class Session:
    """One visitor: cookies carried over, CSRF token read from the form."""

    def __init__(self, port):
        self.port = port
        self.cookies = {}

    def request(self, method, path, fields=None):
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if fields is not None:
            body = urlencode(fields)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        for cookie in response.headers.get_all("Set-Cookie") or []:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name] = value
        return response.status, text

    def csrf_token(self, path):
        _status, text = self.request("GET", path)
        return CSRF_INPUT.search(text).group(1)


def _python_client(port, path, seconds, queue):
    latencies, errors = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            status, _, _ = get("127.0.0.1", port, path)
        except OSError:
            status = 0
        latencies.append(time.perf_counter() - started)
        errors += status != 200
    queue.put((latencies, errors))


def python_load(port, path, seconds, connections):
    """`connections` client processes requesting `path` for `seconds`."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    clients = [
        context.Process(target=_python_client, args=(port, path, seconds, queue))
        for _ in range(connections)
    ]
    started = time.monotonic()
    for client in clients:
        client.start()
    results = [queue.get() for _ in clients]
    elapsed = time.monotonic() - started
    for client in clients:
        client.join()
    latencies = [value for values, _ in results for value in values]
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "errors": sum(errors for _, errors in results),
    }


WRK_REPORT = """
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.connect + errors.read + errors.write + errors.timeout + errors.status))
end
"""


def wrk_load(port, path, seconds, connections):
    """wrk's numbers for `path`: one thread, `connections` connections."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_REPORT)
    try:
        output = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    report = json.loads(output.strip().splitlines()[-1])
    return {
        "requests": report["requests"],
        "rps": report["requests"] / (report["duration_us"] / 1e6),
        "p50": report["p50_us"] / 1e6,
        "p99": report["p99_us"] / 1e6,
        "errors": report["errors"],
    }


def load_generator():
    """wrk if installed (apt-get install wrk), else Python client processes."""
    return "wrk" if shutil.which("wrk") else "python client processes"


def load(port, path, seconds, connections):
    """Requests per second and latency of `path` under `connections` concurrent clients."""
    if shutil.which("wrk"):
        return wrk_load(port, path, seconds, connections)
    return python_load(port, path, seconds, connections)


def summary(values):
    return {
        "n": len(values),
        "p50": percentile(values, 0.50),
        "p95": percentile(values, 0.95),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


# What the enumeration benchmarks share: the deployment an attacker meets, a
# visitor who loaded the form, and the statistic that says whether two cases differ.


def _smtp_process(port, ready, stop, results):
    """The SMTP server, in a process of its own: it takes no CPU time from the client."""
    from support.smtp import SmtpServer

    server = SmtpServer(port=port).start()
    ready.set()
    stop.wait()
    results.put(len(server.messages))
    server.stop()


@contextmanager
def smtp_server():
    """(port, received): received["messages"] is the count of emails, after the block."""
    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    port = free_port()
    process = context.Process(target=_smtp_process, args=(port, ready, stop, results))
    process.start()
    ready.wait(30)
    received = {}
    try:
        yield port, received
    finally:
        stop.set()
        received["messages"] = results.get(timeout=30)
        process.join()


@contextmanager
def database(url, folder, prefix="bench"):
    """A fresh database for the run: a SQLite file, or a PostgreSQL database made for it."""
    if not url:
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    parts = urlsplit(url)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def deployment_env(database_url, port, smtp_port):
    """What a plain deployment exports, and nothing else."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("FLASK_", "MAIL_", "DATABASE_", "SERVER_", "SESSION_", "RESET_", "LOGIN_")
        )
    }
    env.update(
        SERVER_NAME=f"127.0.0.1:{port}",
        SECRET_KEY=secrets.token_hex(32),
        DATABASE_URL=database_url,
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(smtp_port),
        RATELIMIT_ENABLED="false",  # every request comes from one address
    )
    return env


class LoadedForm:
    """A fresh browser session that has loaded a form: its open connection, cookie and token.

    Not `support.visitor.Visitor`: the timed POST must reuse the connection the
    form came on, so that only the answer is measured.
    """

    def __init__(self, port, form):
        self.form = form
        self.connection = HTTPConnection("127.0.0.1", port, timeout=30)
        self.connection.request("GET", form)
        page = self.connection.getresponse()
        text = page.read().decode()
        jar = {}
        for cookie in page.headers.get_all("Set-Cookie") or []:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            jar[name] = value
        self.cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
        self.token = CSRF_INPUT.search(text).group(1)

    def timed_post(self, fields):
        """POST the form on the open connection: (seconds until the whole answer, response)."""
        body = urlencode({"csrf_token": self.token, **fields})
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": self.cookie}
        try:
            started = time.perf_counter()
            self.connection.request("POST", self.form, body=body, headers=headers)
            response = self.connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
        finally:
            self.connection.close()
        return elapsed, response


def p_slower(values, baseline):
    """P(a random value is slower than a random baseline one), ties counting half."""
    ordered = sorted(baseline)
    wins = 0.0
    for value in values:
        below = bisect.bisect_left(ordered, value)
        ties = bisect.bisect_right(ordered, value) - below
        wins += below + ties / 2
    return wins / (len(values) * len(baseline))


def insert(db, table, rows, batch_size):
    """Multi-row INSERTs (executemany) of `batch_size` rows, each batch its own transaction."""
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == batch_size:
            with db.engine.begin() as connection:
                connection.execute(table.insert(), batch)
            batch = []
    if batch:
        with db.engine.begin() as connection:
            connection.execute(table.insert(), batch)
