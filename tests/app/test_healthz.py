"""/healthz, as a load balancer sees it: 200 while the database answers, 503 when it does not."""

import pytest

from microblog import create_app
from support.app import app_config, close_app
from support.ports import free_port


@pytest.fixture
def unreachable_app(smtp):
    """Apps on a database that cannot be reached; nothing touches it before the first request."""
    apps = []

    def build(url):
        apps.append(create_app(app_config((url, {}), smtp)))
        return apps[-1]

    yield build
    for app in apps:
        close_app(app, drop=False)


def test_healthz_answers_200_while_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("sqlite:///{tmp_path}/missing/dir/db.sqlite", id="sqlite-missing-directory"),
        pytest.param(
            "postgresql+psycopg://postgres@127.0.0.1:{closed_port}/test", id="postgres-closed-port"
        ),
    ],
)
def test_healthz_answers_503_not_500_when_the_database_is_unreachable(
    tmp_path, unreachable_app, url
):
    """A 500 would read as a bug in the app; a 503 tells the balancer to route elsewhere."""
    app = unreachable_app(url.format(tmp_path=tmp_path, closed_port=free_port()))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "database": "unreachable"}


def test_healthz_recovers_without_a_restart_once_the_database_is_back(tmp_path, unreachable_app):
    """A failed check must not leave the session or pool stuck in the failed state."""
    folder = tmp_path / "later"
    app = unreachable_app(f"sqlite:///{folder}/db.sqlite")
    client = app.test_client()
    assert client.get("/healthz").status_code == 503
    folder.mkdir()
    assert client.get("/healthz").status_code == 200


def test_healthz_needs_no_login_and_sets_no_cookie(client):
    """Balancers probe anonymously and often; each probe must not start a session."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
