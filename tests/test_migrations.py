"""The migrations in microblog/migrations build the schema the models describe."""

import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from conftest import test_config
from microblog import create_app
from microblog.extensions import db

TABLES = {"user", "post", "followers", "outbox", "timeline_entry"}


@pytest.fixture
def bare_app(database_url, smtp):
    """An app whose database has no schema yet."""
    app = create_app(test_config(database_url, smtp))
    yield app
    with app.app_context():
        db.engine.dispose()


def tables(app):
    with app.app_context():
        return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


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
            differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert differences == []


def test_db_upgrade_command_creates_the_schema(bare_app):
    result = bare_app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert tables(bare_app) == TABLES
