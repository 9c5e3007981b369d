"""Fixtures: an isolated app per test, a real SMTP server, and helpers that act like a user."""

import logging
import os
import re
import uuid
from contextlib import contextmanager
from html import unescape
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask

from microblog import clock, create_app
from microblog.extensions import db
from microblog.mail.delivery import deliver_due
from microblog.mail.workers import dispatcher
from microblog.models import User
from smtp_server import SmtpServer, text_of

TEST_SECRET_KEY = "test-secret-key-that-is-long-enough-for-hs256"
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _push_request_context():
    """Undo pytest-flask's request context for the whole test.

    Held for a whole test, it would hide a view that forgets to commit and
    leak the signed-in user from one request to the next.
    """


@pytest.fixture
def client(app):
    """A test client that keeps no context between requests.

    pytest-flask's own opens it `with`, which keeps the last request's context
    pushed: the next request, even from another client, then reuses its `g`
    and with it the signed-in user.
    """
    return app.test_client()


@pytest.fixture(scope="session")
def smtp_session():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_session):
    """The SMTP server every app of the test sends to, emptied for the test."""
    smtp_session.mailbox.clear()
    return smtp_session


@pytest.fixture
def database_url(tmp_path):
    """A database of the test's own: a SQLite file, or a PostgreSQL schema.

    With TEST_DATABASE_URL set, each test gets a fresh schema in that
    PostgreSQL database, dropped afterwards.
    """
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path / 'test.db'}", {}
        return
    from microblog.config import database_url as with_driver

    url = with_driver(url)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield url, {"connect_args": {"options": f"-csearch_path={schema}"}}
    with admin.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_config(database_url, smtp, **overrides):
    url, engine_options = database_url
    config = {
        "READ_INSTANCE_CONFIG": False,  # nothing of the developer's instance/ or FLASK_*
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
        "SERVER_NAME": "localhost",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        # Argon2id, fast; the default parameters are tested on their own.
        "PASSWORD_ARGON2_MEMORY_KIB": 256,
        "PASSWORD_ARGON2_TIME_COST": 1,
        "MAIL_SERVER": smtp.host,
        "MAIL_PORT": smtp.port,
        "MAIL_DEFAULT_SENDER": "Microblog <no-reply@example.com>",
        "MAIL_WORKERS": 0,  # tests deliver synchronously unless they ask for threads
        "MAIL_TIMEOUT": 5,
    }
    config.update(overrides)
    return config


test_config.__test__ = False  # a helper, not a test


def build_app(database_url, smtp, **overrides):
    app = create_app(test_config(database_url, smtp, **overrides))
    with app.app_context():
        db.create_all()
    return app


def close_app(app, drop=True):
    dispatcher(app).stop(timeout=5)
    with app.app_context():
        if drop:
            db.drop_all()
        db.engine.dispose()


@pytest.fixture
def app(request, database_url, smtp):
    """A fresh app and database; `@pytest.mark.settings(KEY=value)` adds configuration."""
    overrides = {}
    for marker in reversed(list(request.node.iter_markers("settings"))):
        overrides.update(marker.kwargs)
    app = build_app(database_url, smtp, **overrides)
    yield app
    close_app(app)


@pytest.fixture
def instance(tmp_path, monkeypatch):
    """An instance folder of the test's own, for apps built with production settings."""
    folder = tmp_path / "instance"
    monkeypatch.setattr(Flask, "auto_find_instance_path", lambda self: str(folder))
    yield folder
    logger = logging.getLogger("microblog")
    for handler in [h for h in logger.handlers if getattr(h, "microblog", False)]:
        logger.removeHandler(handler)
        handler.close()


def delivering(app):
    """A function that runs the mail worker's loop once for `app`, synchronously."""

    def run():
        with app.app_context():
            return deliver_due()

    return run


@pytest.fixture
def deliver(app):
    """Run the mail worker's loop once, synchronously: what the threads would do."""
    return delivering(app)


