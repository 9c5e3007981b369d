"""Per-account sign-in throttling: guesses from many addresses pause the account."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.auth import passwords
from microblog.auth.models import KnownDevice, LoginThrottle
from microblog.extensions import db
from microblog.mail.housekeeping import run_round
from support.auth import PASSWORD, flashes, reset_link
from support.gunicorn import register, sign_in
from support.smtp import html_of, text_of
from support.visitor import Visitor

NEW_PASSWORD = "a brand new passphrase, never used"
ADDRESSES = [f"198.51.{n}.{10 + n}" for n in range(6)]
PAUSED = "Sign-in is paused for this account"


def attempt(app, username, password, address):
    """One sign-in from a fresh browser at `address`."""
    return app.test_client().post(
        "/auth/login",
        data={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def guess_wrong(app, username, times):
    """Wrong passwords spread over six client addresses, as a botnet would."""
    return [
        attempt(app, username, f"wrong guess number {n}", ADDRESSES[n % len(ADDRESSES)])
        for n in range(times)
    ]


def shape(response):
    """What a guesser sees: status, flashed messages, and whether the pause notice shows."""
    return response.status_code, flashes(response), PAUSED in response.text


def move_clock(monkeypatch, **delta):
    later = clock.utcnow() + timedelta(**delta)
    monkeypatch.setattr(clock, "utcnow", lambda: later)


def stored_pause(app):
    with app.app_context():
        return db.session.scalars(
            sa.select(LoginThrottle.paused_until).where(LoginThrottle.user_id.is_not(None))
        ).all()


@pytest.fixture
def susan(make_user):
    return make_user("susan")


def test_twelve_guesses_from_six_addresses_pause_the_account_even_for_the_right_password(
    app, susan
):
    answers = guess_wrong(app, "susan", 12)
    assert [a.status_code for a in answers[:9]] == [200] * 9
    assert all("Invalid username or password." in flashes(a) for a in answers[:9])
    assert [a.status_code for a in answers[9:]] == [429] * 3
    refused = attempt(app, "susan", PASSWORD, "192.0.2.200")  # the owner, elsewhere
    assert refused.status_code == 429
    assert PAUSED in refused.text
    assert 'href="/auth/reset_password_request"' in refused.text
    assert "Location" not in refused.headers


def test_the_pause_holds_with_the_per_ip_limits_off(app, susan):
    assert app.config["RATELIMIT_ENABLED"] is False  # as the test config, and load tests, run
    guess_wrong(app, "susan", 10)
    assert attempt(app, "susan", PASSWORD, "192.0.2.1").status_code == 429


def test_the_name_and_the_address_are_counted_apart_so_nothing_links_them(app, susan):
    """Nine failures by address, then one by name: no pause, as for two strangers' spellings."""

    def probe(address, name):
        answers = [shape(attempt(app, address, f"wrong {n}", ADDRESSES[0])) for n in range(9)]
        return [*answers, shape(attempt(app, name, "wrong by name", ADDRESSES[1]))]

    known, unknown = probe("SUSAN@example.com", "susan"), probe("nobody@example.com", "nobody")
    assert known == unknown
    assert not any(paused for _status, _flashes, paused in known)
    assert attempt(app, "Susan", PASSWORD, ADDRESSES[2]).headers["Location"] == "/index"


def test_each_identifier_of_an_account_pauses_at_the_same_limit_as_an_unknown_one(app, susan):
    guess_wrong(app, "susan@example.com", 10)
    assert PAUSED in attempt(app, "susan@example.com", PASSWORD, ADDRESSES[0]).text
    # The name is a bucket of its own: an account allows twice the limit per window.
    assert [a.status_code for a in guess_wrong(app, "susan", 9)] == [200] * 9
    assert PAUSED in attempt(app, "susan", "the tenth by name", ADDRESSES[0]).text
    assert PAUSED in attempt(app, "Susan", PASSWORD, ADDRESSES[0]).text


def test_no_row_is_kept_for_an_identifier_that_never_failed(app, susan):
    for _ in range(3):
        assert attempt(app, "susan", PASSWORD, ADDRESSES[0]).headers["Location"] == "/index"
    assert throttle_rows(app) == 0
    attempt(app, "susan", "one wrong guess", ADDRESSES[0])
    assert throttle_rows(app) == 1
    attempt(app, "susan", PASSWORD, ADDRESSES[0])  # the streak is over: its row goes
    assert throttle_rows(app) == 0


def throttle_rows(app):
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(LoginThrottle))


