"""Passwords hashed with Argon2id, older hashes upgraded, and admission of hashes by time."""

import os
import threading
import time

import pytest
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from microblog import clock
from microblog.auth import passwords, signin
from microblog.auth.passwords import (
    KNOWN,
    UNKNOWN,
    HashingBusy,
    burn_verification_time,
    hash_password,
    upgrade_hash,
    verify_password,
)
from microblog.config import Config
from microblog.extensions import db
from microblog.models import User
from support.app import counting_queries
from support.auth import PASSWORD
from support.workers import wait_until

DEFAULTS = {
    "PASSWORD_ARGON2_MEMORY_KIB": Config.PASSWORD_ARGON2_MEMORY_KIB,
    "PASSWORD_ARGON2_TIME_COST": Config.PASSWORD_ARGON2_TIME_COST,
    "PASSWORD_ARGON2_PARALLELISM": Config.PASSWORD_ARGON2_PARALLELISM,
}


def stored_hash(app, username="susan"):
    with app.app_context():
        return db.session.scalar(sa.select(User.password_hash).where(User.username == username))


def add_user_with_hash(app, password_hash, username="susan"):
    with app.app_context():
        db.session.add(
            User(
                username=username,
                email=f"{username}@example.com",
                password_hash=password_hash,
                email_verified_at=clock.utcnow(),
            )
        )
        db.session.commit()


def test_the_defaults_are_owasp_s_argon2id_parameters():
    """OWASP Password Storage Cheat Sheet: Argon2id, m=19 MiB, t=2, p=1."""
    assert DEFAULTS == {
        "PASSWORD_ARGON2_MEMORY_KIB": 19 * 1024,
        "PASSWORD_ARGON2_TIME_COST": 2,
        "PASSWORD_ARGON2_PARALLELISM": 1,
    }


@pytest.mark.settings(**DEFAULTS)
def test_passwords_are_stored_with_argon2id_and_the_configured_parameters(app, auth):
    auth.sign_up("susan")
    assert stored_hash(app).startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert auth.login().headers["Location"] == "/index"


@pytest.mark.parametrize("method", ["scrypt:131072:8:1", "scrypt", "pbkdf2:sha256:600"])
def test_an_older_werkzeug_hash_still_works_and_is_upgraded_at_the_next_login(app, auth, method):
    add_user_with_hash(app, generate_password_hash(PASSWORD, method))
    assert auth.login(password="not the password at all").headers.get("Location") is None
    assert stored_hash(app).startswith(method.split(":")[0])  # a failed login upgrades nothing

    assert auth.login().headers["Location"] == "/index"
    upgraded = stored_hash(app)
    assert upgraded.startswith("$argon2id$v=19$m=256,t=1,p=1$")
    auth.logout()
    assert auth.login().headers["Location"] == "/index"
    assert stored_hash(app) == upgraded  # once is enough


def test_an_argon2_hash_with_other_parameters_is_upgraded_once(app, auth):
    with app.app_context():
        app.config["PASSWORD_ARGON2_TIME_COST"] = 2
        old = hash_password(PASSWORD)
        app.config["PASSWORD_ARGON2_TIME_COST"] = 1
    add_user_with_hash(app, old)
    assert auth.login().headers["Location"] == "/index"
    upgraded = stored_hash(app)
    assert upgraded.startswith("$argon2id$v=19$m=256,t=1,p=1$")
    auth.logout()
    assert auth.login().headers["Location"] == "/index"
    assert stored_hash(app) == upgraded


def test_an_upgrade_never_writes_over_a_password_changed_meanwhile(app, make_user):
    """A login read the old hash; a reset commits; the login's upgrade must lose."""
    user_id = make_user("susan")
    with app.app_context():
        seen_by_login = db.session.get(User, user_id).password_hash
        reset_hash = hash_password("set by a reset just now")
        with db.engine.begin() as other:
            other.execute(
                sa.update(User).where(User.id == user_id).values(password_hash=reset_hash)
            )
        assert upgrade_hash(user_id, seen_by_login, PASSWORD) is False
    assert stored_hash(app) == reset_hash


def test_a_sign_in_never_upgrades_over_a_reset_that_landed_while_it_checked(app, auth, monkeypatch):
    """The sign-in checked the old hash; a reset commits before the upgrade: the reset wins."""
    with app.app_context():
        app.config["PASSWORD_ARGON2_TIME_COST"] = 2
        old = hash_password(PASSWORD)  # older parameters: a right password upgrades it
        reset_hash = hash_password("set by a reset just now")
        app.config["PASSWORD_ARGON2_TIME_COST"] = 1
    add_user_with_hash(app, old)
    check = signin.verify_password

    def reset_lands_meanwhile(password_hash, password, *priority):
        with db.engine.begin() as other:
            other.execute(sa.update(User).values(password_hash=reset_hash))
        return check(password_hash, password, *priority)

    monkeypatch.setattr(signin, "verify_password", reset_lands_meanwhile)
    assert auth.login().status_code == 200  # refused: the password changed under it
    assert stored_hash(app) == reset_hash


