"""Limits: per client IP on the account forms (Flask-Limiter), per account on reset emails."""

import contextlib
import ipaddress
import threading
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.auth import emails
from microblog.auth.tokens import make_reset_token
from microblog.extensions import db
from microblog.mail.delivery import deliver_due
from microblog.mail.outbox import OutboxMessage
from microblog.models import User
from support.app import build_app, close_app
from support.auth import PASSWORD

ANOTHER_IP = {"REMOTE_ADDR": "203.0.113.9"}
NEW_PASSWORD = "a brand new passphrase, never used"


def reset_form_session(app, client):
    """Put a live reset token for Susan in this client's session (the emailed link's GET)."""
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == "susan"))
        token = make_reset_token(user)
    client.get(f"/auth/reset_password/{token}")


def limited(name, setting, url, **data):
    """One form, with its per-IP limit set to 2 a minute."""
    marks = pytest.mark.settings(RATELIMIT_ENABLED=True, **{setting: "2 per minute"})
    return pytest.param(url, data, marks=marks, id=name)


@pytest.mark.parametrize(
    ("url", "data"),
    [
        limited(
            "reset request", "RESET_RATE_LIMIT", "/auth/reset_password_request", email="x@y.ex"
        ),
        limited("login", "LOGIN_RATE_LIMIT", "/auth/login", username="susan", password=PASSWORD),
        limited("reset form", "RESET_RATE_LIMIT", "/auth/reset_password", password="too short"),
        limited("register", "REGISTER_RATE_LIMIT", "/auth/register", username="x"),
    ],
)
def test_posts_past_the_per_ip_limit_get_a_friendly_429(app, client, make_user, url, data):
    make_user("susan")
    reset_form_session(app, client)

    answers = [client.post(url, data=data) for _ in range(3)]
    assert 429 not in [answer.status_code for answer in answers[:2]]
    refused = answers[2]
    assert refused.status_code == 429
    assert "Too many attempts from your address" in refused.text
    assert int(refused.headers["Retry-After"]) > 0
    assert client.get(url).status_code != 429  # reading the page is not limited
    assert app.test_client().post(url, data=data, environ_base=ANOTHER_IP).status_code != 429


@pytest.mark.settings(RATELIMIT_ENABLED=False, RESET_RATE_LIMIT="1 per minute")
def test_limits_can_be_turned_off_for_load_tests(client):
    for _ in range(5):
        answer = client.post("/auth/reset_password_request", data={"email": "x@y.example"})
        assert answer.headers["Location"] == "/auth/login"


def redis_url():
    try:
        import redis

        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.5).ping()
    except Exception:  # any failure to reach it: not installed, refused, timed out
        return None
    return "redis://127.0.0.1:6379/0"


@pytest.mark.skipif(redis_url() is None, reason="no Redis on 127.0.0.1:6379")
def test_the_per_ip_limits_can_live_in_redis(database_url, smtp, request):
    """Shared by every gunicorn worker and host: counted in Redis, not in one process."""
    import redis

    app = build_app(
        database_url,
        smtp,
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI=redis_url(),
        RESET_RATE_LIMIT="2 per minute",
    )
    request.addfinalizer(lambda: close_app(app, drop=False))
    # This test's own keys: a /64 of its own (the per-IP key of an IPv6 client).
    network = ipaddress.IPv6Network((uuid.uuid4().int >> 64 << 64, 64))
    environ = {"REMOTE_ADDR": str(network[1])}
    client_ip = str(network)
    store = redis.Redis(host="127.0.0.1", port=6379)
    request.addfinalizer(lambda: [store.delete(key) for key in store.scan_iter(f"*{client_ip}*")])

    url, data = "/auth/reset_password_request", {"email": "x@y.example"}
    for _ in range(2):
        answer = app.test_client().post(url, data=data, environ_base=environ)
        assert answer.headers["Location"] == "/auth/login"
    assert list(store.scan_iter(f"*{client_ip}*"))
    assert app.test_client().post(url, data=data, environ_base=environ).status_code == 429


# --- Per account: counted in the outbox table -------------------------------------------------


def ask(app, times, email="susan@example.com"):
    for _ in range(times):
        answer = app.test_client().post("/auth/reset_password_request", data={"email": email})
        assert answer.headers["Location"] == "/auth/login"


def test_an_account_gets_at_most_three_reset_emails_an_hour_even_with_ip_limits_off(
    app, make_user, deliver, smtp
):
    assert app.config["RATELIMIT_ENABLED"] is False
    make_user("susan")
    ask(app, 5)
    deliver()
    assert len(smtp.wait_for(3)) == 3
    deliver()
    assert len(smtp.messages) == 3


