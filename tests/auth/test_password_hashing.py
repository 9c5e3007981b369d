"""Passwords hashed with Argon2id, older hashes upgraded, and a bound on hashes at once."""

import os
import threading

import pytest
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from microblog import clock
from microblog.auth import passwords, signin
from microblog.auth.passwords import (
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

    def reset_lands_meanwhile(password_hash, password):
        with db.engine.begin() as other:
            other.execute(sa.update(User).values(password_hash=reset_hash))
        return check(password_hash, password)

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


@pytest.mark.settings(PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_WAIT=0.01)
def test_a_sign_in_beyond_the_hashing_bound_gets_a_503_with_retry_after(app, auth, make_user):
    make_user("susan")
    with app.app_context():
        slots = passwords._hashing_slots(app)
    assert slots.acquire(timeout=1)  # another request is hashing
    try:
        busy = auth.login()
    finally:
        slots.release()
    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == "5"
    assert "busy" in busy.text
    assert auth.login().headers["Location"] == "/index"  # a slot is free again


@pytest.mark.settings(PASSWORD_HASH_CONCURRENCY=2, PASSWORD_HASH_WAIT=5)
def test_no_more_hashes_than_the_bound_run_at_once(app, monkeypatch):
    """Three threads hash; the third waits until one of the two running ones finishes."""
    release = threading.Event()
    running, peak, entries, lock = [0], [0], [0], threading.Lock()
    entered = threading.Barrier(3)
    real_hash = passwords._hasher(1, 256, 1).hash

    class SlowHasher:
        def hash(self, password):
            with lock:
                running[0] += 1
                entries[0] += 1
                peak[0] = max(peak[0], running[0])
                first_two = entries[0] <= 2
            if first_two:
                entered.wait(5)
            release.wait(5)
            with lock:
                running[0] -= 1
            return real_hash(password)

    monkeypatch.setattr(passwords, "hasher", SlowHasher)

    def hash_one():
        with app.app_context():
            hash_password("three at once")

    threads = [threading.Thread(target=hash_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    entered.wait(5)  # two are inside; the third is waiting for a slot
    assert (peak[0], entries[0]) == (2, 2)
    release.set()
    for thread in threads:
        thread.join(5)
    assert (peak[0], entries[0]) == (2, 3)


@pytest.mark.settings(PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_WAIT=0.01)
def test_the_dummy_hash_of_unknown_names_is_bounded_too(app):
    with app.app_context():
        slots = passwords._hashing_slots(app)
        assert slots.acquire(timeout=1)
        try:
            with pytest.raises(HashingBusy):
                burn_verification_time("whatever")
        finally:
            slots.release()


def test_a_malformed_stored_hash_is_a_failed_login_not_an_error(app, auth):
    add_user_with_hash(app, "$argon2id$v=19$garbage")
    assert auth.login().headers.get("Location") is None
    with app.app_context():
        assert verify_password("$argon2id$v=19$garbage", PASSWORD) is False


@pytest.mark.settings(PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_QUEUE=1, PASSWORD_HASH_WAIT=5)
def test_beyond_the_waiting_room_a_sign_in_is_refused_without_waiting(app, monkeypatch):
    """A waiting request holds a server thread: only PASSWORD_HASH_QUEUE may wait."""
    with app.app_context():
        slots = passwords._hashing_slots(app)
    assert slots.acquire(timeout=1)  # one request is hashing
    slots.waiting = 1  # and one is waiting for its turn
    waits = []
    real_acquire = slots.semaphore.acquire

    def acquire(blocking=True, timeout=None):
        waits.append((blocking, timeout))
        return real_acquire(blocking, timeout)

    monkeypatch.setattr(slots.semaphore, "acquire", acquire)
    try:
        with app.app_context(), pytest.raises(HashingBusy):
            hash_password("a third one")
    finally:
        slots.waiting = 0
        slots.release()
    assert waits == [(False, None)]  # tried once without blocking, then refused


@pytest.mark.settings(PASSWORD_HASH_NICE=10)
def test_hashes_run_at_a_lower_cpu_priority_than_pages(app):
    def priority():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    own = priority()
    with app.app_context():
        assert passwords.bounded(priority) >= max(10, own)
    assert priority() == own  # the request's own thread is untouched


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


# The hashing threads run at PASSWORD_HASH_NICE or nicer, never ahead of the pages.
#
# Threads inherit the nice value of the thread that starts them: a server
# started with `nice -n 15` must not have its hashes put back at 10, which
# Linux allows a root process to do.


def priority():
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.settings(PASSWORD_HASH_NICE=11)  # a hashing pool of its own, started below
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
    assert hashing >= own
