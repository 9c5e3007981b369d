"""Microblog: accounts, posts, followers, and email you can rely on."""

from collections.abc import Mapping
from pathlib import Path

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from microblog import i18n, jobs, search
from microblog import mail as outbox
from microblog.config import Config
from microblog.deployment import check_deployable, ensure_secret_key, warn_if_plain_http
from microblog.extensions import babel, bootstrap, csrf, db, limiter, login, mail, migrate
from microblog.formatting import register_filters
from microblog.hostile_input import BoundedInt, refuse_in_url
from microblog.logging_setup import configure_logging
from microblog.security import add_security_headers, refuse_oversized_body
from microblog.session_cookie import SignedCookieSessions


class Microblog(Flask):
    def log_exception(self, exc_info):
        """Name the route, not the path: a reset link's path holds its token."""
        rule = request.url_rule.rule if request.url_rule else "(no route)"
        self.logger.error(f"Exception on {rule} [{request.method}]", exc_info=exc_info)


def create_app(config_class=Config):
    """Build an isolated app: its own configuration, database binding and mail workers.

    `config_class` is a class (read with `from_object`) or a mapping laid over
    the defaults. Either way `instance/config.py` and `FLASK_*` variables are
    read on top, unless READ_INSTANCE_CONFIG is false: a test's app then sees
    nothing but what the test passed.
    """
    app = Microblog(__name__, instance_relative_config=True)
    configure(app, config_class)
    add_middleware(app)
    configure_logging(app)
    warn_if_plain_http(app)
    register_extensions(app)
    register_blueprints(app)
    register_request_hooks(app)
    register_template_helpers(app)
    register_commands(app)
    return app


def configure(app, config_class):
    """The whole configuration, settled before any extension sees it."""
    load_settings(app, config_class)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    default_database(app.config, app.instance_path)
    engine_options(app.config)
    secure_cookies(app.config)
    ensure_secret_key(app)
    check_deployable(app)


def load_settings(app, config_class):
    """The defaults or the caller's class, its mapping, then the instance's own if wanted.

    One setting decides, not the type of what was passed: a Config subclass
    reads instance/config.py exactly as Config does.
    """
    if isinstance(config_class, Mapping):
        app.config.from_object(Config)
        app.config.from_mapping(config_class)
    else:
        app.config.from_object(config_class)
    if app.config.get("READ_INSTANCE_CONFIG", True):
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env()
    former_names(app.config)


def former_names(config):
    """Settings that were renamed keep working under their old name, given on its own."""
    former = config.get("RESET_EMAILS_PER_HOUR")
    if former is not None and config["ACCOUNT_EMAILS_PER_HOUR"] == Config.ACCOUNT_EMAILS_PER_HOUR:
        config["ACCOUNT_EMAILS_PER_HOUR"] = former
    config["RESET_EMAILS_PER_HOUR"] = config["ACCOUNT_EMAILS_PER_HOUR"]


def default_database(config, instance_path):
    """No database configured: a SQLite file in the instance folder."""
    if not config.get("SQLALCHEMY_DATABASE_URI"):
        config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{Path(instance_path) / 'microblog.db'}"


def engine_options(config):
    """SQLAlchemy's engine options: parameters hidden, PostgreSQL failing fast."""
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


def secure_cookies(config):
    """Unset: a browser sends Secure cookies back over https only, so Secure exactly then."""
    for key in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        if config.get(key) is None:
            config[key] = config["PREFERRED_URL_SCHEME"] == "https"


def add_middleware(app):
    """Behind PROXY_COUNT proxies, believe their X-Forwarded-For and -Proto (never -Host)."""
    count = app.config["PROXY_COUNT"]
    if count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=0)


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
    jobs.init_app(app, outbox.run_beside_workers)
    app.session_interface = SignedCookieSessions()


def register_blueprints(app):
    """errors first: its handlers serve the whole app (error pages, an untrusted Host)."""
    from microblog.auth import bp as auth_bp
    from microblog.errors import bp as errors_bp
    from microblog.main import bp as main_bp

    app.url_map.converters["int"] = BoundedInt  # before any route is added
    app.register_blueprint(errors_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(main_bp)


def register_request_hooks(app):
    """What every request passes through: hostile input refused, headers and language added."""
    app.before_request(refuse_oversized_body)
    app.before_request(refuse_in_url)
    app.after_request(add_security_headers)
    app.after_request(i18n.remember_choice)


def register_template_helpers(app):
    """What every template may call, whichever blueprint renders it (auth's emails: |exact_time)."""
    register_filters(app)
    app.jinja_env.globals.update(
        page_locale=i18n.page_locale,
        plural_samples=i18n.plural_samples,
        language_choices=i18n.language_choices,
    )


def register_commands(app):
    """`flask translate`, `flask search`; `flask auth ...` comes with its blueprint, `flask mail
    ...` with mail."""
    i18n.register_commands(app)
    search.register_commands(app)
