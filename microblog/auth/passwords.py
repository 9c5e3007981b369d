"""One password policy (NIST SP 800-63B-4) and one way of hashing (Argon2id), for every form.

At least PASSWORD_MIN_LENGTH characters, up to PASSWORD_MAX_LENGTH, any
Unicode, no composition rules; a refusal of passwords that appear in breach
corpora (Royce Williams' list of 20,000 common passwords, shipped with
Django, shipped here), compared case-blind; and a strength floor
(auth.strength, zxcvbn) against what the list misses at any length:
repeats, sequences, keyboard walks, common words with small changes.
"""

import bisect
import enum
import gzip
import itertools
import math
import os
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
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


class Priority(enum.IntEnum):
    """Where a hash waits: a KNOWN ticket goes ahead of every UNKNOWN one, FIFO within each.

    The sign-in flow passes KNOWN for a browser that signed in to the account
    before, so that people get in while unknown clients share what is left.
    """

    UNKNOWN = 0
    KNOWN = 1


UNKNOWN, KNOWN = Priority.UNKNOWN, Priority.KNOWN


class HashingBusy(ServiceUnavailable):
    """The expected wait for a hash is beyond PASSWORD_HASH_WAIT: come back in a moment (a 503)."""

    def __init__(self, retry_after=None):
        super().__init__(
            "Too many sign-ins are being checked right now. Try again in a few seconds.",
            retry_after=retry_after or HASHING_RETRY_AFTER,
        )


HASHING_RETRY_AFTER = 5  # seconds, in the 503's Retry-After header when no estimate is known
HASH_TIME_WEIGHT = 0.2  # of each new duration in the running estimate of a hash's time
MAX_NICE_DELTA = 5
_slots_lock = threading.Lock()


@dataclass(eq=False)
class Ticket:
    priority: Priority
    number: int

    def key(self):
        return (-self.priority, self.number)


class HashingSlots:
    """Admission by time: `concurrency` hashes at once, and a fair queue sized by expected wait.

    A request that finds every slot taken takes a ticket and waits in line
    (FIFO, KNOWN tickets ahead of UNKNOWN ones) if its expected wait,
    (its position / concurrency + 1) x the measured time of a hash, fits
    `budget` seconds; otherwise it is answered 503 at once, with that
    estimate as Retry-After. The time of a hash is an exponentially weighted
    average of recent ones (measured once when the slots are created), so a
    host slowed by other work lets fewer wait.

    Priority is relative, never absolute: the hashing threads run at this
    process's own nice value plus `nice_delta` (0 to 5). At an absolute nice
    10, with one core busy with another process, 2 of 8 simultaneous sign-ups
    got in (CFS weighs nice 10 at a ninth of nice 0); at +2 all of 8 and of 32
    do (docs/benchmarks.md), while the page views of this process still win a
    contended core. +5 measured no better for the pages during a flood; the
    concurrency bound, not the nice value, keeps a process's hashes to as
    many cores as it has.

    The line holds at most a server's threads: past what the cores can hash,
    the excess waits in the server's own queue, unseen here (per-IP limits
    bound that).
    """

    def __init__(self, concurrency, budget, nice_delta, hash_time):
        self.concurrency = concurrency
        self.budget = budget
        self.hash_time = hash_time
        self.running = 0
        self.queue = []  # tickets, in the order they will run
        self.numbers = itertools.count()
        self.changed = threading.Condition()
        self.threads = _hashing_threads(os.getpid(), concurrency, nice_delta)

    def expected_wait(self, position):
        """Seconds until a ticket at `position` in the queue starts its hash."""
        return (position / self.concurrency + 1) * self.hash_time

    def admit(self, priority=UNKNOWN):
        """Return once a slot is held; HashingBusy at once if the wait would exceed the budget."""
        with self.changed:
            if self.running < self.concurrency and not self.queue:
                self.running += 1
                return
            ticket = Ticket(priority, next(self.numbers))
            position = bisect.bisect(self.queue, ticket.key(), key=Ticket.key)
            expected = self.expected_wait(position)
            if expected > self.budget:
                raise HashingBusy(retry_after=max(1, math.ceil(expected)))
            self.queue.insert(position, ticket)
            # KNOWN tickets may keep passing an UNKNOWN one: it never waits past twice the budget.
            if not self.changed.wait_for(
                lambda: self.queue[0] is ticket and self.running < self.concurrency,
                timeout=2 * self.budget,
            ):
                self.queue.remove(ticket)
                self.changed.notify_all()
                raise HashingBusy()
            self.queue.pop(0)
            self.running += 1
            self.changed.notify_all()  # the next ticket may start too

    def release(self, duration=None):
        """Free a slot; `duration` (seconds) of the hash just done updates the estimate."""
        with self.changed:
            self.running -= 1
            if duration is not None:
                self.hash_time += HASH_TIME_WEIGHT * (duration - self.hash_time)
            self.changed.notify_all()

    def run(self, function, *args, priority=UNKNOWN):
        """function(*args) in a hashing thread, once admitted; HashingBusy if not admitted."""
        self.admit(priority)
        duration = None
        try:
            duration, result = self.threads.submit(_timed, function, *args).result()
            return result
        finally:
            self.release(duration)


