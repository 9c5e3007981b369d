"""One password policy (NIST SP 800-63B-4) and one way of hashing, for every form.

At least PASSWORD_MIN_LENGTH characters, up to PASSWORD_MAX_LENGTH, any
Unicode, no composition rules; a refusal of passwords that appear in breach
corpora (Royce Williams' list of 20,000 common passwords, shipped with
Django, shipped here), compared case-blind; and a strength floor
(auth.strength, zxcvbn) against what the list misses at any length:
repeats, sequences, keyboard walks, common words with small changes.
"""

import gzip
import unicodedata
from functools import cache
from importlib import resources

import sqlalchemy as sa
from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

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
    return strength_problem(password, personal)


def hash_password(password):
    """A salted hash with the configured method and parameters."""
    return generate_password_hash(normalize(password), current_app.config["PASSWORD_HASH_METHOD"])


def verify_password(password_hash, password):
    """True when the password matches the hash, whatever parameters made the hash."""
    return check_password_hash(password_hash, normalize(password))


def needs_rehash(password_hash):
    """True when the hash was made with other parameters than the configured ones.

    Compared with a hash made now, not with the setting's text: "scrypt" and
    "scrypt:32768:8:1" are the same method, and must not rehash every login.
    """
    method = current_app.config["PASSWORD_HASH_METHOD"]
    return password_hash.split("$", 1)[0] != _dummy_hash(method).split("$", 1)[0]


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


@cache
def _dummy_hash(method):
    return generate_password_hash("not a password", method)


def burn_verification_time(password):
    """Spend the time of a real check, so that a login for an unknown user takes as long."""
    method = current_app.config["PASSWORD_HASH_METHOD"]
    check_password_hash(_dummy_hash(method), normalize(password))
