"""Password-reset tokens: signed JWTs that die on first use, without a token table.

The token carries a fingerprint (an HMAC, never the hash itself) of the
user's password hash and email address. Resetting or changing the password,
or changing the email address, changes the fingerprint: every earlier token
stops matching.
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

PURPOSE = "reset_password"
ALGORITHM = "HS256"
MAX_TOKEN_LENGTH = 1024  # real tokens are about 250 characters
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


def fingerprint(user):
    """What a token must match: it changes with the password hash and the email address."""
    key = current_app.config["SECRET_KEY"].encode()
    material = f"{PURPOSE}\0{user.password_hash}\0{user.email}".encode()
    return hmac.new(key, material, hashlib.sha256).hexdigest()[:32]


def make_reset_token(user):
    """A signed link token for this user, valid until it expires or the password changes."""
    now = clock.utcnow()
    claims = {
        "sub": str(user.id),
        "purpose": PURPOSE,
        "iat": now,
        "exp": now + timedelta(seconds=current_app.config["RESET_TOKEN_EXPIRES_IN"]),
        "fp": fingerprint(user),
    }
    return jwt.encode(claims, current_app.config["SECRET_KEY"], algorithm=ALGORITHM)


def user_for_reset_token(token):
    """The user this token may reset, or None for any token that is not a live reset token."""
    if not looks_like_token(token):
        return None
    try:
        claims = jwt.decode(
            token,
            current_app.config["SECRET_KEY"],
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp", "iat", "purpose", "fp"]},
        )
    except jwt.InvalidTokenError:
        return None
    # str.isdigit() would let "²" through to int(): check the shape ourselves.
    if claims["purpose"] != PURPOSE or not SUBJECT_SHAPE.fullmatch(str(claims["sub"])):
        return None
    user = db.session.get(User, int(claims["sub"]))
    if user is None or not hmac.compare_digest(str(claims["fp"]), fingerprint(user)):
        return None
    return user
