"""One password policy (NIST SP 800-63B-4) and one way of hashing (Argon2id), for every form.

At least PASSWORD_MIN_LENGTH characters, up to PASSWORD_MAX_LENGTH, any
Unicode, no composition rules; a refusal of passwords that appear in breach
corpora (Royce Williams' list of 20,000 common passwords, shipped with
Django, shipped here), compared case-blind; and a strength floor
(auth.strength, zxcvbn) against what the list misses at any length:
repeats, sequences, keyboard walks, common words with small changes.
"""

import gzip
import os
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from functools import cache
from importlib import resources

import sqlalchemy as sa
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.exceptions import ServiceUnavailable
from werkzeug.security import check_password_hash

from microblog.auth.strength import strength_problem
from microblog.extensions import db
from microblog.models import User


@cache
def common_passwords():
    """The shipped list, one password a line (some have spaces: "friend of emily")."""
    data = resources.files("microblog").joinpath("data/common-passwords.txt.gz").read_bytes()
    return frozenset(line for line in gzip.decompress(data).decode().splitlines() if line)


def normalize(password):
    """NFKC, as NIST asks, so that the same password typed on two keyboards matches."""
    return unicodedata.normalize("NFKC", password)


def policy_problem(password, *personal):
    """Why this password is refused (in the page's language), or None when it is acceptable."""
    config = current_app.config
    longest = config["PASSWORD_MAX_LENGTH"]
    if len(password) > longest:  # before NFKC, which can expand it
        return too_long(longest)
    password = normalize(password)
    if len(password) < config["PASSWORD_MIN_LENGTH"]:
        shortest = config["PASSWORD_MIN_LENGTH"]
        return ngettext(
            "Use at least %(num)s character; a phrase of a few words works well.",
            "Use at least %(num)s characters; a phrase of a few words works well.",
            shortest,
        )
    if len(password) > longest:
        return too_long(longest)
    folded = password.casefold()
    if folded in common_passwords() or len(set(folded)) < 3:
        return _("This password is too common; choose another.")
    if any(value and len(value) >= 4 and value.casefold() in folded for value in personal):
        return _("Do not use your username or email address in your password.")
    return strength_problem(password, personal)


def too_long(longest):
    return ngettext("Use at most %(num)s character.", "Use at most %(num)s characters.", longest)


class HashingBusy(ServiceUnavailable):
    """Every hashing slot of this process stayed taken: come back in a moment (a 503)."""

    def __init__(self):
        super().__init__(
            "Too many sign-ins are being checked right now. Try again in a few seconds.",
            retry_after=HASHING_RETRY_AFTER,
        )


HASHING_RETRY_AFTER = 5  # seconds, in the 503's Retry-After header
_slots_lock = threading.Lock()


class HashingSlots:
    """The per-process bound: `size` hashes at once, at most `queue` requests waiting.

    The hashes run in `size` threads of their own at a lower CPU priority
    (PASSWORD_HASH_NICE): when sign-ins and page views compete for a core,
    the scheduler serves the pages first.
    """

    def __init__(self, size, queue, nice):
        self.semaphore = threading.BoundedSemaphore(size)
        self.queue = queue
        self.waiting = 0
        self.lock = threading.Lock()
        self.threads = _hashing_threads(os.getpid(), size, nice)

    def acquire(self, timeout):
        """True once a slot is held; False at once when the queue is full, or after `timeout`."""
        if self.semaphore.acquire(blocking=False):
            return True
        with self.lock:
            if self.waiting >= self.queue:
                return False
            self.waiting += 1
        try:
            return self.semaphore.acquire(timeout=timeout)
        finally:
            with self.lock:
                self.waiting -= 1

    def run(self, function, *args, timeout):
        """function(*args) in a hashing thread, once a slot is free; HashingBusy if none is."""
        if not self.acquire(timeout):
            raise HashingBusy()
        try:
            return self.threads.submit(function, *args).result()
        finally:
            self.release()

    def release(self):
        self.semaphore.release()


@cache
def _hashing_threads(pid, size, nice):
    """One pool per process and setting, shared by the apps of a test run (pid: not a parent's)."""
    return ThreadPoolExecutor(
        size, thread_name_prefix="password-hashing", initializer=lower_priority, initargs=(nice,)
    )


def lower_priority(nice):
    """Lower this thread's CPU priority to `nice`, never raise it (Linux: per thread id).

    A process started with a higher nice value (`nice -n 15 gunicorn ...`)
    keeps it: run as root, setting 10 would put the hashes ahead of the pages.
    """
    with suppress(AttributeError, OSError):
        thread = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, max(nice, current))


def _hashing_slots(app):
    """The app's hashing slots in this process (created on first use, after any fork)."""
    slots = app.extensions.get("password_hashing_slots")
    if slots is None:
        with _slots_lock:
            slots = app.extensions.get("password_hashing_slots")
            if slots is None:
                config = app.config
                slots = app.extensions["password_hashing_slots"] = HashingSlots(
                    config["PASSWORD_HASH_CONCURRENCY"],
                    config["PASSWORD_HASH_QUEUE"],
                    config["PASSWORD_HASH_NICE"],
                )
    return slots


def bounded(function, *args):
    """Run one hash within the process's bound, or raise HashingBusy (a 503).

    Each hash costs ~19 MiB and a core for tens of milliseconds: unbounded,
    a flood of sign-ins (even for unknown names) would take every core and
    thread. A waiting request holds a server thread, so few may wait, and
    briefly; the rest are told at once to come back.
    """
    app = current_app._get_current_object()
    return _hashing_slots(app).run(function, *args, timeout=app.config["PASSWORD_HASH_WAIT"])


def argon2_parameters():
    """(time cost, memory in KiB, parallelism), as configured."""
    config = current_app.config
    return (
        config["PASSWORD_ARGON2_TIME_COST"],
        config["PASSWORD_ARGON2_MEMORY_KIB"],
        config["PASSWORD_ARGON2_PARALLELISM"],
    )


def hasher():
    """Argon2id with the configured parameters."""
    return _hasher(*argon2_parameters())


@cache
def _hasher(time_cost, memory_cost, parallelism):
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
    )


def hash_password(password):
    """A salted Argon2id hash with the configured parameters."""
    return bounded(hasher().hash, normalize(password))


def verify_password(password_hash, password):
    """True when the password matches: Argon2 hashes, and werkzeug's older scrypt/pbkdf2."""
    if not password_hash.startswith("$argon2"):
        return bounded(check_password_hash, password_hash, normalize(password))
    return bounded(_verify_argon2, hasher(), password_hash, normalize(password))


def _verify_argon2(argon2, password_hash, password):
    try:
        return argon2.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash):
    """True for werkzeug's hashes and for Argon2 hashes made with other parameters."""
    if not password_hash.startswith("$argon2"):
        return True
    try:
        return hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def upgrade_hash(user_id, checked_hash, password):
    """Store a hash made with the configured parameters; False if the password changed.

    A compare-and-swap on the hash that was checked, like a reset: a login
    that read the old hash must never write over a password set meanwhile.
    """
    result = db.session.execute(
        sa.update(User)
        .where(User.id == user_id, User.password_hash == checked_hash)
        .values(password_hash=hash_password(password))
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def dummy_hash():
    """A hash made with the configured parameters, of no one's password."""
    return _dummy_hash(*argon2_parameters())


@cache
def _dummy_hash(*parameters):
    return _hasher(*parameters).hash("not a password")


def burn_verification_time(password):
    """Spend the time of a real check, so that a login for an unknown user takes as long."""
    verify_password(dummy_hash(), password)
