"""The production server: `gunicorn -w 2 --threads 4 wsgi:app`, real SMTP, driven over HTTP.

Two worker processes share nothing but the database and the secret key: the
session (with its CSRF token and the reset token) must work whichever worker
answers, and each email must leave exactly once.
"""

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlencode, urlsplit
from urllib.request import HTTPCookieProcessor, HTTPErrorProcessor, Request, build_opener

import pytest
from gunicorn.config import Config as GunicornConfig

from conftest import PASSWORD, email_link, reset_link
from smtp_server import free_port

pytestmark = pytest.mark.gunicorn

REPO = Path(__file__).resolve().parent.parent
NEW_PASSWORD = "a fresh passphrase for gunicorn"
CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*>')
ACCESS_LINE = re.compile(r"^<(\d+)> (\w+) (\S+) HTTP/[\d.]+ (\d{3})$", re.M)


def database_url_for_env(database_url):
    """The test's database as one URL: a SQLite file, or PostgreSQL with the test's schema."""
    url, engine_options = database_url
    options = engine_options.get("connect_args", {}).get("options")
    return f"{url}?{urlencode({'options': options})}" if options else url


# What the process inherits from the machine; every setting of the app comes from `server_env`.
MACHINE = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")


def server_env(database_url, smtp, port, host="127.0.0.1", **extra):
    """What a plain deployment exports, and nothing else: plain HTTP, real defaults.

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


@dataclass
class Page:
    status: int
    headers: object
    text: str

    @property
    def location(self):
        return self.headers.get("Location")

    def csrf_token(self):
        """The form's token, as a browser would send it back."""
        tag = CSRF_INPUT.search(self.text)
        assert tag, f"no CSRF token on the page ({self.status})"
        return re.search(r'value="([^"]+)"', tag.group(0)).group(1)


class KeepEveryResponse(HTTPErrorProcessor):
    """Hand back redirects and errors as they are: the test asserts on them."""

    def http_response(self, request, response):
        return response


