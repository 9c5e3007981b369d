"""Microblog: accounts, posts, followers, and email you can rely on."""

import logging
import os
import secrets
import sys
from collections.abc import Mapping
from logging.handlers import RotatingFileHandler
from pathlib import Path

import click
from flask import Flask, request
from flask.logging import default_handler
from werkzeug.exceptions import SecurityError
from werkzeug.middleware.proxy_fix import ProxyFix

from microblog import i18n
from microblog import mail as outbox
from microblog.config import Config
from microblog.extensions import babel, bootstrap, csrf, db, limiter, login, mail, migrate
from microblog.hostile_input import BoundedInt, refuse_in_url
from microblog.security import add_security_headers, refuse_oversized_body, untrusted_host
from microblog.session_cookie import SignedCookieSessions
from microblog.urls import public_host

MIN_SECRET_KEY_BYTES = 32


class Microblog(Flask):
    def log_exception(self, exc_info):
        """Name the route, not the path: a reset link's path holds its token."""
        rule = request.url_rule.rule if request.url_rule else "(no route)"
        self.logger.error(f"Exception on {rule} [{request.method}]", exc_info=exc_info)


def create_app(config_class=Config):
    """Build an isolated app: its own configuration, database binding and mail workers.

    `config_class` is a class (read with `from_object`) or a mapping laid over
    the defaults. Only the default configuration also reads
    `instance/config.py` and `FLASK_*` variables: a test's app sees nothing
    but what the test passed.
    """
    app = Microblog(__name__, instance_relative_config=True)
    configure(app, config_class)
    configure_logging(app)
    warn_if_plain_http(app)
    register_extensions(app)
    app.url_map.converters["int"] = BoundedInt  # before any route is added
    register_blueprints(app)
    app.before_request(refuse_oversized_body)
    app.before_request(refuse_in_url)
    app.after_request(add_security_headers)
    app.after_request(i18n.remember_choice)
    app.jinja_env.globals.update(
        page_locale=i18n.page_locale,
        plural_samples=i18n.plural_samples,
        language_choices=i18n.language_choices,
    )
    i18n.register_commands(app)
    app.register_error_handler(SecurityError, untrusted_host)
    return app


def configure(app, config_class):
    """The whole configuration, settled before any extension sees it."""
    if isinstance(config_class, Mapping):
        app.config.from_object(Config)
        app.config.from_mapping(config_class)
    else:
        app.config.from_object(config_class)
    if config_class is Config:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env()
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    config = app.config
    if not config.get("SQLALCHEMY_DATABASE_URI"):
        config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{Path(app.instance_path) / 'microblog.db'}"
    # A copy: the caller's mapping (a test's, a class attribute) stays as it was.
    options = config["SQLALCHEMY_ENGINE_OPTIONS"] = dict(
        config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}
    )
    # SQL parameters (usernames, addresses, tokens) never reach a log line or an error report.
    options.setdefault("hide_parameters", True)
    if config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        # /healthz and requests fail in seconds, not after the OS connect timeout.
        options.setdefault("pool_pre_ping", True)
        options["connect_args"] = {"connect_timeout": 5, **options.get("connect_args", {})}
    for key in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        if config.get(key) is None:  # a browser sends Secure cookies back over https only
            config[key] = config["PREFERRED_URL_SCHEME"] == "https"
    relaxed = app.debug or app.testing
    ensure_secret_key(app)
    if not relaxed:
        check_deployable(app)
    if config["PROXY_COUNT"]:
        count = config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=0)


def ensure_secret_key(app):
    """Development convenience: a random key kept in instance/ when none is configured.

    Created with a hard link so that several gunicorn workers starting at once
    all end up with the same key. A configured key shorter than 32 bytes is
    refused outside debug and testing (it signs sessions and reset tokens).
    """
    key = app.config.get("SECRET_KEY")
    if key:
        if len(key.encode()) < MIN_SECRET_KEY_BYTES and not (app.debug or app.testing):
            raise RuntimeError(
                f"SECRET_KEY is too short: use at least {MIN_SECRET_KEY_BYTES} random bytes, "
                'for example python -c "import secrets; print(secrets.token_hex(32))"'
            )
        return
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        draft = path.with_name(f".secret_key.{os.getpid()}")
        draft.write_text(secrets.token_hex(32))
        draft.chmod(0o600)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    app.config["SECRET_KEY"] = path.read_text().strip()
    app.logger.warning(
        "SECRET_KEY is not set: using the development key kept in %s. "
        "Set SECRET_KEY in production.",
        path,
    )


def is_serving():
    """True unless a Flask CLI command other than `run` is building the app."""
    context = click.get_current_context(silent=True)
    return context is None or context.info_name == "run"


def check_deployable(app):
    """Refuse to serve when emailed links would have to trust the Host header."""
    if is_serving() and public_host(app) is None:
        raise RuntimeError(
            "Set SERVER_NAME (the public host, e.g. microblog.example.com) and "
            "PREFERRED_URL_SCHEME=https, or TRUSTED_HOSTS: links in emails are built "
            "from them, never from the request's Host header. (Debug mode needs neither.)"
        )


def warn_if_plain_http(app):
    """One line at startup: a plain-HTTP deployment works, but its cookies travel in clear."""
    if app.debug or app.testing or not is_serving():
        return
    if app.config["PREFERRED_URL_SCHEME"] != "https":
        app.logger.warning(
            "Serving over plain HTTP (PREFERRED_URL_SCHEME=%s): session and remember-me "
            "cookies are not Secure and no HSTS is sent. In production, serve over https "
            "and set PREFERRED_URL_SCHEME=https.",
            app.config["PREFERRED_URL_SCHEME"],
        )


def under_gunicorn():
    """gunicorn's arbiter names itself in the environment its workers inherit."""
    return os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn")


def configure_logging(app):
    """INFO and up: to stdout, or a rotating file under instance/logs/ for a single process.

    Under gunicorn always stdout: each worker would rotate a shared file on
    its own (one goes on writing into the renamed file), while lines written
    to the inherited stdout arrive whole, in one stream the process manager keeps.
    """
    app.logger.setLevel(logging.INFO)
    for handler in list(app.logger.handlers):
        if getattr(handler, "microblog", False):  # left by an earlier app in this process
            app.logger.removeHandler(handler)
            handler.close()
    if app.debug or app.testing:
        return  # Flask's default handler prints to stderr
    if app.config["LOG_TO_STDOUT"] or under_gunicorn():
        handler = logging.StreamHandler(sys.stdout)
    else:
        logs = Path(app.instance_path) / "logs"
        logs.mkdir(exist_ok=True)
        handler = RotatingFileHandler(logs / "microblog.log", maxBytes=1_000_000, backupCount=10)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.microblog = True
    app.logger.removeHandler(default_handler)
    app.logger.addHandler(handler)


def register_extensions(app):
    """Bind the module-level extensions to this app, configuration already final."""
    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(Path(__file__).parent / "migrations"), render_as_batch=True
    )
    login.init_app(app)
    mail.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    bootstrap.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale)
    outbox.init_app(app)
    app.session_interface = SignedCookieSessions()


def register_blueprints(app):
    """errors first: its handlers serve the whole app."""
    from microblog.auth import bp as auth_bp
    from microblog.errors import bp as errors_bp
    from microblog.main import bp as main_bp

    app.register_blueprint(errors_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(main_bp)
