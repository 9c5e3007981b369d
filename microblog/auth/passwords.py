"""One password policy (NIST SP 800-63B-4) and one way of hashing (Argon2id), for every form.

Length is the only rule: at least PASSWORD_MIN_LENGTH characters, up to
PASSWORD_MAX_LENGTH, any Unicode, no composition rules; plus a refusal of
passwords that appear in breach corpora (Royce Williams' list of 20,000
common passwords, shipped with Django, shipped here), compared case-blind.
"""

import gzip
import threading
import unicodedata
from contextlib import contextmanager
from functools import cache
from importlib import resources

import sqlalchemy as sa
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from werkzeug.exceptions import ServiceUnavailable
from werkzeug.security import check_password_hash

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
    """Why this password is refused, or None when it is acceptable."""
    config = current_app.config
    if len(password) > config["PASSWORD_MAX_LENGTH"]:  # before NFKC, which can expand it
        return f"Use at most {config['PASSWORD_MAX_LENGTH']} characters."
    password = normalize(password)
    if len(password) < config["PASSWORD_MIN_LENGTH"]:
        return (
            f"Use at least {config['PASSWORD_MIN_LENGTH']} characters; "
            "a phrase of a few words works well."
        )
    if len(password) > config["PASSWORD_MAX_LENGTH"]:
        return f"Use at most {config['PASSWORD_MAX_LENGTH']} characters."
    folded = password.casefold()
    if folded in common_passwords() or len(set(folded)) < 3:
        return "This password is too common; choose another."
    if any(value and len(value) >= 4 and value.casefold() in folded for value in personal):
        return "Do not use your username or email address in your password."
    return None


class HashingBusy(ServiceUnavailable):
    """Every hashing slot of this process stayed taken: come back in a moment (a 503)."""

    def __init__(self):
        super().__init__(
            "Too many sign-ins are being checked right now. Try again in a few seconds.",
            retry_after=HASHING_RETRY_AFTER,
        )


HASHING_RETRY_AFTER = 5  # seconds, in the 503's Retry-After header
_slots_lock = threading.Lock()


def _hashing_slots(app):
    """The per-process bound on hashes computed at once (one semaphore per app)."""
    slots = app.extensions.get("password_hashing_slots")
    if slots is None:
        with _slots_lock:
            slots = app.extensions.setdefault(
                "password_hashing_slots",
                threading.BoundedSemaphore(app.config["PASSWORD_HASH_CONCURRENCY"]),
            )
    return slots


@contextmanager
def hashing_slot():
    """Hold one of the process's hashing slots, or raise HashingBusy after a short wait.

    Each hash costs ~19 MiB and a core for tens of milliseconds: unbounded,
    a flood of sign-ins (even for unknown names) would take every core and
    thread. The wait is short because a waiting request holds a server thread.
    """
    app = current_app._get_current_object()
    slots = _hashing_slots(app)
    if not slots.acquire(timeout=app.config["PASSWORD_HASH_WAIT"]):
        raise HashingBusy()
    try:
        yield
    finally:
        slots.release()


def hasher():
    """Argon2id with the configured parameters."""
    config = current_app.config
    return _hasher(
        config["PASSWORD_ARGON2_TIME_COST"],
        config["PASSWORD_ARGON2_MEMORY_KIB"],
        config["PASSWORD_ARGON2_PARALLELISM"],
    )


@cache
def _hasher(time_cost, memory_cost, parallelism):
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
    )


def hash_password(password):
    """A salted Argon2id hash with the configured parameters."""
    with hashing_slot():
        return hasher().hash(normalize(password))


def verify_password(password_hash, password):
    """True when the password matches: Argon2 hashes, and werkzeug's older scrypt/pbkdf2."""
    password = normalize(password)
    with hashing_slot():
        if not password_hash.startswith("$argon2"):
            return check_password_hash(password_hash, password)
        try:
            return hasher().verify(password_hash, password)
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


def upgrade_hash(user, password):
    """Store a hash made with the configured parameters; False if the password changed.

    A compare-and-swap on the hash that was checked, like a reset: a login
    that read the old hash must never write over a password set meanwhile.
    """
    result = db.session.execute(
        sa.update(User)
        .where(User.id == user.id, User.password_hash == user.password_hash)
        .values(password_hash=hash_password(password))
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def dummy_hash():
    """A hash made with the configured parameters, of no one's password."""
    config = current_app.config
    return _dummy_hash(
        config["PASSWORD_ARGON2_TIME_COST"],
        config["PASSWORD_ARGON2_MEMORY_KIB"],
        config["PASSWORD_ARGON2_PARALLELISM"],
    )


@cache
def _dummy_hash(*parameters):
    return _hasher(*parameters).hash("not a password")


def burn_verification_time(password):
    """Spend the time of a real check, so that a login for an unknown user takes as long."""
    verify_password(dummy_hash(), password)
