"""The new sign-in notice: the owner hears of a browser that never signed in to the account."""

import logging
import secrets
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.auth.devices import COOKIE_NAME, fingerprint
from microblog.auth.models import KnownDevice
from microblog.extensions import db
from microblog.mail.housekeeping import run_round
from microblog.mail.outbox import OutboxMessage
from support.auth import PASSWORD, AuthActions, last_email
from support.gunicorn import database_url_for_env, register
from support.gunicorn import sign_in as gunicorn_sign_in
from support.smtp import html_of, text_of
from support.visitor import Visitor

NOTICE = "New sign-in to your account"
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def browser(app, user_agent=FIREFOX_LINUX, address="203.0.113.7"):
    """A browser of its own (a fresh test client: no cookies), with a User-Agent and an IP."""
    client = app.test_client()
    client.environ_base.update({"HTTP_USER_AGENT": user_agent, "REMOTE_ADDR": address})
    return client


def sign_in(client, username="susan"):
    """Sign in and out again, as a person who closes the session."""
    actions = AuthActions(client)
    response = actions.login(username)
    assert response.headers["Location"] == "/index", response.text
    actions.logout()
    return response


def notices(smtp, deliver, to="susan@example.com"):
    deliver()
    return [
        m
        for m in smtp.messages
        if m["Subject"] == f"[Microblog] {NOTICE}" and to in m.envelope_recipients
    ]


def known_devices(app):
    with app.app_context():
        return db.session.scalars(sa.select(KnownDevice).order_by(KnownDevice.id)).all()


def device_cookie(response):
    [header] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(COOKIE_NAME)]
    return header


def test_a_new_browser_gets_the_owner_a_notice_with_browser_system_network_and_link(
    app, make_user, deliver, smtp
):
    make_user("susan")
    sign_in(browser(app))  # her own browser, silently known
    sign_in(browser(app, SAFARI_IPHONE, "198.51.100.23"))
    [notice] = notices(smtp, deliver)
    assert notice.envelope_recipients == ["susan@example.com"]
    for part in (text_of(notice), html_of(notice)):
        assert "Dear susan" in part
        assert "Safari on iOS" in part
        assert "198.51.100.x" in part and "198.51.100.23" not in part
        assert "http://localhost/auth/sessions" in part
        assert "http://localhost/auth/change_password" in part
        assert f"{clock.utcnow():%B} {clock.utcnow().day}, {clock.utcnow().year}" in part
    assert "Sign that device out" in " ".join(text_of(notice).split())


def test_the_same_browser_signing_in_again_sends_nothing(app, make_user, deliver, smtp):
    make_user("susan")
    sign_in(browser(app))
    phone = browser(app, SAFARI_IPHONE)
    for _ in range(3):
        sign_in(phone)
    assert len(notices(smtp, deliver)) == 1
    assert len(known_devices(app)) == 2


def test_the_first_sign_in_after_verification_sends_nothing(app, client, auth, deliver, smtp):
    auth.sign_up("susan")
    sign_in(client)
    assert notices(smtp, deliver) == []
    assert len(known_devices(app)) == 1
    sign_in(browser(app))  # the next browser is news
    assert len(notices(smtp, deliver)) == 1


def test_a_browser_whose_cookies_were_cleared_is_a_new_browser(app, make_user, deliver, smtp):
    make_user("susan")
    laptop = browser(app)
    sign_in(laptop)
    laptop.delete_cookie(COOKIE_NAME, domain="localhost", path="/auth/login")
    sign_in(laptop)
    assert len(notices(smtp, deliver)) == 1


def test_each_account_on_a_browser_knows_it_separately(app, make_user, deliver, smtp):
    make_user("susan")
    make_user("bob")
    sign_in(browser(app), "susan")
    sign_in(browser(app), "bob")
    shared = browser(app, SAFARI_IPHONE)
    sign_in(shared, "susan")  # new to susan
    sign_in(shared, "bob")  # known to nobody but susan: new to bob too
    sign_in(shared, "susan")
    sign_in(shared, "bob")
    deliver()
    susans, bobs = notices(smtp, deliver), notices(smtp, deliver, "bob@example.com")
    assert len(susans) == 1 and len(bobs) == 1
    assert "Dear bob" in text_of(bobs[0]) and "susan" not in text_of(bobs[0])


