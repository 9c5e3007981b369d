"""create_app: isolated apps, configuration layering, the development secret key, logging."""

import logging
import stat

import pytest

from microblog import create_app
from microblog.config import Config, database_url
from microblog.extensions import db
from support.app import TEST_SECRET_KEY, app_config


def production(**overrides):
    config = {
        "READ_INSTANCE_CONFIG": False,
        "TESTING": False,
        "DEBUG": False,
        "SERVER_NAME": "microblog.example.com",
    }
    config.update(overrides)
    return config


def test_each_app_has_its_own_configuration(database_url, smtp):
    first = create_app(app_config(database_url, smtp, POSTS_PER_PAGE=3))
    second = create_app(app_config(database_url, smtp))
    assert first.config["POSTS_PER_PAGE"] == 3
    assert second.config["POSTS_PER_PAGE"] == 25


def test_the_email_cap_keeps_its_former_name(database_url, smtp):
    """RESET_EMAILS_PER_HOUR, given on its own, still caps; the new name wins over it."""
    former = create_app(app_config(database_url, smtp, RESET_EMAILS_PER_HOUR=7))
    both = create_app(
        app_config(database_url, smtp, RESET_EMAILS_PER_HOUR=7, ACCOUNT_EMAILS_PER_HOUR=2)
    )
    assert former.config["ACCOUNT_EMAILS_PER_HOUR"] == 7
    assert both.config["ACCOUNT_EMAILS_PER_HOUR"] == 2


def test_a_config_class_is_read_like_the_default(instance):
    class Custom(Config):
        TESTING = True
        SECRET_KEY = TEST_SECRET_KEY
        POSTS_PER_PAGE = 7

    app = create_app(Custom)
    assert app.config["POSTS_PER_PAGE"] == 7
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'microblog.db'}"


def test_a_config_class_and_a_mapping_read_the_instance_config_unless_told_not_to(
    instance, monkeypatch
):
    """One setting decides, not whether create_app got Config, a subclass or a mapping."""
    instance.mkdir(parents=True, exist_ok=True)
    (instance / "config.py").write_text("POSTS_PER_PAGE = 9\n")
    monkeypatch.setenv("FLASK_PEOPLE_PER_PAGE", "11")

    class Custom(Config):
        TESTING = True
        SECRET_KEY = TEST_SECRET_KEY

    class Isolated(Custom):
        READ_INSTANCE_CONFIG = False

    mapping = {"TESTING": True, "SECRET_KEY": TEST_SECRET_KEY}
    for read in (Custom, mapping):
        config = create_app(read).config
        assert (config["POSTS_PER_PAGE"], config["PEOPLE_PER_PAGE"]) == (9, 11)
    for isolated in (Isolated, {**mapping, "READ_INSTANCE_CONFIG": False}):
        config = create_app(isolated).config
        assert (config["POSTS_PER_PAGE"], config["PEOPLE_PER_PAGE"]) == (25, 30)


def test_without_a_secret_key_one_is_kept_in_the_instance_folder(instance, caplog):
    first = create_app(production(SECRET_KEY=None))
    second = create_app(production(SECRET_KEY=None))
    key_file = instance / "secret_key"
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == key_file.read_text()
    assert len(first.config["SECRET_KEY"]) >= 64
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "SECRET_KEY is not set" in caplog.text


def test_a_short_secret_key_is_refused_outside_debug_and_testing(instance):
    with pytest.raises(RuntimeError, match="SECRET_KEY is too short"):
        create_app(production(SECRET_KEY="short"))
    assert create_app(production(SECRET_KEY="short", DEBUG=True)).config["SECRET_KEY"] == "short"


def test_cookies_are_secure_exactly_when_the_public_scheme_is_https(instance):
    def secure(**settings):
        config = create_app(production(SECRET_KEY=TEST_SECRET_KEY, **settings)).config
        return config["SESSION_COOKIE_SECURE"], config["REMEMBER_COOKIE_SECURE"]

    assert secure() == (False, False)
    assert secure(PREFERRED_URL_SCHEME="https") == (True, True)
    assert secure(PREFERRED_URL_SCHEME="https", DEBUG=True) == (True, True)
    assert secure(SESSION_COOKIE_SECURE=True) == (True, False)  # an explicit setting wins
    assert secure(PREFERRED_URL_SCHEME="https", REMEMBER_COOKIE_SECURE=False) == (True, False)


def test_a_plain_http_deployment_starts_with_one_warning_line(instance, caplog):
    create_app(production(SECRET_KEY=TEST_SECRET_KEY))
    [warning] = [r for r in caplog.records if "plain HTTP" in r.getMessage()]
    assert warning.levelname == "WARNING"
    caplog.clear()
    create_app(production(SECRET_KEY=TEST_SECRET_KEY, PREFERRED_URL_SCHEME="https"))
    assert "plain HTTP" not in caplog.text
    create_app(production(SECRET_KEY=TEST_SECRET_KEY, DEBUG=True))
    assert "plain HTTP" not in caplog.text


def test_production_logs_go_to_a_rotating_file_in_the_instance_folder(instance):
    app = create_app(production(SECRET_KEY=TEST_SECRET_KEY))
    app.logger.info("hello from the test")
    for handler in app.logger.handlers:
        handler.flush()
    assert "hello from the test" in (instance / "logs" / "microblog.log").read_text()


def test_log_to_stdout_replaces_the_file(instance, capsys):
    app = create_app(production(SECRET_KEY=TEST_SECRET_KEY, LOG_TO_STDOUT=True))
    app.logger.warning("to stdout")
    assert "to stdout" in capsys.readouterr().out
    assert not (instance / "logs").exists()
    assert logging.getLogger("microblog").handlers == app.logger.handlers


def test_under_gunicorn_logs_go_to_stdout_whatever_log_to_stdout_says(
    instance, capsys, monkeypatch
):
    """Each gunicorn worker would rotate a shared file on its own: stdout is one stream."""
    monkeypatch.setenv("SERVER_SOFTWARE", "gunicorn/23.0.0")
    app = create_app(production(SECRET_KEY=TEST_SECRET_KEY, LOG_TO_STDOUT=False))
    app.logger.warning("from a gunicorn worker")
    assert "from a gunicorn worker" in capsys.readouterr().out
    assert not (instance / "logs").exists()


def test_engines_hide_sql_parameters(instance):
    app = create_app(production(SECRET_KEY=TEST_SECRET_KEY))
    with app.app_context():
        assert db.engine.hide_parameters


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        (None, None),
    ],
)
def test_database_urls_use_the_installed_driver(url, expected):
    assert database_url(url) == expected


@pytest.mark.settings(PROPAGATE_EXCEPTIONS=False)
def test_a_crash_is_logged_by_route_not_by_path(app, client, caplog):
    def explode(secret):
        raise RuntimeError("boom")

    app.add_url_rule("/explode/<secret>", view_func=explode)
    response = client.get("/explode/token-that-must-not-be-logged")
    assert response.status_code == 500
    assert "An unexpected error occurred" in response.text
    assert "Exception on /explode/<secret> [GET]" in caplog.text
    assert "token-that-must-not-be-logged" not in caplog.text


def test_postgresql_connections_fail_fast_and_are_checked_before_use(instance):
    app = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://u@db.invalid/x"}
    )
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["pool_pre_ping"] is True
    assert options["connect_args"]["connect_timeout"] == 5
