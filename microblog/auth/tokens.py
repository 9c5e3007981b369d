"""Emailed link tokens: signed JWTs bound to one purpose and one state of the account.

A token carries a link binding (an HMAC, never the hash itself) of its
purpose, the account's security stamp, password hash and email address, and
the address a change-email link moves to. Every change that matters gives
the account a new stamp (security_stamp.py): every earlier token stops
matching, without a token table, even once the account is back as it was
(a->b->a). A token of one purpose (a verification link) is never accepted
for another (a reset).
"""

import hashlib
import hmac
import re
from datetime import timedelta

import jwt
from flask import current_app

from microblog import clock
from microblog.extensions import db
from microblog.models import User

RESET = "reset_password"
VERIFY_EMAIL = "verify_email"
CHANGE_EMAIL = "change_email"
# Purpose -> the setting that holds its lifetime in seconds.
LIFETIMES = {
    RESET: "RESET_TOKEN_EXPIRES_IN",
    VERIFY_EMAIL: "VERIFY_TOKEN_EXPIRES_IN",
    CHANGE_EMAIL: "VERIFY_TOKEN_EXPIRES_IN",
}
REQUIRED_CLAIMS = ["sub", "exp", "iat", "purpose", "fp"]
ALGORITHM = "HS256"
MAX_TOKEN_LENGTH = 1024  # real tokens are about 250 characters (300 with a new address)
# Three base64url segments: anything else (non-ASCII, 8 KB, empty) is refused unread.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# A user id as we write it: ASCII digits that fit a 64-bit integer column.
SUBJECT_SHAPE = re.compile(r"[1-9][0-9]{0,17}")


def looks_like_token(token):
    """True for what could be one of our tokens: short enough for a session cookie."""
    return (
        isinstance(token, str)
        and 0 < len(token) <= MAX_TOKEN_LENGTH
        and TOKEN_SHAPE.fullmatch(token) is not None
    )


def link_binding(user, purpose=RESET, target=""):
    """What a token must match: it changes with the stamp, the password hash and the address.

    `target` is the address a change-email link moves the account to.
    """
    key = current_app.config["SECRET_KEY"].encode()
    state = (purpose, user.security_stamp, user.password_hash, user.email, target)
    material = "\0".join(state).encode()
    return hmac.new(key, material, hashlib.sha256).hexdigest()[:32]


def make_token(user, purpose, **claims):
    """A signed link token for this user and purpose; `claims` are signed along."""
    now = clock.utcnow()
    claims.update(
        sub=str(user.id),
        purpose=purpose,
        iat=now,
        exp=now + timedelta(seconds=current_app.config[LIFETIMES[purpose]]),
        fp=link_binding(user, purpose, claims.get("email", "")),
    )
    return jwt.encode(claims, current_app.config["SECRET_KEY"], algorithm=ALGORITHM)


def read_token(token, purpose, *required):
    """The claims of a well-formed, signed, unexpired token of this purpose, else None.

    The binding is not compared here (see `user_for_token`): a caller may
    want to tell "already done" from "not valid".
    """
    if not looks_like_token(token):
        return None
    try:
        claims = jwt.decode(
            token,
            current_app.config["SECRET_KEY"],
            algorithms=[ALGORITHM],
            options={"require": REQUIRED_CLAIMS + list(required)},
        )
    except jwt.InvalidTokenError:
        return None
    # str.isdigit() would let "²" through to int(): check the shape ourselves.
    if claims["purpose"] != purpose or not SUBJECT_SHAPE.fullmatch(str(claims["sub"])):
        return None
    return claims


def user_for_claims(claims, purpose):
    """The user the claims name, if the account is still as it was when they were signed."""
    user = db.session.get(User, int(claims["sub"]))
    if user is None:
        return None
    binding = link_binding(user, purpose, str(claims.get("email", "")))
    return user if hmac.compare_digest(str(claims["fp"]), binding) else None


def user_for_token(token, purpose):
    """The user of a live token of this purpose, or None for anything else."""
    claims = read_token(token, purpose)
    return None if claims is None else user_for_claims(claims, purpose)


def make_reset_token(user):
    """A reset link token, valid until it expires or the password changes."""
    return make_token(user, RESET)


def user_for_reset_token(token):
    """The user this token may reset, or None for any token that is not a live reset token."""
    return user_for_token(token, RESET)
