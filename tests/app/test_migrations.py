"""The migrations in microblog/migrations build the schema the models describe."""

import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from microblog import create_app
from microblog.extensions import db
from microblog.models import is_search_index_table
from support.app import app_config

TABLES = {
    "user",
    "post",
    "followers",
    "outbox",
    "job",
    "session_record",
    "login_throttle",
    "error_report_kind",
    "mail_counter",
    "timeline_entry",
    "known_device",
    "undeliverable_address",
    "post_search",
}
BEFORE_USERNAME_KEYS = "0652ef8bf78a"


@pytest.fixture
def bare_app(database_url, smtp):
    """An app whose database has no schema yet."""
    app = create_app(app_config(database_url, smtp))
    yield app
    with app.app_context():
        db.engine.dispose()


def tables(app):
    with app.app_context():
        names = set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}
    # FTS5 keeps a virtual table's rows in tables of its own, named after it.
    return {name for name in names if name == "post_search" or not is_search_index_table(name)}


def test_upgrade_from_empty_then_downgrade_to_empty(bare_app):
    with bare_app.app_context():
        flask_migrate.upgrade()
    assert tables(bare_app) == TABLES
    with bare_app.app_context():
        flask_migrate.downgrade(revision="base")
    assert tables(bare_app) == set()


def test_migrations_match_the_models(bare_app):
    with bare_app.app_context():
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "include_name": lambda name, type_, _: (
                        type_ != "table" or not is_search_index_table(name)
                    )
                },
            )
            differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_db_upgrade_command_creates_the_schema(bare_app):
    result = bare_app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert tables(bare_app) == TABLES


def add_users_before_folding(app, *names):
    """Accounts as the previous revision stored them: no folded name yet."""
    with app.app_context():
        flask_migrate.upgrade(revision=BEFORE_USERNAME_KEYS)
        with db.engine.begin() as connection:
            for number, name in enumerate(names, 1):
                connection.execute(
                    sa.text(
                        'INSERT INTO "user" (username, email, password_hash, session_token, '
                        "last_seen) VALUES (:name, :email, 'x', :token, CURRENT_TIMESTAMP)"
                    ),
                    {"name": name, "email": f"user{number}@example.com", "token": f"t{number}"},
                )


def test_upgrade_folds_the_names_of_existing_accounts(bare_app):
    add_users_before_folding(bare_app, "Susan", "M1LLER", "bob")
    with bare_app.app_context():
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            keys = connection.execute(
                sa.text('SELECT username, username_key FROM "user" ORDER BY id')
            ).all()
    assert [tuple(row) for row in keys] == [
        ("Susan", "susan"),
        ("M1LLER", "rnlller"),
        ("bob", "bob"),
    ]


def test_upgrade_stops_and_names_accounts_that_fold_together(bare_app, caplog):
    add_users_before_folding(bare_app, "alice", "carol", "aIice", "Carol")
    with bare_app.app_context(), pytest.raises(SystemExit):  # Flask-Migrate exits with 1
        flask_migrate.upgrade()
    report = caplog.text
    assert "id 1 'alice', id 3 'aIice'" in report
    assert "id 2 'carol', id 4 'Carol'" in report
    assert tables(bare_app) == {"user", "post", "followers", "outbox"}  # nothing half-done
    with bare_app.app_context(), db.engine.connect() as connection:
        assert "username_key" not in {
            column["name"] for column in sa.inspect(connection).get_columns("user")
        }


def test_accounts_that_exist_before_the_email_lifecycle_count_as_verified(bare_app):
    with bare_app.app_context():
        flask_migrate.upgrade(revision="0652ef8bf78a")
        with db.engine.begin() as connection:
            connection.execute(
                sa.text(
                    'INSERT INTO "user" (username, email, password_hash, session_token, '
                    "last_seen) VALUES ('old', 'old@example.com', 'x', 't', CURRENT_TIMESTAMP)"
                )
            )
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            verified, created = connection.execute(
                sa.text('SELECT email_verified_at, created_at FROM "user"')
            ).one()
    assert verified is not None and created is not None
