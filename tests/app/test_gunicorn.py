"""The production server: `gunicorn -w 2 --threads 4 wsgi:app`, real SMTP, driven over HTTP.

Two worker processes share nothing but the database and the secret key: the
session (with its CSRF token and the reset token) must work whichever worker
answers, and each email must leave exactly once.
"""

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from support.auth import PASSWORD, email_link, last_email, reset_link
from support.gunicorn import Gunicorn, register, server_env, sign_in, verify_email
from support.ports import free_port
from support.visitor import Page, Visitor

pytestmark = pytest.mark.gunicorn

NEW_PASSWORD = "a fresh passphrase for gunicorn"


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
    # The reset forgot every browser the account knew: the sign-in after it is announced.
    notices = smtp.wait_for(4)[1:]
    assert notices[0]["Subject"] == "[Microblog] Reset your password"
    assert {m["Subject"] for m in notices[1:]} == {
        "[Microblog] Your password was changed",
        "[Microblog] New sign-in to your account",
    }
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
    for _ in range(3):  # ACCOUNT_EMAILS_PER_HOUR
        asked = stranger.submit("/auth/reset_password_request", email="susan@example.com")
        assert asked.location == "/auth/login"
    smtp.wait_for(4)  # and the verification email
    time.sleep(2.5)  # a second sender would claim within one poll interval (MAIL_POLL_INTERVAL)
    assert len(smtp.messages) == 4, [m["Subject"] for m in smtp.messages]
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
    mailbox = requests.Session()  # the link opens in the mail app's browser, which it signs in
    verified = post_form(mailbox, verify, password=PASSWORD)
    assert verified.headers.get("Location") == "/index", verified.text
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


@pytest.fixture(params=["idle", "one core busy"])
def machine(request):
    """The machine as it is, or with one core kept busy by another process (a backup, a build)."""
    if request.param == "idle":
        yield request.param
        return
    neighbour = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    try:
        yield request.param
    finally:
        neighbour.kill()
        neighbour.wait()


def test_eight_people_sign_up_verify_and_sign_in_at_the_same_moment(gunicorn, smtp, machine):
    """An outside suite's set-up registers people eight at a time: no 503, no one turned away."""
    names = [f"person{n}" for n in range(8)]
    visitors = {name: Visitor(gunicorn.base_url) for name in names}

    def all_at_once(step):
        start = threading.Barrier(len(names))

        def one(name):
            start.wait(10)
            return step(name, visitors[name])

        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            return dict(zip(names, pool.map(one, names), strict=True))

    forms = {name: visitors[name].get("/auth/register").csrf_token() for name in names}
    fields = {"password": PASSWORD, "password2": PASSWORD}
    signed_up = all_at_once(
        lambda name, visitor: visitor.request(
            "/auth/register",
            {"csrf_token": forms[name], "username": name, "email": f"{name}@example.com", **fields},
        )
    )
    assert {name: page.location for name, page in signed_up.items()} == dict.fromkeys(
        names, "/auth/login"
    ), {name: page.status for name, page in signed_up.items()}

    smtp.wait_for(len(names), timeout=30)
    links = {
        name: email_link(
            last_email(smtp, "Verify your email address", f"{name}@example.com"), "verify_email"
        )
        for name in names
    }
    verified = all_at_once(lambda name, visitor: verify_email(visitor, links[name]))
    assert {name: page.location for name, page in verified.items()} == dict.fromkeys(
        names, "/index"
    ), {name: page.status for name, page in verified.items()}

    browsers = {name: Visitor(gunicorn.base_url) for name in names}
    forms = {name: browsers[name].get("/auth/login").csrf_token() for name in names}
    signed_in = all_at_once(
        lambda name, _visitor: browsers[name].request(
            "/auth/login", {"csrf_token": forms[name], "username": name, "password": PASSWORD}
        )
    )
    assert {name: page.location for name, page in signed_in.items()} == dict.fromkeys(
        names, "/index"
    ), {name: page.status for name, page in signed_in.items()}
