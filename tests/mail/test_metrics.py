"""`/metrics`: Prometheus figures of the outbox, for the holder of METRICS_TOKEN only."""

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from microblog.extensions import db
from microblog.mail import metrics
from support.app import build_app, close_app
from support.outbox import queue_emails

TOKEN = "metrics-token-for-the-tests-0123456789"

pytestmark = pytest.mark.settings(METRICS_TOKEN=TOKEN)


def scrape(client, token=TOKEN):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ],
    ids=["no token", "wrong token", "longer token", "no scheme", "basic"],
)
def test_metrics_are_not_found_without_the_right_bearer_token(client, headers):
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 404
    assert "microblog_mail" not in response.text


@pytest.mark.settings(METRICS_TOKEN=None)
def test_metrics_are_not_found_when_no_token_is_configured(client):
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
        assert client.get("/metrics", headers=headers).status_code == 404


def test_the_right_token_gets_the_figures(client):
    samples = scrape(client)
    assert samples["microblog_mail_outbox_messages", (("state", "pending"),)] == 0
    assert samples["microblog_mail_circuit_open", ()] == 0


def test_metrics_count_what_delivery_did(app, client, smtp, deliver):
    smtp.mailbox.rejected_recipients.add("gone@example.com")
    smtp.mailbox.deferred_recipients.add("busy@example.com")
    queue_emails(app, 3)  # tag "test"
    queue_emails(app, 1, recipients=["gone@example.com"])
    queue_emails(app, 1, recipients=["busy@example.com"])
    deliver()

    samples = scrape(client)
    assert samples["microblog_mail_sent_total", (("tag", "test"),)] == 3
    assert samples["microblog_mail_failed_total", (("tag", "test"),)] == 1
    assert samples["microblog_mail_retried_total", (("tag", "test"),)] == 1
    depth = {
        state: samples["microblog_mail_outbox_messages", (("state", state),)]
        for state in ("pending", "sending", "sent", "failed", "dropped")
    }
    assert depth == {"pending": 1, "sending": 0, "sent": 3, "failed": 1, "dropped": 0}
    assert samples["microblog_mail_oldest_pending_age_seconds", ()] >= 0
    assert samples["microblog_mail_send_seconds_count", ()] == 3
    assert samples["microblog_mail_send_seconds_bucket", (("le", "+Inf"),)] == 3
    assert samples["microblog_mail_send_seconds_sum", ()] > 0
    buckets = [value for (name, _), value in samples.items() if name.endswith("_seconds_bucket")]
    assert buckets == sorted(buckets)  # cumulative


def test_every_process_reports_the_same_figures(app, database_url, smtp, deliver):
    """Figures come from the database: another gunicorn worker answers the same."""
    other = build_app(database_url, smtp, METRICS_TOKEN=TOKEN)
    try:
        queue_emails(app, 2)
        deliver()  # delivered by the first process
        assert scrape(other.test_client()) == scrape(app.test_client())
        assert scrape(other.test_client())["microblog_mail_sent_total", (("tag", "test"),)] == 2
    finally:
        close_app(other, drop=False)


def test_an_open_circuit_shows_until_it_closes(app, client):
    with app.app_context():
        metrics.set_circuit(db.session, True)
    assert scrape(client)["microblog_mail_circuit_open", ()] == 1
    with app.app_context():
        metrics.set_circuit(db.session, False)
    assert scrape(client)["microblog_mail_circuit_open", ()] == 0


def test_mail_status_shows_the_same_figures(app, client, smtp, deliver):
    queue_emails(app, 2)
    deliver()
    smtp.mailbox.max_connections = 0
    queue_emails(app, 1)
    deliver()  # held back, untried: the server's failure, no message's retry
    samples = scrape(client)
    output = app.test_cli_runner().invoke(args=["mail", "status"]).output
    assert re.search(r"^\s*sent: 2$", output, re.M)
    assert "sent by tag: test 2" in output
    assert "retried by tag: none" in output
    assert "failed by tag: none" in output
    assert f"SMTP send time: {samples['microblog_mail_send_seconds_count', ()]:.0f} sends" in output
    assert "circuits open (processes holding mail back): 0" in output


@pytest.mark.settings(LOGIN_FAILURES_PER_ACCOUNT=2)
def test_each_kind_of_account_email_is_counted_under_its_own_tag(
    app, client, auth, make_user, deliver
):
    """What an operator graphs per kind: every deferring call site names its kind."""
    from support.auth import PASSWORD, AuthActions

    new_password = "a brand new passphrase, never used"
    auth.register("amy")  # verify_email
    make_user("susan")
    auth.register("amy2", email="susan@example.com")  # address_taken, to susan
    auth.request_reset()  # password_reset
    deliver()  # before the password changes, which kills the reset link still queued
    auth.login()  # the account's first browser: recorded silently
    AuthActions(app.test_client()).login()  # new_sign_in
    client.post(
        "/auth/change_password",
        data={"current_password": PASSWORD, "password": new_password, "password2": new_password},
    )  # password_changed
    client.post("/auth/change_email", data={"email": "s2@example.com", "password": new_password})
    make_user("bob")
    for _ in range(2):
        AuthActions(app.test_client()).login("bob", password="a wrong guess")  # login_paused
    deliver()  # before the deletion, which drops what is still queued for her
    client.post("/auth/delete_account", data={"password": new_password})  # account_deleted
    deliver()

    sent = {
        dict(labels)["tag"]: value
        for (name, labels), value in scrape(client).items()
        if name == "microblog_mail_sent_total"
    }
    assert sent == dict.fromkeys(
        (
            "verify_email",
            "address_taken",
            "password_reset",
            "new_sign_in",
            "password_changed",
            "change_email",
            "email_change_notice",
            "login_paused",
            "account_deleted",
        ),
        1,
    )
