"""A live app on loopback, a real headless Chromium, and a screenshot of every failure."""

import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import make_server

from microblog import clock
from microblog.auth.passwords import hash_password
from microblog.extensions import db
from microblog.models import Post, User
from support.auth import PASSWORD
from support.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, watch_for_errors
from support.ports import free_port

SCREENSHOTS = Path(__file__).parent / "screenshots"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, for the page fixture's teardown."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser():
    """One Chromium for the session (Debian's, never a downloaded one)."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def browser_errors():
    """What the browser found broken: script errors, CSP violations, assets that failed.

    A page's own status (a 400 for a dead link) is the test's business, not
    an error here; nor is /favicon.ico, which the app does not serve.
    """
    return []


@pytest.fixture
def page(request, browser, browser_errors):
    """A fresh browser profile (no cookies) per test; a screenshot if the test fails."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(5000)
    context.on("page", lambda tab: watch_for_errors(tab, browser_errors))
    tab = context.new_page()
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(exist_ok=True)
        name = request.node.nodeid.split("::", 1)[1].translate(str.maketrans("[]/:", "____"))
        for number, each in enumerate(context.pages):
            each.screenshot(path=SCREENSHOTS / f"{name}-{number}.png", full_page=True)
    context.close()


@dataclass
class LiveServer:
    app: Flask
    base_url: str

    def url(self, path):
        return self.base_url + path

    def add_user(self, username, password=PASSWORD, posts=()):
        """Someone who registered earlier: the journey's other people."""
        with self.app.app_context():
            user = User(
                username=username,
                email=f"{username}@example.com",
                password_hash=hash_password(password),
                email_verified_at=clock.utcnow(),
            )
            db.session.add(user)
            db.session.add_all(Post(body=body, author=user) for body in posts)
            db.session.commit()

    def password_hash(self, username):
        with self.app.app_context():
            return db.session.scalar(sa.select(User.password_hash).filter_by(username=username))


@pytest.fixture
def live_port():
    return free_port()


@pytest.fixture
def app_settings(live_port):
    """CSRF on, mail sent by threads, and emailed links that point at the live server."""
    return {
        "SERVER_NAME": f"127.0.0.1:{live_port}",
        "WTF_CSRF_ENABLED": True,
        "MAIL_WORKERS": 2,
        "MAIL_POLL_INTERVAL": 0.2,
    }


@pytest.fixture
def live_server(app, live_port):
    """The test's app served by a real threaded HTTP server, in the test's own process.

    Not pytest-flask's: it forks the test process, and its app is built before the port is known.
    """
    server = make_server("127.0.0.1", live_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield LiveServer(app, f"http://127.0.0.1:{live_port}")
    server.shutdown()
    server.server_close()
    thread.join(5)