CASE_VARIANTS = (str.lower, str.upper, str.swapcase, str.capitalize, str.title)
# Each case shape is stored once, so that a sign-in that also tried any of the
# variants above on what was typed would let a wrong-case variant in.
STORED = {
    "lower": "correct horse battery staple",
    "upper": "CORRECT HORSE BATTERY STAPLE",
    "capitalized": "Correct horse battery staple",
    "title": "Correct Horse Battery Staple",
    "mixed": "cOrrect horse BATTERY stAple",
}


@pytest.mark.parametrize("password", STORED.values(), ids=STORED.keys())
def test_sign_in_compares_passwords_case_sensitively(app, auth, make_user, password):
    make_user("susan", password=password)
    typed = {variant(password) for variant in CASE_VARIANTS} - {password}
    assert len(typed) >= 3
    for wrong_case in sorted(typed):
        assert auth.login(password=wrong_case).headers.get("Location") is None, wrong_case
    assert auth.login(password=password).headers["Location"] == "/index"


def test_a_sign_in_for_an_unknown_name_computes_a_real_hash(app, auth, make_user, hasher_calls):
    """Same work as a known name: one verification against a hash with the same parameters."""

    def verifications_of(login):
        hasher_calls.clear()
        login()
        return [hashed.split("$")[3] for name, hashed in hasher_calls if name == "verify"]

    make_user("susan")
    known = verifications_of(lambda: auth.login("susan", password="a wrong password"))
    unknown = verifications_of(lambda: auth.login("nobody", password="a wrong password"))
    by_address = verifications_of(lambda: auth.login("nobody@example.com", password="wrong"))
    assert known == unknown == by_address == ["m=256,t=1,p=1"]


# Admission by time: as many hashes at once as the cores, a fair queue, a budget of expected wait.


class Requests:
    """Requests whose hashes run until the test lets them finish, in the order they started."""

    def __init__(self, app):
        self.app = app
        with app.app_context():
            self.slots = passwords._hashing_slots(app)
        self.started, self.refused, self.threads = [], [], []
        self.finish = threading.Event()

    def hash(self, name):
        self.started.append(name)
        self.finish.wait(10)

    def send(self, name, priority=UNKNOWN):
        """One request; returns once its hash runs or it waits in line."""
        slots = self.slots
        before = slots.running + len(slots.queue)

        def request():
            with self.app.app_context():
                try:
                    passwords.bounded(self.hash, name, priority=priority)
                except HashingBusy:
                    self.refused.append(name)

        thread = threading.Thread(target=request)
        thread.start()
        self.threads.append(thread)
        wait_until(
            lambda: slots.running + len(slots.queue) > before or name in self.refused,
            what=f"{name} admitted or refused",
        )

    def let_finish(self):
        self.finish.set()
        for thread in self.threads:
            thread.join(10)


def test_as_many_hashes_as_there_are_cores_run_at_once_by_default(app):
    with app.app_context():
        assert passwords._hashing_slots(app).concurrency == len(os.sched_getaffinity(0))