def test_the_database_holds_a_hash_per_account_not_the_device_cookie(app, make_user):
    make_user("susan")
    make_user("bob")
    shared = browser(app)
    sign_in(shared, "susan")
    sign_in(shared, "bob")
    cookie = shared.get_cookie(COOKIE_NAME, domain="localhost", path="/auth/login").value
    device_id = cookie.partition(".")[0]  # the id, then its signature
    rows = known_devices(app)
    assert [row.device_hash for row in rows] == [
        fingerprint(row.user_id, device_id) for row in rows
    ]
    assert rows[0].device_hash != rows[1].device_hash  # two accounts, nothing in common
    stored = [str(value) for row in rows for value in vars(row).values()]
    assert not any(device_id in value for value in stored)


def test_the_notice_is_queued_once_per_browser_even_when_sign_ins_race(app, make_user):
    """Two sign-ins from one new browser at once: one known row, one notice.

    The barrier starts both requests together; it cannot force their
    statements to interleave, so this checks the outcome, not the schedule.
    """
    make_user("susan")
    sign_in(browser(app))
    device_id = secrets.token_urlsafe(32)  # one browser, two tabs
    twins = [browser(app, SAFARI_IPHONE) for _ in range(2)]
    for twin in twins:
        twin.set_cookie(COOKIE_NAME, device_id, domain="localhost", path="/auth/login")
    barrier = threading.Barrier(2)
    statuses = []

    def race(client):
        barrier.wait()
        statuses.append(AuthActions(client).login().headers.get("Location"))

    threads = [threading.Thread(target=race, args=(twin,)) for twin in twins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == ["/index", "/index"]
    with app.app_context():
        queued = db.session.scalars(
            sa.select(OutboxMessage).where(OutboxMessage.tag == "new_sign_in")
        ).all()
    assert len(queued) == 1
    assert len(known_devices(app)) == 2


def test_someone_clearing_cookies_at_every_try_gets_the_owner_a_few_notices_only(
    app, make_user, deliver, smtp
):
    make_user("susan")
    sign_in(browser(app))
    for _ in range(app.config["ACCOUNT_EMAILS_PER_HOUR"] + 3):
        sign_in(browser(app, SAFARI_IPHONE))
        deliver()
    assert len(notices(smtp, deliver)) == app.config["ACCOUNT_EMAILS_PER_HOUR"]


def test_a_deleted_account_gets_no_notice(app, make_user, deliver, smtp):
    make_user("susan")
    sign_in(browser(app))
    phone = browser(app, SAFARI_IPHONE)
    AuthActions(phone).login()
    phone.post("/auth/delete_account", data={"password": PASSWORD})
    assert notices(smtp, deliver) == []
    assert known_devices(app) == []


def test_a_browser_unseen_for_longer_than_the_cookie_lasts_is_forgotten(
    app, make_user, monkeypatch
):
    make_user("susan")
    sign_in(browser(app))
    later = clock.utcnow() + timedelta(seconds=app.config["DEVICE_COOKIE_DURATION"] + 1)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    sign_in(browser(app, SAFARI_IPHONE))
    assert len(known_devices(app)) == 1


def test_a_browser_in_use_is_never_forgotten(app, make_user, monkeypatch, caplog):
    """Each sign-in renews the browser's last sighting, so only unused browsers expire."""
    user_id = make_user("susan")
    laptop = browser(app)
    sign_in(laptop)
    sign_in(browser(app, SAFARI_IPHONE))
    assert f"login.new_device user={user_id}" in caplog.messages  # the audit trail names her
    lifetime = timedelta(seconds=app.config["DEVICE_COOKIE_DURATION"])
    later = clock.utcnow() + lifetime * 0.9
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    sign_in(laptop)
    later += lifetime * 0.2  # past the first sign-in's lifetime, within the second's
    sign_in(browser(app, "a third browser"))
    assert [device.first_seen_at < device.last_seen_at for device in known_devices(app)] == [
        True,
        False,
    ]


def test_a_known_browser_keeps_its_id_and_a_made_up_one_gets_a_fresh_id(app, make_user):
    make_user("susan")
    laptop = browser(app)
    sign_in(laptop)
    device_id = laptop.get_cookie(COOKIE_NAME, domain="localhost", path="/auth/login").value
    sign_in(laptop)
    assert laptop.get_cookie(COOKIE_NAME, domain="localhost", path="/auth/login").value == device_id
    laptop.set_cookie(COOKIE_NAME, "made-up", domain="localhost", path="/auth/login")
    sign_in(laptop)
    fresh = laptop.get_cookie(COOKIE_NAME, domain="localhost", path="/auth/login").value
    assert fresh not in ("made-up", device_id) and len(fresh) == len(device_id)
    assert len(known_devices(app)) == 2


def test_the_device_cookie_is_long_lived_httponly_lax_and_scoped_to_sign_in(app, make_user):
    make_user("susan")
    cookie = device_cookie(AuthActions(browser(app)).login())
    attributes = [part.strip() for part in cookie.split(";")]
    assert f"Max-Age={app.config['DEVICE_COOKIE_DURATION']}" in attributes
    assert app.config["DEVICE_COOKIE_DURATION"] >= 365 * 24 * 3600
    assert "HttpOnly" in attributes and "SameSite=Lax" in attributes
    assert "Path=/auth/login" in attributes


@pytest.mark.parametrize(
    "scheme",
    [
        pytest.param(scheme, marks=pytest.mark.settings(PREFERRED_URL_SCHEME=scheme))
        for scheme in ["http", "https"]
    ],
)
def test_the_device_cookie_is_secure_exactly_when_the_site_is_https(app, make_user, scheme):
    make_user("susan")
    response = AuthActions(browser(app)).login()
    assert ("Secure" in device_cookie(response).split("; ")) == (scheme == "https")


@pytest.mark.settings(SESSION_COOKIE_SECURE=True)
def test_the_device_cookie_is_secure_whenever_the_session_cookie_is(app, make_user):
    make_user("susan")
    response = AuthActions(browser(app)).login()
    session = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert "Secure" in session[0].split("; ")
    assert "Secure" in device_cookie(response).split("; ")


def test_nothing_sensitive_reaches_the_log(app, make_user, deliver, smtp, caplog):
    caplog.set_level(logging.DEBUG)
    make_user("susan")
    sign_in(browser(app))
    phone = browser(app, SAFARI_IPHONE, "198.51.100.23")
    sign_in(phone)
    notices(smtp, deliver)
    device_id = phone.get_cookie(COOKIE_NAME, domain="localhost", path="/auth/login").value
    records = [r for r in caplog.records if not r.name.startswith(("mail.log", "aiosmtpd"))]
    logged = "\n".join(r.getMessage() for r in records)
    assert any(
        r.getMessage().startswith("login.new_device user=")
        for r in records
        if r.name == "microblog.audit"
    )
    for secret in [device_id, device_id[:20], "198.51.100.23", "susan@example.com"]:
        assert secret not in logged, secret
    assert last_email(smtp, NOTICE)


@pytest.mark.gunicorn
def test_under_gunicorn_a_second_browser_gets_the_owner_one_notice(
    gunicorn,
    database_url,
    smtp,
):
    """As deployed: two workers, the mail threads composing from the outbox row."""
    register(Visitor(gunicorn.base_url), "susan", smtp)
    assert gunicorn_sign_in(Visitor(gunicorn.base_url), "susan", PASSWORD).location == "/index"
    phone = Visitor(gunicorn.base_url)
    assert gunicorn_sign_in(phone, "susan", PASSWORD).location == "/index"
    notice = smtp.wait_for(2)[-1]
    assert notice["Subject"] == f"[Microblog] {NOTICE}"
    assert "Network: 127.0.0.x" in text_of(notice)  # the server host is 127.0.0.1 too
    assert f"{gunicorn.base_url}/auth/sessions" in text_of(notice)
    token = phone.get("/index").csrf_token()
    assert phone.request("/auth/logout", {"csrf_token": token}).location == "/auth/login"
    assert gunicorn_sign_in(phone, "susan", PASSWORD).location == "/index"  # known now
    engine = sa.create_engine(database_url_for_env(database_url))
    with engine.connect() as connection:
        tags = connection.execute(sa.text("SELECT tag FROM outbox")).scalars().all()
    engine.dispose()
    assert sorted(tags) == ["new_sign_in", "verify_email"]


# The table stays bounded: a browser is forgotten once its cookie has expired.


def test_known_browsers_are_forgotten_with_their_cookie(app, make_user, monkeypatch):
    make_user("susan")
    make_user("bob")
    for _ in range(3):
        sign_in(browser(app))  # a browser that drops its cookies each time
    sign_in(browser(app), "bob")
    assert len(known_devices(app)) == 4
    later = clock.utcnow() + timedelta(seconds=app.config["DEVICE_COOKIE_DURATION"] - 60)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    kept = browser(app)
    sign_in(kept, "bob")  # seen again: it stays
    gone = later + timedelta(seconds=120)
    monkeypatch.setattr(clock, "utcnow", lambda: gone)
    with app.app_context():
        assert run_round()["known_device"] == 4  # every account's, by housekeeping
    assert len(known_devices(app)) == 1


# After a reset or an address change, every browser is new again.


def reset_password(app, deliver, smtp, new_password):
    """The owner resets her password from the emailed link, in a browser of her own."""
    from urllib.parse import urlsplit

    from support.auth import reset_link

    owner = AuthActions(browser(app, SAFARI_IPHONE, "198.51.100.23"))
    owner.request_reset()
    deliver()
    owner.client.get(urlsplit(reset_link(last_email(smtp, "Reset your password"))).path)
    data = {"password": new_password, "password2": new_password}
    assert owner.client.post("/auth/reset_password", data=data).status_code == 302


def test_after_a_reset_a_browser_that_signed_in_before_is_announced_again(
    app, make_user, deliver, smtp
):
    """Mallory's browser was known; the owner resets; its next sign-in is not unannounced."""
    new_password = "a brand new passphrase, never used"
    make_user("susan")
    mallory = browser(app)
    sign_in(mallory)
    sign_in(mallory)  # known now: no notice
    assert notices(smtp, deliver) == []
    reset_password(app, deliver, smtp, new_password)
    response = AuthActions(mallory).login(password=new_password)  # she learnt the new one
    assert response.headers["Location"] == "/index"
    assert len(notices(smtp, deliver)) == 1


def test_an_address_change_signs_out_every_other_session_and_forgets_the_browsers(
    app, make_user, deliver, smtp
):
    from urllib.parse import urlsplit

    from support.auth import email_link

    make_user("susan")
    intruder, owner = browser(app), browser(app, SAFARI_IPHONE, "198.51.100.23")
    AuthActions(intruder).login()
    AuthActions(owner).login()
    data = {"email": "susan.new@example.com", "password": PASSWORD}
    assert owner.post("/auth/change_email", data=data).status_code == 302
    deliver()
    link = email_link(last_email(smtp, "Confirm your new email address"), "confirm_email")
    assert owner.post(urlsplit(link).path).headers["Location"] == "/index"

    assert owner.get("/index").status_code == 200  # the session that confirmed goes on
    assert intruder.get("/index").headers["Location"].startswith("/auth/login")
    assert AuthActions(intruder).login("susan").headers["Location"] == "/index"
    assert len(notices(smtp, deliver, to="susan.new@example.com")) == 1
