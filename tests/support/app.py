"""How each test's app is built and torn down, and what a test measures on it."""

from contextlib import contextmanager

import sqlalchemy as sa

from microblog import create_app
from microblog.extensions import db
from microblog.mail.delivery import deliver_due
from microblog.mail.workers import dispatcher

TEST_SECRET_KEY = "test-secret-key-that-is-long-enough-for-hs256"


def app_config(database_url, smtp, **overrides):
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


def build_app(database_url, smtp, **overrides):
    app = create_app(app_config(database_url, smtp, **overrides))
    with app.app_context():
        db.create_all()
    return app


def close_app(app, drop=True):
    dispatcher(app).stop(timeout=5)
    with app.app_context():
        if drop:
            db.drop_all()
        db.engine.dispose()


def delivering(app):
    """A function that runs the mail worker's loop once for `app`, synchronously."""

    def run():
        with app.app_context():
            return deliver_due()

    return run


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
