"""Known browsers: the device cookie, and the notice of a sign-in from a browser that is news.

Each browser gets a long-lived, random device cookie at sign-in (scoped to
the sign-in page, HttpOnly, SameSite=Lax, Secure like the session cookie).
The server remembers, per account, the browsers that signed in to it, in a
table of its own rather than a column of SessionRecord: session records are
deleted when they end (sign-out, expiry, a password change), and a browser
must stay known after its owner signs out, or every sign-in would be "new".

A row holds SHA-256(user id, device id), never the device id: the id is 256
random bits, so a database reader can neither turn a row back into a cookie
nor tell that two accounts share a browser (the hash differs per account),
and no key is involved whose rotation would make every browser new at once.
Several accounts on one browser each know it separately.

The cookie carries the device id and an HMAC of it (SECRET_KEY, a salt of
its own): a known browser, in the manner of OWASP's device cookies against
online guessing. A browser counts as known to an account while its signed
cookie matches one of the account's rows: bound to the account (the row's
hash includes the user id), revocable (delete the row), and expiring with
the cookie (DEVICE_COOKIE_DURATION after the browser's last sign-in). Such
a browser is exempt from the account's sign-in pause and has a small
failure budget of its own instead (throttle.py, LOGIN_FAILURES_PER_DEVICE),
so a stranger's guesses never keep the owner out and a stolen device
cookie alone does not grant unlimited guessing. A bare id of an older
cookie still names the browser (no notice storm when signing started) but
is never a known browser for the pause: the next sign-in replaces it.

A sign-in from a browser this account does not know queues one notice,
composed in the mail worker from the outbox row's context (emails.py): when,
which browser and system, the masked address, and the devices page. There
is no notice while the account knows no browser at all (the first sign-in
after verification, or an account older than this feature): that browser is
recorded silently. The unique row makes it one notice per (account, browser),
however many requests race, and the per-account hourly limit of unasked-for
email caps someone who clears their cookies at every attempt.
"""

import hashlib
import re
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, url_for
from itsdangerous import BadSignature, Signer
from sqlalchemy.dialects import postgresql, sqlite

from microblog import clock
from microblog.auth import audit
from microblog.auth.emails import NEW_SIGN_IN
from microblog.auth.models import KnownDevice
from microblog.auth.user_agents import recognise_browser
from microblog.extensions import db
from microblog.mail import defer_email
from microblog.redact import mask_address

COOKIE_NAME = "device"
DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def fingerprint(user_id, device_id):
    """What a KnownDevice row holds of a browser: never its device id."""
    return hashlib.sha256(f"{user_id}:{device_id}".encode()).hexdigest()


def _signer():
    return Signer(current_app.secret_key, salt="device-cookie")


def read_cookie(value):
    """(device id, signed) of a device cookie; ("", False) when it is none of ours."""
    value = value or ""
    if DEVICE_ID.fullmatch(value):  # an older, unsigned cookie
        return value, False
    try:
        device_id = _signer().unsign(value).decode()
    except BadSignature:
        return "", False
    return (device_id, True) if DEVICE_ID.fullmatch(device_id) else ("", False)


def known_device(user_id, cookie):
    """The fingerprint of this browser if `user_id`'s account knows it, else None.

    One query for every signed cookie, whether or not the account exists
    (`user_id` None), so the lookup's cost tells nothing about names.
    """
    device_id, signed = read_cookie(cookie)
    if not signed:
        return None
    key = fingerprint(user_id, device_id)
    cutoff = clock.utcnow() - timedelta(seconds=current_app.config["DEVICE_COOKIE_DURATION"])
    found = db.session.scalar(
        sa.select(KnownDevice.id).where(
            KnownDevice.device_hash == key, KnownDevice.last_seen_at >= cutoff
        )
    )
    return key if found is not None and user_id is not None else None


def note_sign_in_device(user, cookie, user_agent, address):
    """Remember this browser for `user`; queue the notice if it is new to a known account.

    `cookie` is the browser's device cookie ("" when it sent none), and
    the id to give it back (`set_device_cookie`) is returned: a new one when
    the cookie is missing or not one of ours. Runs in the caller's
    transaction (the sign-in commits it).
    """
    device_id, _signed = read_cookie(cookie)
    if not device_id:  # none, or not one of ours: a new browser
        device_id = secrets.token_urlsafe(32)
    now = clock.utcnow()
    key = fingerprint(user.id, device_id)
    seen = db.session.execute(
        sa.update(KnownDevice)
        .where(KnownDevice.device_hash == key)
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )
    if seen.rowcount == 0:
        knows_others = db.session.scalar(
            sa.select(sa.exists().where(KnownDevice.user_id == user.id))
        )
        forget_stale_devices(user, now)
        if insert_device(user.id, key, now) and knows_others:
            defer_email(
                NEW_SIGN_IN,
                user.email,
                tag=NEW_SIGN_IN,
                context={
                    "user_id": user.id,
                    # Named and formatted by the composer, in the recipient's language.
                    "when": now.isoformat(timespec="seconds"),
                    "device": recognise_browser(user_agent),
                    "address": mask_address(address),
                },
            )
            audit.record("login.new_device", user=user.id)
    return device_id


def forget_devices(user):
    """Make every browser new to the account again; runs in the caller's transaction.

    After a reset or an address change, a browser that signed in before (an
    intruder's, say) must not sign in unannounced. One row no browser can
    match stays behind, so the next sign-in is told as a new browser rather
    than taken silently as the account's first; it expires like any other.
    """
    now = clock.utcnow()
    db.session.execute(
        sa.delete(KnownDevice)
        .where(KnownDevice.user_id == user.id)
        .execution_options(synchronize_session=False)
    )
    insert_device(user.id, fingerprint(user.id, secrets.token_urlsafe(32)), now)


def set_device_cookie(response, device_id):
    """Hand the browser its signed device cookie, renewed for its full lifetime."""
    config = current_app.config
    response.set_cookie(
        COOKIE_NAME,
        _signer().sign(device_id).decode(),
        max_age=config["DEVICE_COOKIE_DURATION"],
        path=url_for("auth.login"),  # sent with sign-ins only
        secure=cookie_secure(config),
        httponly=True,
        samesite="Lax",
    )
    return response


def cookie_secure(config):
    """Secure whenever the session cookie is, and always on an https site."""
    return bool(config["SESSION_COOKIE_SECURE"]) or config["PREFERRED_URL_SCHEME"] == "https"


def insert_device(user_id, key, now):
    """Add the row unless a concurrent sign-in from this browser just did: True if added."""
    dialect = db.session.get_bind().dialect.name
    values = {"user_id": user_id, "device_hash": key, "first_seen_at": now, "last_seen_at": now}
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(KnownDevice).values(values).on_conflict_do_nothing()
    else:
        statement = sa.insert(KnownDevice).values(values)
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT.
    return db.session.scalar(statement.returning(KnownDevice.id)) is not None


def forget_stale_devices(user, now):
    """Rows whose cookie has expired can never match again: delete them."""
    cutoff = now - timedelta(seconds=current_app.config["DEVICE_COOKIE_DURATION"])
    db.session.execute(
        sa.delete(KnownDevice)
        .where(KnownDevice.user_id == user.id, KnownDevice.last_seen_at < cutoff)
        .execution_options(synchronize_session=False)
    )


def forget_expired(now):
    """Housekeeping: delete every account's rows whose cookie has expired."""
    cutoff = now - timedelta(seconds=current_app.config["DEVICE_COOKIE_DURATION"])
    deleted = db.session.execute(
        sa.delete(KnownDevice)
        .where(KnownDevice.last_seen_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return deleted.rowcount