@pytest.mark.settings(ACCOUNT_EMAILS_PER_HOUR=1)
def test_the_per_account_limit_is_configurable(app, make_user, deliver, smtp):
    make_user("susan")
    make_user("tom")
    ask(app, 3)
    ask(app, 2, "tom@example.com")
    deliver()
    assert sorted(m["To"] for m in smtp.wait_for(2)) == ["susan@example.com", "tom@example.com"]


def test_the_limit_is_a_sliding_hour(app, make_user, deliver, smtp, monkeypatch):
    make_user("susan")
    ask(app, 4)
    deliver()
    smtp.wait_for(3)
    later = clock.utcnow() + timedelta(minutes=61)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    ask(app, 1)
    deliver()
    assert len(smtp.wait_for(4)) == 4


def test_mail_that_fails_still_counts(app, make_user, deliver, smtp):
    """Otherwise a refusing mailbox would let a bomber retry for ever."""
    make_user("susan")
    smtp.mailbox.rejected_recipients = {"susan@example.com"}
    ask(app, 5)
    deliver()
    with app.app_context():
        states = db.session.scalars(sa.select(OutboxMessage.state).order_by(OutboxMessage.id))
        assert list(states) == ["failed"] * 3 + ["dropped"] * 2


def test_the_limit_holds_across_app_instances_on_one_database(
    app, database_url, smtp, make_user, deliver
):
    """Two apps on one database: two gunicorn workers, or two hosts."""
    make_user("susan")
    other = build_app(database_url, smtp)
    try:
        ask(app, 2)
        ask(other, 2)
        with other.app_context():
            deliver_due()
        deliver()
        ask(other, 1)
        with other.app_context():
            deliver_due()
    finally:
        close_app(other, drop=False)
    assert len(smtp.wait_for(3)) == 3
    assert len(smtp.messages) == 3


def test_two_mail_workers_cannot_both_take_the_last_slot(app, make_user, smtp, monkeypatch):
    """Each composer locks the account's row before counting.

    The token maker (called after the count) is wrapped with a barrier: without
    the lock, both workers count two emails and both send a third and a fourth;
    with it, the second waits for the first to commit (the barrier gives up
    after half a second) and counts three.
    """
    make_user("susan")
    ask(app, 2)
    with app.app_context():
        deliver_due()
    smtp.wait_for(2)
    ask(app, 2)

    both_counted = threading.Barrier(2, timeout=0.5)

    def token_when_both_counted(user):
        with contextlib.suppress(threading.BrokenBarrierError):
            both_counted.wait()
        return make_reset_token(user)

    monkeypatch.setattr(emails, "make_reset_token", token_when_both_counted)
    start = threading.Barrier(2)

    def work():
        start.wait()
        with app.app_context():
            deliver_due()

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert len(smtp.wait_for(3)) == 3
    with app.app_context():
        states = list(db.session.scalars(sa.select(OutboxMessage.state)))
    assert sorted(states) == ["dropped"] + ["sent"] * 3


# The per-IP limits see a network: IPv6 per /64, IPv4 per address.


def login_from(app, address, headers=None):
    return app.test_client().post(
        "/auth/login",
        data={"username": "nobody", "password": "a wrong guess"},
        environ_base={"REMOTE_ADDR": address},
        headers=headers or {},
    )


@pytest.mark.settings(RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="2 per minute")
def test_ipv6_clients_share_the_limit_of_their_64(app):
    same_network = ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2:abcd:1:2:3"]
    answers = [login_from(app, address).status_code for address in same_network]
    assert answers[:2] != [429, 429] and answers[2] == 429
    assert login_from(app, "2001:db8:1:3::1").status_code != 429  # the next /64 is another


@pytest.mark.settings(RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="2 per minute")
def test_ipv4_clients_are_limited_per_address(app):
    for _ in range(2):
        login_from(app, "198.51.100.7")
    assert login_from(app, "198.51.100.7").status_code == 429
    assert login_from(app, "198.51.100.8").status_code != 429
    assert login_from(app, "::ffff:198.51.100.7").status_code == 429  # the same IPv4 client


@pytest.mark.settings(
    RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="2 per minute", RATELIMIT_IPV6_PREFIX=48
)
def test_the_ipv6_prefix_is_a_setting(app):
    for address in ("2001:db8:1:2::1", "2001:db8:1:3::1"):
        login_from(app, address)
    assert login_from(app, "2001:db8:1:4::1").status_code == 429


@pytest.mark.settings(RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="2 per minute")
def test_a_forwarded_for_header_is_not_believed_without_a_proxy(app):
    for n in range(2):
        login_from(app, "198.51.100.7", {"X-Forwarded-For": f"2001:db8:{n}::1"})
    spoofed = login_from(app, "198.51.100.7", {"X-Forwarded-For": "2001:db8:9::1"})
    assert spoofed.status_code == 429