def test_the_owner_is_emailed_once_per_pause_with_masked_addresses(app, susan, deliver, smtp):
    guess_wrong(app, "susan", 14)
    deliver()
    [notice] = smtp.wait_for(1)
    assert notice["To"] == "susan@example.com"
    assert notice["Subject"] == "[Microblog] Sign-in to your account is paused"
    text = text_of(notice)
    for address in ADDRESSES:
        masked = address.rsplit(".", 1)[0] + ".x"
        assert masked in text and masked in html_of(notice)
        assert address not in text
    assert "http://localhost/auth/reset_password_request" in text
    assert re.search(r"until \w+ \d{1,2}, \d{4}, \d{1,2}:\d\d:\d\d\s[AP]M UTC", text)
    attempt(app, "susan", PASSWORD, ADDRESSES[0])
    deliver()
    assert len(smtp.messages) == 1  # refused attempts during the pause send nothing more


def test_a_completed_reset_lifts_the_pause(app, client, auth, susan, deliver, smtp):
    guess_wrong(app, "susan", 10)
    auth.request_reset()
    deliver()
    messages = smtp.wait_for(2)
    [reset] = [m for m in messages if m["Subject"] == "[Microblog] Reset your password"]
    client.get(urlsplit(reset_link(reset)).path)
    client.post("/auth/reset_password", data={"password": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert auth.login(password=NEW_PASSWORD).headers["Location"] == "/index"


def test_the_pause_ends_and_grows_if_the_guessing_goes_on(app, susan, monkeypatch):
    guess_wrong(app, "susan", 10)
    [first] = stored_pause(app)
    assert timedelta(minutes=14) < first - clock.utcnow() <= timedelta(minutes=15)

    move_clock(monkeypatch, minutes=16)
    assert attempt(app, "susan", "one more wrong guess", ADDRESSES[0]).status_code == 200
    guess_wrong(app, "susan", 9)
    [second] = stored_pause(app)
    assert timedelta(minutes=29) < second - clock.utcnow() <= timedelta(minutes=30)

    move_clock(monkeypatch, minutes=16 + 31)
    assert attempt(app, "susan", PASSWORD, ADDRESSES[0]).headers["Location"] == "/index"


def test_failures_older_than_the_window_do_not_count(app, susan, monkeypatch):
    guess_wrong(app, "susan", 9)
    move_clock(monkeypatch, minutes=15)
    guess_wrong(app, "susan", 9)
    assert attempt(app, "susan", PASSWORD, ADDRESSES[0]).headers["Location"] == "/index"


def test_a_right_password_ends_the_streak(app, susan):
    guess_wrong(app, "susan", 9)
    assert attempt(app, "susan", PASSWORD, ADDRESSES[0]).headers["Location"] == "/index"
    guess_wrong(app, "susan", 9)
    assert attempt(app, "susan", PASSWORD, ADDRESSES[0]).headers["Location"] == "/index"


def test_unknown_usernames_get_the_same_answers_so_pauses_reveal_no_account(app, susan):
    known = [shape(a) for a in guess_wrong(app, "susan", 12)]
    unknown = [shape(a) for a in guess_wrong(app, "nobody", 12)]
    assert unknown == known
    assert shape(attempt(app, "nobody", PASSWORD, ADDRESSES[0])) == shape(
        attempt(app, "susan", PASSWORD, ADDRESSES[0])
    )


def test_unknown_names_queue_the_same_outbox_write_and_send_nothing(app, deliver, smtp):
    guess_wrong(app, "nobody", 10)
    guess_wrong(app, "nobody@example.com", 10)
    assert deliver() == 2  # two deferred notices, both dropped by the composer
    assert smtp.messages == []


# Every guess may wait for the hasher here: the 503 of a full hashing queue is not the subject.
@pytest.mark.settings(LOGIN_FAILURES_PER_ACCOUNT=5, PASSWORD_HASH_WAIT=30)
def test_parallel_guesses_cannot_check_more_passwords_than_the_limit(app, susan):
    """Twenty guesses at once, from any worker: exactly five passwords are checked."""
    start = threading.Barrier(20)
    answers = []

    def guess(n):
        client = app.test_client()
        start.wait()
        answers.append(
            client.post(
                "/auth/login",
                data={"username": "susan", "password": f"parallel guess {n}"},
                environ_base={"REMOTE_ADDR": ADDRESSES[n % 6]},
            )
        )

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    invalid = [a for a in answers if "Invalid username or password." in flashes(a)]
    assert len(answers) == 20
    assert len(invalid) == 4  # the fifth check started the pause; the rest were refused
    assert sum(a.status_code == 429 for a in answers) == 16


# The per-account sign-in pause holds across `gunicorn -w 2` workers (counted in the database).


LIMIT = 10  # LOGIN_FAILURES_PER_ACCOUNT, the default an operator gets


@pytest.mark.gunicorn
def test_guesses_spread_over_both_workers_pause_the_account_once(gunicorn, smtp):
    register(Visitor(gunicorn.base_url), "susan", smtp)

    def guess(n):
        return sign_in(Visitor(gunicorn.base_url), "susan", f"wrong guess number {n}")

    # Two at a time: enough for both workers to count at once, within the per-process
    # hashing bound (a deployment answers a burst beyond it with 503s, not guesses).
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(guess, range(2 * LIMIT)))
    assert len(gunicorn.pids_that_served("POST", "/auth/login")) == 2
    invalid = [a for a in answers if "Invalid username or password." in a.text]
    paused = [a for a in answers if "Sign-in is paused for this account" in a.text]
    # On a loaded machine a guess may find the hashing slot taken: 503, counted all the same.
    busy = [a for a in answers if a.status == 503]
    assert len(invalid) + len(paused) + len(busy) == 2 * LIMIT
    # Per-worker counting would let 2 * LIMIT - 1 guesses be checked; the database lets LIMIT.
    assert LIMIT - 1 - len(busy) <= len(invalid) <= LIMIT - 1
    assert len(paused) >= LIMIT + 1 - len(busy)
    refused = sign_in(Visitor(gunicorn.base_url), "susan", PASSWORD)
    assert refused.status == 429 and refused.location is None

    notice = smtp.wait_for(2)[-1]  # after the verification email
    assert notice["Subject"] == "[Microblog] Sign-in to your account is paused"
    assert notice["To"] == "susan@example.com"


# Current passwords typed by a signed-in session count with failed sign-ins.

CURRENT_PASSWORD_FORMS = {
    "change_password": lambda guess: {
        "current_password": guess,
        "password": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
    },
    "change_email": lambda guess: {"email": "elsewhere@example.com", "password": guess},
    "delete_account": lambda guess: {"password": guess},
}


@pytest.mark.parametrize("form", CURRENT_PASSWORD_FORMS)
def test_wrong_current_passwords_pause_the_account_and_sign_the_guesser_out(
    app, client, auth, susan, deliver, smtp, form
):
    auth.login()
    fields = CURRENT_PASSWORD_FORMS[form]
    url = f"/auth/{form}"
    for n in range(9):
        answer = client.post(url, data=fields(f"wrong current password {n}"))
        assert "This is not your current password." in answer.text
    last = client.post(url, data=fields("the tenth wrong one"))
    assert last.headers["Location"] == "/auth/login"
    assert "you have been signed out" in flashes(client.get("/auth/login"))[0]
    assert client.get(url).headers["Location"].startswith("/auth/login")  # the session ended
    # Whoever held the session may not sign in again, by name or by address, even rightly.
    assert PAUSED in attempt(app, "susan", PASSWORD, ADDRESSES[0]).text
    assert PAUSED in attempt(app, "susan@example.com", PASSWORD, ADDRESSES[1]).text
    deliver()
    [notice] = smtp.wait_for(1)
    assert notice["Subject"] == "[Microblog] Sign-in to your account is paused"
    assert notice["To"] == "susan@example.com"


def test_a_right_current_password_ends_the_streak(app, client, auth, susan):
    auth.login()
    for n in range(9):
        client.post("/auth/change_email", data={"email": "e@example.com", "password": f"w{n}"})
    right = {"email": "e@example.com", "password": PASSWORD}
    answer = client.post("/auth/change_email", data=right)
    assert answer.headers["Location"] == "/user/susan"
    for n in range(9):
        client.post("/auth/change_email", data={"email": "e@example.com", "password": f"w{n}"})
    assert client.get("/auth/change_email").status_code == 200  # still signed in


# A browser the account knows is never paused by someone else's guesses.


def known_browser(app, username="susan"):
    """A browser that signed in to the account once, and signed out again."""
    browser = app.test_client()
    signed_in = browser.post(
        "/auth/login",
        data={"username": username, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert signed_in.headers["Location"] == "/index"
    browser.post("/auth/logout")
    return browser


def sign_in_from(browser, password, username="susan"):
    return browser.post(
        "/auth/login",
        data={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )


def test_after_a_strangers_twelve_guesses_the_owners_browser_still_signs_in(app, susan):
    laptop = known_browser(app)
    answers = guess_wrong(app, "susan", 12)
    assert [a.status_code for a in answers[9:]] == [429] * 3
    fresh = attempt(app, "susan", PASSWORD, "192.0.2.200")
    assert fresh.status_code == 429 and PAUSED in fresh.text
    assert sign_in_from(laptop, PASSWORD).headers["Location"] == "/index"
    laptop.post("/auth/logout")
    # By address too, and the stranger's pause stays for every other browser.
    assert sign_in_from(laptop, PASSWORD, "susan@example.com").headers["Location"] == "/index"
    assert PAUSED in attempt(app, "susan", PASSWORD, "192.0.2.201").text


def test_a_known_browser_waits_for_the_hasher_ahead_of_strangers(app, susan, monkeypatch):
    """In a flood the owner's browser is served first: its check is a KNOWN ticket."""
    laptop = known_browser(app)
    asked = []
    real = passwords.bounded

    def spy(function, *args, priority=passwords.UNKNOWN):
        asked.append(priority)
        return real(function, *args, priority=priority)

    monkeypatch.setattr(passwords, "bounded", spy)
    sign_in_from(laptop, PASSWORD)
    attempt(app, "susan", PASSWORD, "192.0.2.200")
    attempt(app, "nobody", PASSWORD, "192.0.2.201")
    assert asked == [passwords.KNOWN, passwords.UNKNOWN, passwords.UNKNOWN]


def test_a_known_browser_has_a_small_budget_of_its_own(app, susan, deliver, smtp):
    """A stolen device cookie alone does not grant unlimited guessing."""
    laptop = known_browser(app)
    deliver()
    answers = [sign_in_from(laptop, f"wrong from the laptop {n}") for n in range(6)]
    assert [a.status_code for a in answers] == [200] * 4 + [429] * 2
    assert sign_in_from(laptop, PASSWORD).status_code == 429
    # Its guesses were not the name's: another browser of the owner signs in, and
    # the account was never paused, so the owner is not told it was.
    assert attempt(app, "susan", PASSWORD, ADDRESSES[0]).headers["Location"] == "/index"
    deliver()
    assert not [m for m in smtp.messages if "paused" in m["Subject"]]


def test_only_a_signed_cookie_of_a_browser_the_account_knows_is_exempt(app, susan, make_user):
    make_user("bob")
    bobs_laptop = known_browser(app, "bob")  # known to another account only
    laptop = known_browser(app)
    cookie = laptop.get_cookie("device", domain="localhost", path="/auth/login").value
    device_id, _, signature = cookie.partition(".")
    assert signature  # signed
    forged = app.test_client()
    forged.set_cookie("device", device_id, domain="localhost", path="/auth/login")
    tampered = app.test_client()
    tampered.set_cookie("device", f"{device_id}.{signature[::-1]}", domain="localhost")
    guess_wrong(app, "susan", 10)
    for browser in (bobs_laptop, forged, tampered):
        assert PAUSED in sign_in_from(browser, PASSWORD).text
    with app.app_context():  # forgetting the browser revokes it
        db.session.execute(sa.delete(KnownDevice).where(KnownDevice.user_id == susan))
        db.session.commit()
    assert PAUSED in sign_in_from(laptop, PASSWORD).text


# The table stays bounded: rows go once their window and pause have passed.


def housekeeping_round(app):
    with app.app_context():
        return run_round()


def test_rows_of_a_flood_of_unknown_names_expire(app, monkeypatch):
    for n in range(20):
        attempt(app, f"nobody-{n}", "a wrong guess", ADDRESSES[n % 6])
    assert throttle_rows(app) == 20
    move_clock(monkeypatch, minutes=16)  # past LOGIN_FAILURE_WINDOW
    assert housekeeping_round(app)["login_throttle"] == 20
    assert throttle_rows(app) == 0


def test_a_paused_row_outlives_its_pause_by_a_day_then_goes(app, susan, monkeypatch):
    guess_wrong(app, "susan", 10)
    move_clock(monkeypatch, hours=12)  # the pause ended; the next one would be doubled
    assert housekeeping_round(app)["login_throttle"] == 0
    assert throttle_rows(app) == 1
    move_clock(monkeypatch, hours=25)
    assert housekeeping_round(app)["login_throttle"] == 1
    assert throttle_rows(app) == 0


@pytest.mark.settings(PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_WAIT=0.01)
@pytest.mark.settings(PASSWORD_HASH_WAIT=1)
def test_a_guess_the_hashing_bound_refused_leaves_no_row(app, susan):
    """A flood answered with 503s checked no password: it stores nothing."""
    with app.app_context():
        slots = passwords._hashing_slots(app)
    slots.hash_time = 2  # longer than the budget: nobody may wait
    for _ in range(slots.concurrency):
        slots.admit()  # other requests are hashing
    try:
        answers = [attempt(app, f"nobody-{n}", "a guess", ADDRESSES[0]) for n in range(3)]
        answers.append(attempt(app, "susan", "a guess", ADDRESSES[0]))
    finally:
        for _ in range(slots.concurrency):
            slots.release()
    assert [a.status_code for a in answers] == [503] * 4
    assert throttle_rows(app) == 0
