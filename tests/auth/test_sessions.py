"""Server-side sessions: sign-out ends them, remember-me expires on the server, devices listed."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.auth.models import SessionRecord
from microblog.auth.sessions import live_records
from microblog.extensions import db
from microblog.mail.housekeeping import run_round
from microblog.models import User
from support.auth import PASSWORD, AuthActions, flashes

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def susan(make_user):
    return make_user("susan")


def device(app, user_agent=FIREFOX_LINUX, address="203.0.113.7"):
    """A browser of its own, with a User-Agent and a client address."""
    client = app.test_client()
    client.environ_base.update({"HTTP_USER_AGENT": user_agent, "REMOTE_ADDR": address})
    return client


def copy_cookies(app, client, *names):
    """Another browser holding copies of these cookies (what a thief would take)."""
    thief = app.test_client()
    for name in names:
        thief.set_cookie(name, client.get_cookie(name).value, domain="localhost")
    return thief


def signed_in(client):
    return "Hi, susan!" in client.get("/index").text


def move_clock(monkeypatch, **delta):
    later = clock.utcnow() + timedelta(**delta)
    monkeypatch.setattr(clock, "utcnow", lambda: later)


def records(app):
    with app.app_context():
        return db.session.scalars(sa.select(SessionRecord).order_by(SessionRecord.id)).all()


def test_a_copied_session_cookie_dies_at_sign_out(app, client, auth, susan):
    auth.login()
    thief = copy_cookies(app, client, "session")
    assert signed_in(thief)
    auth.logout()
    assert not signed_in(thief)
    assert not signed_in(client)


def test_a_copied_remember_cookie_dies_at_sign_out(app, client, auth, susan):
    auth.login(remember_me=True)
    thief = copy_cookies(app, client, "remember_token")
    assert signed_in(thief)
    auth.logout()
    assert not signed_in(thief)


def test_sign_out_deletes_the_remember_cookie(client, auth, susan):
    auth.login(remember_me=True)
    response = auth.logout()
    assert any(c.startswith("remember_token=;") for c in response.headers.getlist("Set-Cookie"))


def test_remember_me_expires_on_the_server_whatever_the_cookie_says(
    app, client, auth, susan, monkeypatch
):
    auth.login(remember_me=True)
    client.delete_cookie("session", domain="localhost")  # the browser was closed
    assert signed_in(client)
    client.delete_cookie("session", domain="localhost")
    lifetime = app.config["REMEMBER_COOKIE_DURATION"]
    move_clock(monkeypatch, seconds=lifetime + 1)
    thief = copy_cookies(app, client, "remember_token")  # a cookie kept past its expiry
    assert not signed_in(thief)
    assert not signed_in(client)


def test_remember_me_lasts_its_duration(app, client, auth, susan, monkeypatch):
    auth.login(remember_me=True)
    client.delete_cookie("session", domain="localhost")
    move_clock(monkeypatch, seconds=app.config["REMEMBER_COOKIE_DURATION"] - 60)
    assert signed_in(client)


def test_a_session_not_remembered_ends_when_idle(app, client, auth, susan, monkeypatch):
    auth.login()
    move_clock(monkeypatch, seconds=app.config["SESSION_IDLE_TIMEOUT"] + 1)
    assert not signed_in(client)


def test_sign_in_starts_a_new_session_and_csrf_secret(client, auth, susan):
    with client.session_transaction() as session:
        session["csrf_token"] = "the secret before sign-in"
        session["left_over"] = "anything"
    auth.login()
    with client.session_transaction() as session:
        assert "left_over" not in session
        assert session.get("csrf_token") != "the secret before sign-in"
        before = session["_user_id"]
    auth.logout()
    auth.login()
    with client.session_transaction() as session:
        assert session["_user_id"] != before


def test_only_a_hash_of_the_session_id_is_stored(app, client, auth, susan):
    auth.login()
    with client.session_transaction() as session:
        session_id = session["_user_id"]
    [record] = records(app)
    assert session_id not in (record.token_hash, str(record.id))
    with app.app_context(), db.engine.connect() as connection:
        dump = "\n".join(
            str(row) for row in connection.execute(sa.text("SELECT * FROM session_record"))
        )
    assert session_id not in dump


def test_last_seen_is_written_at_most_once_a_minute(app, client, auth, susan, monkeypatch):
    auth.login()
    [record] = records(app)
    signed_in(client)
    assert records(app)[0].last_seen_at == record.last_seen_at
    move_clock(monkeypatch, seconds=61)
    signed_in(client)
    assert records(app)[0].last_seen_at > record.last_seen_at


def test_signed_in_pages_are_never_cached(client, auth, susan):
    assert "no-store" not in client.get("/explore").headers.get("Cache-Control", "")
    auth.login()
    for url in ("/index", "/explore", "/user/susan", "/auth/sessions"):
        assert client.get(url).headers["Cache-Control"] == "private, no-store", url


def test_the_devices_page_lists_each_sign_in_and_marks_this_one(app, susan):
    laptop = device(app, FIREFOX_LINUX, "203.0.113.7")
    phone = device(app, SAFARI_IPHONE, "2001:db8:5:6::1")
    AuthActions(laptop).login()
    AuthActions(phone).login(remember_me=True)
    page = laptop.get("/auth/sessions").text
    assert "Firefox on Linux" in page and "Safari on iOS" in page
    assert "203.0.113.x" in page and "203.0.113.7" not in page
    assert "2001:db8:5::/48" in page and "2001:db8:5:6::1" not in page
    assert page.count("This device") == 1
    this = page.index("This device")
    assert page.rfind("Firefox on Linux", 0, this) > page.rfind("Safari on iOS", 0, this)
    assert page.count('action="/auth/sessions/') == 3  # one per device, and "everywhere else"


def test_signing_out_another_device_ends_it_at_once(app, susan):
    laptop, phone = device(app), device(app, SAFARI_IPHONE)
    AuthActions(laptop).login()
    AuthActions(phone).login(remember_me=True)
    [_, phone_record] = records(app)
    answer = laptop.post(f"/auth/sessions/{phone_record.id}/revoke")
    assert answer.headers["Location"] == "/auth/sessions"
    assert "Safari on iOS has been signed out." in flashes(laptop.get("/auth/sessions"))
    assert not signed_in(phone)
    phone.delete_cookie("session", domain="localhost")
    assert not signed_in(phone)  # the remember cookie died too
    assert signed_in(laptop)


def test_sign_out_everywhere_else_keeps_only_this_device(app, susan):
    laptop, phone, tablet = device(app), device(app, SAFARI_IPHONE), device(app)
    for browser in (laptop, phone, tablet):
        AuthActions(browser).login()
    laptop.post("/auth/sessions/revoke_others")
    assert [signed_in(b) for b in (laptop, phone, tablet)] == [True, False, False]
    assert laptop.get("/auth/sessions").text.count("This device") == 1


def test_signing_out_this_device_from_the_list_is_a_sign_out(app, client, auth, susan):
    auth.login()
    [record] = records(app)
    answer = client.post(f"/auth/sessions/{record.id}/revoke")
    assert answer.headers["Location"] == "/auth/login"
    assert not signed_in(client)


def test_nobody_can_sign_out_another_users_device(app, make_user, susan):
    make_user("mallory")
    victim, mallory = device(app), device(app)
    AuthActions(victim).login()
    AuthActions(mallory).login("mallory")
    victim_record = records(app)[0]
    assert mallory.post(f"/auth/sessions/{victim_record.id}/revoke").status_code == 404
    assert signed_in(victim)


@pytest.mark.settings(WTF_CSRF_ENABLED=True)
def test_device_forms_need_the_csrf_token(app, client, susan):
    page = client.get("/auth/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    client.post(
        "/auth/login", data={"username": "susan", "password": PASSWORD, "csrf_token": token}
    )
    [record] = records(app)
    assert client.post(f"/auth/sessions/{record.id}/revoke").status_code == 400
    assert client.post("/auth/sessions/revoke_others").status_code == 400
    assert client.post("/auth/logout").status_code == 400
    assert signed_in(client)


def test_the_devices_page_needs_a_signed_in_user(client):
    assert client.get("/auth/sessions").headers["Location"].startswith("/auth/login?next=")


def test_a_password_change_keeps_this_device_remembered_and_ends_the_others(app, susan):
    laptop, phone = device(app), device(app)
    AuthActions(laptop).login(remember_me=True)
    AuthActions(phone).login()
    laptop.post(
        "/auth/change_password",
        data={
            "current_password": PASSWORD,
            "password": "a brand new passphrase, never used",
            "password2": "a brand new passphrase, never used",
        },
    )
    assert not signed_in(phone)
    laptop.delete_cookie("session", domain="localhost")
    assert signed_in(laptop)  # the new record is remembered, like the one it replaced


def test_ended_records_are_deleted_at_the_next_sign_in(app, client, auth, susan):
    auth.login()
    auth.logout()
    auth.login()
    assert len(records(app)) == 1


# The signed-in devices are listed most recently seen first (ties: the newest sign-in).


def test_the_most_recently_seen_device_comes_first(app, make_user):
    user_id = make_user("susan")
    now = clock.utcnow()
    seen = {"a": now - timedelta(minutes=5), "b": now, "c": now - timedelta(minutes=1), "d": now}
    with app.app_context():
        user = db.session.get(User, user_id)
        for name, last_seen in seen.items():
            db.session.add(
                SessionRecord(
                    token_hash=name * 64,
                    user_id=user_id,
                    user_token=user.session_token,
                    last_seen_at=last_seen,
                    expires_at=now + timedelta(days=1),
                    remembered=True,
                    device=name,
                )
            )
        db.session.commit()
        assert [record.device for record in live_records(user)] == ["d", "b", "c", "a"]


# Any user agent, or none, signs in; the devices page names what it recognises.
#
# The label is for a person scanning the list ("Firefox on Linux"): the parts
# found, and one same label for every agent with neither part.


FIREFOX_ON_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def labels_after_signing_in_with(app, *user_agents):
    """The device label of one sign-in per user agent, in order."""
    for user_agent in user_agents:
        signed_in = app.test_client().post(
            "/auth/login",
            data={"username": "susan", "password": PASSWORD},
            headers={"User-Agent": user_agent},
        )
        assert signed_in.headers["Location"] == "/index"
    with app.app_context():
        return list(db.session.scalars(sa.select(SessionRecord.device).order_by(SessionRecord.id)))


def test_any_user_agent_or_none_signs_in_and_is_labelled(app, make_user):
    make_user("susan")
    both, browser, system, neither, empty = labels_after_signing_in_with(
        app, FIREFOX_ON_LINUX, "Firefox/133.0", "SomeApp (Linux)", "SomeBot/1.0", ""
    )
    assert both.startswith("Firefox ") and both.endswith(" Linux")
    assert (browser, system) == ("Firefox", "Linux")
    assert neither == empty
    assert neither and "None" not in neither and "SomeBot" not in neither


# The table stays bounded: sessions per account are capped, ended ones are deleted.


@pytest.mark.settings(MAX_SESSIONS_PER_ACCOUNT=3)
def test_an_account_keeps_at_most_max_sessions_the_least_recently_used_end(app, susan, monkeypatch):
    browsers = []
    for n in range(5):
        move_clock(monkeypatch, minutes=2)  # each later than the one before
        browsers.append(device(app, address=f"203.0.113.{n + 1}"))
        AuthActions(browsers[-1]).login()
    assert len(records(app)) == 3
    assert [signed_in(b) for b in browsers] == [False, False, True, True, True]


def test_housekeeping_deletes_every_accounts_ended_sessions(app, susan, make_user, monkeypatch):
    make_user("bob")
    for name in ("susan", "bob"):
        AuthActions(device(app)).login(name)  # not remembered: ends when idle
    remembered = device(app)
    AuthActions(remembered).login("susan", remember_me=True)
    move_clock(monkeypatch, seconds=app.config["SESSION_IDLE_TIMEOUT"] + 1)
    with app.app_context():
        assert run_round()["session_record"] == 2
    assert len(records(app)) == 1
    assert signed_in(remembered)
