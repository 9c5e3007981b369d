"""Fixtures: an isolated app per test, a real SMTP server, and helpers that act like a user."""

import logging
import os
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from microblog import clock
from microblog.extensions import db
from microblog.models import User
from support.app import build_app, close_app, delivering
from support.auth import PASSWORD, AuthActions
from support.gunicorn import Gunicorn, server_env
from support.ports import free_port
from support.smtp import SmtpServer


@pytest.fixture(autouse=True)
def _push_request_context():
    """None: pytest-flask's request context, held for the whole test, hides a missing commit."""


@pytest.fixture
def client(app):
    """Not pytest-flask's: its `with` keeps the last request's `g` (and signed-in user) pushed."""
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


@pytest.fixture
def app_settings():
    """Configuration all the tests of a folder share (the browser tests set their own)."""
    return {}


@pytest.fixture
def app(request, database_url, smtp, app_settings):
    """A fresh app and database; `@pytest.mark.settings(KEY=value)` adds configuration.

    Not pytest-flask's `options` marker: it sets the config after the extensions read it.
    """
    overrides = dict(app_settings)
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


@pytest.fixture
def auth(client, deliver, smtp):
    return AuthActions(client, deliver, smtp)


@pytest.fixture
def gunicorn(tmp_path, database_url, smtp):
    """A started server per test: its own database and port, mail to the `smtp` fixture."""
    port = free_port()
    server = Gunicorn(server_env(database_url, smtp, port), port, tmp_path / "gunicorn.log")
    server.migrate()
    yield server.start()
    server.kill()


@pytest.fixture
def shifted(monkeypatch):
    """Move both clocks forward, as if that much time had passed."""
    offset = timedelta()
    real_utcnow, real_monotonic = clock.utcnow, clock.monotonic
    monkeypatch.setattr(clock, "utcnow", lambda: real_utcnow() + offset)
    monkeypatch.setattr(clock, "monotonic", lambda: real_monotonic() + offset.total_seconds())

    def shift(seconds):
        nonlocal offset
        offset += timedelta(seconds=seconds)

    return shift
