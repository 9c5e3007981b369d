"""The sign-in decision, apart from HTTP: who is this, and may they sign in now?

Every path does the same database work and one password-hash computation,
known account or not, paused or not, so neither the answer nor its timing
tells which usernames exist. UNVERIFIED is said only after the right
password: it tells nothing to someone who does not know it.
"""

import enum
from dataclasses import dataclass

import sqlalchemy as sa
from email_validator import EmailNotValidError
from flask import current_app

from microblog.auth import audit, throttle
from microblog.auth.devices import known_device, note_sign_in_device
from microblog.auth.emails import normalize_email
from microblog.auth.passwords import (
    HashingBusy,
    Priority,
    burn_verification_time,
    needs_rehash,
    upgrade_hash,
    verify_password,
)
from microblog.auth.sessions import sign_in
from microblog.extensions import db
from microblog.models import User
from microblog.usernames import skeleton


class SignInOutcome(enum.Enum):
    SIGNED_IN = "signed_in"
    INVALID = "invalid"
    PAUSED = "paused"
    UNVERIFIED = "unverified"


@dataclass(frozen=True)
class SignInAttempt:
    """The decision, the account it is about (signed in, unverified), the pause's end."""

    outcome: SignInOutcome
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
        # Verified addresses only: sign-ups waiting on an address never shadow its owner.
        verified = User.email_verified_at.is_not(None)
        return db.session.scalar(sa.select(User).where(User.email == folded, verified)), folded
    folded = skeleton(identifier)
    found = sa.select(User).where(User.username_key == folded, User.deleted_at.is_(None))
    return db.session.scalar(found), folded


def authenticate(identifier, password, address, device_cookie=""):
    """Decide a sign-in attempt from `address` (the client IP) and this browser's device cookie."""
    attempt = decide(identifier, password, address, device_cookie)
    if attempt.outcome is SignInOutcome.UNVERIFIED:
        audit.record("login.unverified", user=attempt.user.id)
    elif attempt.outcome is not SignInOutcome.SIGNED_IN:
        audit.record("login.failure", reason=attempt.outcome.value)
    return attempt


def decide(identifier, password, address, device_cookie=""):
    """The decision itself, each path at the same cost (see the module's docstring).

    A browser the account knows (devices.py) counts its failures in a
    bucket of its own, with a small budget, instead of the identifier's:
    the pause that others' guesses put on the name or address never
    applies to it.
    """
    user, folded = find_account(identifier)
    # Read now: counting commits, and reading the expired row after it would
    # cost a known name one more query than an unknown one (0.7 ms by HTTP).
    user_id, stored_hash = (user.id, user.password_hash) if user is not None else (None, None)
    device = known_device(user_id, device_cookie) if device_cookie else None
    if device is not None:
        key, limit = throttle.device_key(device), current_app.config["LOGIN_FAILURES_PER_DEVICE"]
    else:
        key, limit = throttle.identifier_key(folded), None
    refused_until, pause_started = throttle.count_attempt(
        key, user, address, limit, notify=device is None
    )
    if refused_until is not None:
        burn_verification_time(password)
        return SignInAttempt(SignInOutcome.PAUSED, paused_until=refused_until)
    try:
        # A known browser is the one to serve first in a flood.
        priority = Priority.UNKNOWN if device is None else Priority.KNOWN
        right = check(user_id, stored_hash, password, priority)
    except HashingBusy:  # never checked: not a failure of this identifier
        throttle.uncount(key)
        raise
    if right:
        throttle.record_success(key)
        verified = SignInOutcome.SIGNED_IN if user.email_verified else SignInOutcome.UNVERIFIED
        return SignInAttempt(verified, user)
    if pause_started is not None:
        return SignInAttempt(SignInOutcome.PAUSED, paused_until=pause_started)
    return SignInAttempt(SignInOutcome.INVALID)


def check(user_id, stored_hash, password, priority=Priority.UNKNOWN):
    """The password check of a sign-in (a dummy one for an unknown name), rehashing if due."""
    if user_id is None:
        burn_verification_time(password, priority)
        return False
    return verify_password(stored_hash, password, priority) and (
        not needs_rehash(stored_hash) or upgrade_hash(user_id, stored_hash, password)
    )


def start_session(user, remember, device_id, user_agent, address):
    """Sign `user` in from this browser; the device id its cookie is to carry.

    The browser is noted (and the owner told if it is new) in the sign-in's
    transaction, which `sign_in` commits.
    """
    device_id = note_sign_in_device(user, device_id, user_agent, address)
    sign_in(user, remember, user_agent, address)
    audit.record("login.success", user=user.id)
    return device_id