class Visitor:
    """One person's cookie jar; every request is a fresh connection (`Connection: close`)."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.opener = build_opener(HTTPCookieProcessor(CookieJar()), KeepEveryResponse())

    def request(self, path, data=None):
        body = urlencode(data).encode() if data is not None else None
        with self.opener.open(Request(self.base_url + path, data=body), timeout=10) as response:
            return Page(response.status, response.headers, response.read().decode())

    def get(self, path):
        return self.request(path)

    def submit(self, path, **fields):
        """Fill in the form at `path` and post it, CSRF token included."""
        token = self.get(path).csrf_token()
        return self.request(path, {"csrf_token": token, **fields})


class Gunicorn:
    """`gunicorn -w 2 wsgi:app` in the repository, its output (access log with pids) in a file."""

    def __init__(self, env, port, log_path):
        self.env, self.port, self.log_path = env, port, log_path
        self.base_url = f"http://127.0.0.1:{port}"
        self.process = None

    def migrate(self):
        """`flask db upgrade`, as a deployment runs it, against the server's database."""
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "microblog", "db", "upgrade"],
            cwd=REPO,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=30,
        )

    def start(self):
        command = [sys.executable, "-m", "gunicorn", "-w", "2", "--threads", "4"]
        command += ["-b", f"127.0.0.1:{self.port}"]
        command += ["--access-logfile", "-", "--access-logformat", "%(p)s %(r)s %(s)s"]
        if "control_socket_disable" in GunicornConfig().settings:
            command.append("--no-control-socket")  # gunicorn 25+: one shared path in $HOME
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*command, "wsgi:app"], cwd=REPO, env=self.env, stdout=log, stderr=log
            )
        self.wait_until_both_workers_booted()
        return self

    def wait_until_both_workers_booted(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"gunicorn died:\n{self.log()}"
            if self.log().count("Booting worker") >= 2 and self.answers():
                return
            time.sleep(0.1)
        raise AssertionError(f"gunicorn did not start:\n{self.log()}")

    def answers(self):
        try:
            return Visitor(self.base_url).get("/healthz").status == 200
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
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def gunicorn(tmp_path, database_url, smtp):
    """A started server per test: its own database and port, mail to the `smtp` fixture."""
    port = free_port()
    server = Gunicorn(server_env(database_url, smtp, port), port, tmp_path / "gunicorn.log")
    server.migrate()
    yield server.start()
    server.kill()


def register(visitor, username, smtp):
    """Sign up as a person does: the form, then the link in the verification email."""
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
    verified = visitor.get(urlsplit(email_link(message, "verify_email")).path)
    assert verified.location == "/auth/login"


def sign_in(visitor, username, password):
    return visitor.submit("/auth/login", username=username, password=password)


def test_password_reset_works_end_to_end_under_gunicorn(gunicorn, smtp):
    visitor = Visitor(gunicorn.base_url)
    register(visitor, "susan", smtp)
    asked = visitor.submit("/auth/reset_password_request", email="susan@example.com")
    assert asked.location == "/auth/login"

    message = smtp.wait_for(2)[-1]
    link = reset_link(message)
    assert link.startswith(f"{gunicorn.base_url}/auth/reset_password/")
    opened = visitor.get(urlsplit(link).path)
    assert opened.location == "/auth/reset_password"
    done = visitor.submit("/auth/reset_password", password=NEW_PASSWORD, password2=NEW_PASSWORD)
    assert done.location == "/auth/login"

    refused = sign_in(Visitor(gunicorn.base_url), "susan", PASSWORD)
    assert (refused.status, "Invalid username or password." in refused.text) == (200, True)
    assert sign_in(Visitor(gunicorn.base_url), "susan", NEW_PASSWORD).location == "/index"
    notices = smtp.wait_for(3)[1:]
    assert [m["Subject"] for m in notices] == [
        "[Microblog] Reset your password",
        "[Microblog] Your password was changed",
    ]
    assert Visitor(gunicorn.base_url).get(urlsplit(link).path).location == "/auth/reset_password"
    assert visitor.get("/auth/reset_password").status == 400  # the link died with its use


def test_both_workers_serve_one_session_and_each_email_leaves_once(gunicorn, smtp):
    """Overlapping requests of one signed-in user: a sync worker takes one at a time.

    So both workers answer, each reading the same cookie session; and the
    mail threads of both processes poll one outbox without sending twice.
    """
    visitor = Visitor(gunicorn.base_url)
    register(visitor, "susan", smtp)
    assert sign_in(visitor, "susan", PASSWORD).location == "/index"

    # Which worker accepts is the kernel's choice: on a busy machine one worker may
    # drain a whole batch, so send batches until both have answered (or time is up).
    deadline = time.monotonic() + 10
    with ThreadPoolExecutor(max_workers=6) as pool:
        while len(gunicorn.pids_that_served("GET", "/index")) < 2 and time.monotonic() < deadline:
            pages = list(pool.map(lambda _: visitor.get("/index"), range(30)))
            assert {page.status for page in pages} == {200}
            assert all("Hi, susan!" in page.text for page in pages)
    assert len(gunicorn.pids_that_served("GET", "/index")) == 2

    stranger = Visitor(gunicorn.base_url)
    for _ in range(3):  # RESET_EMAILS_PER_HOUR
        asked = stranger.submit("/auth/reset_password_request", email="susan@example.com")
        assert asked.location == "/auth/login"
    smtp.wait_for(4)  # and the verification email
    time.sleep(2.5)  # a second sender would claim within one poll interval (MAIL_POLL_INTERVAL)
    assert len(smtp.messages) == 4
    assert len({message["Message-ID"] for message in smtp.messages}) == 4


def test_sigterm_stops_gunicorn_cleanly_after_the_email_in_hand(gunicorn, smtp):
    """A deploy restarts the server: the email being sent finishes, then the workers exit."""
    visitor = Visitor(gunicorn.base_url)
    register(visitor, "susan", smtp)
    deadline = time.monotonic() + 5
    while smtp.mailbox.active and time.monotonic() < deadline:  # the verification's QUIT
        time.sleep(0.02)
    smtp.mailbox.delay = 1.0
    smtp.mailbox.receiving.clear()
    visitor.submit("/auth/reset_password_request", email="susan@example.com")
    # In hand: its DATA has begun (other senders may hold an idle connection meanwhile).
    assert smtp.mailbox.receiving.wait(5), "the email never reached the SMTP server"

    # Well under MAIL_SHUTDOWN_TIMEOUT (20 s): the worker waits for the email, not the timeout.
    assert gunicorn.stop(timeout=12) == 0, gunicorn.log()
    assert len(smtp.messages) == 2  # the verification email, then this one
    assert "Traceback" not in gunicorn.log()


def csrf_of(response):
    """The CSRF token of the (first) form on a page fetched with `requests`."""
    return Page(response.status_code, response.headers, response.text).csrf_token()


def post_form(session, path, form_page=None, **fields):
    """What a browser does: load the page with the form, post it back with its token."""
    page = session.get(form_page or path, allow_redirects=False)
    return session.post(path, data={"csrf_token": csrf_of(page), **fields}, allow_redirects=False)


def test_a_plain_http_deployment_serves_a_whole_session_to_requests(gunicorn, smtp):
    """A visitor's whole session: register, sign in (remembered), post, sign out, reset."""
    requests = pytest.importorskip("requests")
    base = gunicorn.base_url
    person = requests.Session()

    def go(path, **fields):
        return post_form(person, base + path, **fields)

    registered = go(
        "/auth/register",
        username="susan",
        email="susan@example.com",
        password=PASSWORD,
        password2=PASSWORD,
    )
    assert registered.headers.get("Location") == "/auth/login", registered.text
    verify = email_link(smtp.wait_for(1)[0], "verify_email")
    assert person.get(verify, allow_redirects=False).headers.get("Location") == "/auth/login"
    signed_in = go("/auth/login", username="susan", password=PASSWORD, remember_me="y")
    assert signed_in.headers.get("Location") == "/index", signed_in.text
    cookies = {cookie.name: cookie for cookie in person.cookies}
    assert not cookies["session"].secure and not cookies["remember_token"].secure

    posted = go("/index", post="Hello over plain HTTP")
    assert posted.headers.get("Location") == "/index"
    assert "Hello over plain HTTP" in person.get(base + "/explore").text

    remembered = requests.Session()  # the browser restarted: only the remember-me cookie is left
    remembered.cookies.set("remember_token", cookies["remember_token"].value)
    assert "Hi, susan!" in remembered.get(base + "/index").text

    signed_out = post_form(person, base + "/auth/logout", form_page=base + "/index")
    assert signed_out.headers.get("Location") == "/auth/login"
    asked = go("/auth/reset_password_request", email="susan@example.com")
    assert asked.headers.get("Location") == "/auth/login"
    link = reset_link(smtp.wait_for(2)[1])
    assert link.startswith(f"{base}/auth/reset_password/")
    assert person.get(link).url == f"{base}/auth/reset_password"
    done = go("/auth/reset_password", password=NEW_PASSWORD, password2=NEW_PASSWORD)
    assert done.headers.get("Location") == "/auth/login", done.text
    again = go("/auth/login", username="susan", password=NEW_PASSWORD)
    assert again.headers.get("Location") == "/index"

    log = gunicorn.log()
    assert log.count("Serving over plain HTTP") == 2  # one line per worker process
    assert "Traceback" not in log


def test_a_post_without_cookies_says_the_cookies_did_not_come_back(gunicorn):
    requests = pytest.importorskip("requests")
    page = requests.get(gunicorn.base_url + "/auth/login")
    refused = requests.post(
        gunicorn.base_url + "/auth/login",
        data={"csrf_token": csrf_of(page), "username": "susan", "password": PASSWORD},
    )
    assert refused.status_code == 400
    assert "Cookies did not come back" in refused.text
    assert "A form came back without the session cookie" in gunicorn.log()


def drop_table(database_url, table):
    """Break one route the way a bad deploy could: a table it reads is gone."""
    import sqlalchemy as sa

    url, engine_options = database_url
    engine = sa.create_engine(url, **engine_options)
    with engine.begin() as connection:
        cascade = " CASCADE" if engine.dialect.name == "postgresql" else ""
        connection.execute(sa.text(f"DROP TABLE {table}{cascade}"))
    engine.dispose()


def test_a_thousand_failures_of_one_route_send_one_email(tmp_path, database_url, smtp):
    """Both workers fail 1,000 times on /explore: the admins get one report, not 1,000."""
    requests = pytest.importorskip("requests")
    port = free_port()
    env = server_env(database_url, smtp, port, ADMINS="admin@example.com")
    server = Gunicorn(env, port, tmp_path / "gunicorn.log")
    server.migrate()
    drop_table(database_url, "post")
    server.start()
    try:

        def hit(_):
            with requests.Session() as client:
                return [client.get(server.base_url + "/explore").status_code for _ in range(50)]

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = [status for batch in pool.map(hit, range(20)) for status in batch]
        assert statuses == [500] * 1000
        assert len(server.pids_that_served("GET", "/explore")) == 2
        [report] = smtp.wait_for(1, timeout=10)
        assert report["To"] == "admin@example.com"
        assert report["Subject"] == "Microblog failure at GET /explore"
        assert server.stop(timeout=30) == 0  # the queued reports are written before exit
    finally:
        server.kill()

    import sqlalchemy as sa

    url, engine_options = database_url
    engine = sa.create_engine(url, **engine_options)
    with engine.connect() as connection:
        reports = connection.scalar(
            sa.text("SELECT count(*) FROM outbox WHERE tag = 'error_report'")
        )
        counted = connection.scalar(sa.text("SELECT sum(repeats) FROM error_report_kind"))
    engine.dispose()
    assert reports == 1
    assert counted >= 100  # the repeats were counted, not mailed
    assert len(smtp.messages) == 1
    assert "[parameters:" not in server.log()  # hide_parameters: no SQL values in the log