def test_eight_requests_hashing_at_once_in_one_process_are_all_admitted(app):
    """Sign-ups four or eight at a time (an outside suite's set-up) are served, none refused."""
    start = threading.Barrier(8)
    refused = []

    def sign_up():
        with app.app_context():
            start.wait(5)
            try:
                hash_password("eight at the same moment")
            except HashingBusy:
                refused.append(1)

    threads = [threading.Thread(target=sign_up) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert refused == []


@pytest.mark.settings(PASSWORD_HASH_CONCURRENCY=2, PASSWORD_HASH_WAIT=5)
def test_no_more_hashes_than_the_concurrency_run_at_once(app):
    requests = Requests(app)
    for name in ("first", "second", "third"):
        requests.send(name)
    wait_until(lambda: len(requests.started) == 2, what="two hashes running")
    time.sleep(0.1)  # time enough for a third to start, were it let in
    assert (requests.started, len(requests.slots.queue)) == (["first", "second"], 1)
    requests.let_finish()
    assert requests.started == ["first", "second", "third"]


@pytest.mark.settings(PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_WAIT=1)
def test_beyond_the_budget_a_sign_in_gets_a_503_with_retry_after_at_once(app, auth, make_user):
    make_user("susan")
    requests = Requests(app)
    requests.slots.hash_time = 0.4  # two may wait (0.4 s, 0.8 s); a third would wait 1.2 s
    for name in ("hashing", "waits 0.4 s", "waits 0.8 s"):
        requests.send(name)
    try:
        started = time.monotonic()
        busy = auth.login()
        elapsed = time.monotonic() - started
    finally:
        requests.let_finish()
    assert (busy.status_code, busy.headers["Retry-After"], elapsed < 0.3) == (503, "2", True)
    assert "busy" in busy.text
    assert requests.refused == []
    assert auth.login().headers["Location"] == "/index"  # the line is empty again


@pytest.mark.settings(PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_WAIT=30)
def test_waiting_requests_are_served_in_the_order_they_came(app):
    requests = Requests(app)
    names = ["hashing", *(f"waiting {n}" for n in range(1, 6))]
    for name in names:
        requests.send(name)
    requests.let_finish()
    assert requests.started == names


@pytest.mark.settings(PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_WAIT=30)
def test_a_known_browser_s_ticket_goes_ahead_of_unknown_ones(app):
    requests = Requests(app)
    requests.send("hashing")
    for name, priority in [("u1", UNKNOWN), ("u2", UNKNOWN), ("k1", KNOWN), ("u3", UNKNOWN)]:
        requests.send(name, priority)
    requests.send("k2", KNOWN)
    requests.let_finish()
    assert requests.started == ["hashing", "k1", "k2", "u1", "u2", "u3"]


@pytest.mark.settings(PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_WAIT=1)
def test_a_known_browser_is_admitted_when_unknown_ones_are_refused(app):
    """Its expected wait counts only the KNOWN tickets ahead of it."""
    requests = Requests(app)
    requests.slots.hash_time = 0.4
    for name in ("hashing", "u1", "u2"):
        requests.send(name)
    requests.send("u3")  # refused: 1.2 s
    requests.send("k1", KNOWN)  # first in line: 0.4 s
    requests.let_finish()
    assert (requests.refused, requests.started) == (["u3"], ["hashing", "k1", "u1", "u2"])


@pytest.mark.settings(PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_WAIT=1)
def test_the_dummy_hash_of_unknown_names_is_admitted_the_same_way(app):
    requests = Requests(app)
    requests.slots.hash_time = 5.0
    requests.send("hashing")
    try:
        with app.app_context(), pytest.raises(HashingBusy):
            burn_verification_time("whatever")
    finally:
        requests.let_finish()


def test_the_expected_wait_follows_the_measured_time_of_hashes(app):
    """A host slowed for a while (a backup) and then idle again: the queue opens again."""
    with app.app_context():
        slots = passwords._hashing_slots(app)
        assert 0 < slots.hash_time < 1  # measured at first use: test parameters hash in ~1 ms
        slots.hash_time = 5.0
        for _ in range(10):
            hash_password("after the backup")
    assert slots.hash_time < 5.0 * 0.8**10 + 0.1


def test_a_malformed_stored_hash_is_a_failed_login_not_an_error(app, auth):
    add_user_with_hash(app, "$argon2id$v=19$garbage")
    assert auth.login().headers.get("Location") is None
    with app.app_context():
        assert verify_password("$argon2id$v=19$garbage", PASSWORD) is False


def test_a_failed_sign_in_runs_the_same_sql_whether_the_account_exists(app, auth, make_user):
    """The timing oracle a hash cannot hide: an extra query for a known name (0.7 ms by HTTP).

    Each statement is compared by its text, with the values left out: a known
    name, an unknown one and an address must do the same database work.
    """
    make_user("susan")
    make_user("sarah")

    def statements_of(identifier):
        with counting_queries(app) as statements:
            assert auth.login(identifier, password="a wrong password").status_code == 200
        return statements

    known = statements_of("susan")
    assert statements_of("nobody") == known
    assert statements_of("sarah@example.com") == statements_of("nobody@example.com")


# The hashing threads run a little nicer than their own server, never at an absolute value.
#
# Threads inherit the nice value of the thread that starts them: a server
# started with `nice -n 15` must not have its hashes put back at a lower
# value, which Linux allows a root process to do.


def priority():
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_hashes_run_a_little_nicer_than_the_pages_of_their_process(app):
    """Relative, not nice 10: another process's busy loop must not starve the sign-ins."""
    own = priority()
    with app.app_context():
        assert passwords.bounded(priority) == min(19, own + Config.PASSWORD_HASH_NICE)
    assert priority() == own  # the request's own thread is untouched
    assert 0 < Config.PASSWORD_HASH_NICE <= 5


@pytest.mark.settings(PASSWORD_HASH_NICE=9)  # a hashing pool of its own
def test_the_hashing_nice_delta_is_at_most_5(app):
    with app.app_context():
        assert passwords.bounded(priority) == min(19, priority() + 5)


@pytest.mark.settings(PASSWORD_HASH_NICE=3)  # a hashing pool of its own, started below
def test_hashing_threads_keep_the_nicer_priority_of_the_server(app):
    seen = []

    def a_server_started_with_nice_15():
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(15, priority()))
        with app.app_context():
            seen.append((priority(), passwords.bounded(priority)))

    server = threading.Thread(target=a_server_started_with_nice_15)
    server.start()
    server.join(10)
    [(own, hashing)] = seen
    assert own >= 15
    assert hashing == min(19, own + 3)