@pytest.fixture
def hasher_calls(monkeypatch):
    """Every Argon2 hash or verification computed during the test: ("hash"|"verify", hash)."""
    from argon2 import PasswordHasher

    calls = []

    def counting(name):
        real = getattr(PasswordHasher, name)

        def wrapper(self, *args, **kwargs):
            calls.append((name, args[0] if name == "verify" else None))
            return real(self, *args, **kwargs)

        return wrapper

    for name in ("hash", "verify"):
        monkeypatch.setattr(PasswordHasher, name, counting(name))
    return calls


@pytest.fixture
def make_user(app):
    """An account as it is once its owner verified the address (`verified=False`: before)."""

    def create(username="susan", email=None, password=PASSWORD, verified=True):
        from microblog.auth.passwords import hash_password

        with app.app_context():
            user = User(
                username=username,
                email=email or f"{username}@example.com",
                password_hash=hash_password(password),
                email_verified_at=clock.utcnow() if verified else None,
            )
            db.session.add(user)
            db.session.commit()
            return user.id

    return create


@contextmanager
def counting_queries(app):
    """Every statement the app sends to the database while the block runs."""
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


class AuthActions:
    """What a person does with the account forms, through the test client.

    With `deliver` and `smtp`, `sign_up` goes on like a person: it lets the
    mail worker send the verification email, reads it from the SMTP server
    and opens its link.
    """

    def __init__(self, client, deliver=None, smtp=None):
        self.client = client
        self.deliver = deliver
        self.smtp = smtp

    def register(self, username="susan", email=None, password=PASSWORD, password2=None):
        return self.client.post(
            "/auth/register",
            data={
                "username": username,
                "email": email or f"{username}@example.com",
                "password": password,
                "password2": password if password2 is None else password2,
            },
        )

    def sign_up(self, username="susan", email=None, password=PASSWORD):
        """Register, then open the verification link the new address received."""
        email = email or f"{username}@example.com"
        response = self.register(username, email, password)
        assert response.headers["Location"] == "/auth/login", response.text
        self.deliver()
        message = last_email(self.smtp, "Verify your email address")
        verified = self.client.get(urlsplit(email_link(message, "verify_email")).path)
        assert verified.headers["Location"] == "/auth/login"
        return verified

    def login(self, username="susan", password=PASSWORD, remember_me=False, next=None):
        url = "/auth/login" + (f"?next={next}" if next else "")
        data = {"username": username, "password": password}
        if remember_me:
            data["remember_me"] = "y"
        return self.client.post(url, data=data)

    def logout(self):
        return self.client.post("/auth/logout")

    def request_reset(self, email="susan@example.com"):
        return self.client.post("/auth/reset_password_request", data={"email": email})


@pytest.fixture
def auth(client, deliver, smtp):
    return AuthActions(client, deliver, smtp)


def email_link(message, route):
    """The /auth/<route>/ link of an email, as a person would copy it from the text part."""
    match = re.search(rf"https?://\S+/auth/{route}/\S+", text_of(message))
    assert match, f"no {route} link in the email"
    return unescape(match.group(0))


def last_email(smtp, subject, to=None):
    """The latest email with this subject (after "[Microblog] "), to `to` if given."""
    found = [
        m
        for m in smtp.messages
        if m["Subject"] == f"[Microblog] {subject}" and to in (None, *m.envelope_recipients)
    ]
    assert found, f"no email {subject!r} to {to or 'anyone'}"
    return found[-1]


def reset_link(message):
    """The reset link of an email, as a person would copy it from the text part."""
    return email_link(message, "reset_password")


def flashes(response):
    """The flashed messages shown on a page."""
    return [
        unescape(re.sub(r"<[^>]+>", "", m)).strip()
        for m in re.findall(
            r'<div class="alert[^"]*" role="alert">(.*?)</div>', response.text, re.S
        )
    ]