def _timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


@cache
def _hashing_threads(pid, size, nice_delta):
    """One pool per process and setting, shared by the apps of a test run (pid: not a parent's)."""
    return ThreadPoolExecutor(
        size,
        thread_name_prefix="password-hashing",
        initializer=lower_priority,
        initargs=(nice_delta, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())),
    )


def lower_priority(delta, own):
    """Run this thread at `own` (the nice value of the thread that made the pool) + delta.

    Never raise it: a process started nicer (`nice -n 15 gunicorn ...`) keeps
    its value, and the hashes stay behind its own page views. Linux: per thread id.
    """
    with suppress(AttributeError, OSError):
        thread = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread)
        wanted = min(19, own + max(0, min(delta, MAX_NICE_DELTA)))
        os.setpriority(os.PRIO_PROCESS, thread, max(wanted, current))


def hashing_concurrency(configured):
    """PASSWORD_HASH_CONCURRENCY, or 0 for the cores this process may run on."""
    if configured > 0:
        return configured
    with suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _hashing_slots(app):
    """The app's hashing slots in this process (created on first use, after any fork)."""
    slots = app.extensions.get("password_hashing_slots")
    if slots is None:
        with _slots_lock:
            slots = app.extensions.get("password_hashing_slots")
            if slots is None:
                config = app.config
                slots = app.extensions["password_hashing_slots"] = HashingSlots(
                    hashing_concurrency(config["PASSWORD_HASH_CONCURRENCY"]),
                    config["PASSWORD_HASH_WAIT"],
                    config["PASSWORD_HASH_NICE"],
                    hash_time=_timed(hasher().hash, "the first estimate of a hash's time")[0],
                )
    return slots


def bounded(function, *args, priority=UNKNOWN):
    """Run one hash within the process's admission, or raise HashingBusy (a 503).

    Each hash costs ~19 MiB and a core for tens of milliseconds: unbounded,
    a flood of sign-ins (even for unknown names) would take every core and
    thread. `priority=KNOWN` puts the hash ahead of every UNKNOWN one waiting.
    """
    app = current_app._get_current_object()
    return _hashing_slots(app).run(function, *args, priority=priority)


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


def hash_password(password, priority=UNKNOWN):
    """A salted Argon2id hash with the configured parameters."""
    return bounded(hasher().hash, normalize(password), priority=priority)


def verify_password(password_hash, password, priority=UNKNOWN):
    """True when the password matches: Argon2 hashes, and werkzeug's older scrypt/pbkdf2."""
    password = normalize(password)
    if not password_hash.startswith("$argon2"):
        return bounded(check_password_hash, password_hash, password, priority=priority)
    return bounded(_verify_argon2, hasher(), password_hash, password, priority=priority)


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


def burn_verification_time(password, priority=UNKNOWN):
    """Spend the time of a real check, so that a login for an unknown user takes as long."""
    verify_password(dummy_hash(), password, priority)
