"""The sign-in decision, apart from HTTP: who is this, and may they sign in now?

Every path does the same database work and one password-hash computation,
known account or not, paused or not, so neither the answer nor its timing
tells which usernames exist. UNVERIFIED is said only after the right
password: it tells nothing to someone who does not know it.
"""

from dataclasses import dataclass

import sqlalchemy as sa
from email_validator import EmailNotValidError

from microblog.auth import throttle
from microblog.auth.emails import normalize_email
from microblog.auth.passwords import (
    burn_verification_time,
    needs_rehash,
    upgrade_hash,
    verify_password,
)
from microblog.extensions import db
from microblog.models import User
from microblog.usernames import skeleton

SIGNED_IN, INVALID, PAUSED, UNVERIFIED = "signed_in", "invalid", "paused", "unverified"


@dataclass(frozen=True)
class Outcome:
    status: str
    user: User | None = None
    paused_until: object = None


def find_account(identifier):
    """(user or None, folded identifier): emails as stored, names by their skeleton.

    The skeleton makes sign-in by username case-blind ("Susan" is "susan"),
    and no other account can share it (a unique index), so it names one account.
    """
    identifier = identifier.strip()
    if "@" in identifier:
        try:
            folded = normalize_email(identifier)
        except EmailNotValidError:
            return None, identifier.lower()
        return db.session.scalar(sa.select(User).where(User.email == folded)), folded
    folded = skeleton(identifier)
    return db.session.scalar(sa.select(User).where(User.username_key == folded)), folded


def authenticate(identifier, password, address):
    """Decide a sign-in attempt from `address` (the client IP); see Outcome."""
    user, folded = find_account(identifier)
    # Read now: counting commits, and reading the expired row after it would
    # cost a known name one more query than an unknown one (0.7 ms by HTTP).
    user_id, stored_hash = (user.id, user.password_hash) if user is not None else (None, None)
    key = throttle.throttle_key(user, folded)
    refused_until, pause_started = throttle.count_attempt(key, user, address)
    if refused_until is not None:
        burn_verification_time(password)
        return Outcome(PAUSED, paused_until=refused_until)
    if user is None:
        burn_verification_time(password)
    elif verify_password(stored_hash, password) and (
        not needs_rehash(stored_hash) or upgrade_hash(user_id, stored_hash, password)
    ):
        throttle.record_success(key)
        return Outcome(SIGNED_IN if user.email_verified else UNVERIFIED, user)
    if pause_started is not None:
        return Outcome(PAUSED, paused_until=pause_started)
    return Outcome(INVALID)
