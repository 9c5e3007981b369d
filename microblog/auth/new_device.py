"""The new sign-in notice: a browser that never signed in to this account before is news.

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

A sign-in from a browser this account does not know queues one notice,
composed in the mail worker from the outbox row's context: when, which
browser and system, the masked address, and the devices page. There is no
notice while the account knows no browser at all (the first sign-in after
verification, or an account older than this feature): that browser is
recorded silently. The unique row makes it one notice per (account, browser),
however many requests race, and the per-account hourly limit of unasked-for
email caps someone who clears their cookies at every attempt.
"""

import hashlib
import logging
import re
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import after_this_request, current_app, request, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy.dialects import postgresql, sqlite

from microblog import clock, i18n
from microblog.auth.emails import count_recent_emails, write_email
from microblog.auth.models import KnownDevice
from microblog.auth.sessions import name_device, recognise_device
from microblog.extensions import db
from microblog.mail import composer, defer_email
from microblog.models import User
from microblog.redact import mask_address
from microblog.urls import external_url

audit = logging.getLogger("microblog.audit")

COOKIE_NAME = "device"
NEW_SIGN_IN = "new_sign_in"
DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def fingerprint(user_id, device_id):
    return hashlib.sha256(f"{user_id}:{device_id}".encode()).hexdigest()


def note_sign_in_device(user):
    """Remember this browser for `user`; queue the notice if it is new to a known account.

    Runs in the caller's transaction (the sign-in commits it) and hands the
    response the device cookie, renewed for its full lifetime.
    """
    device_id = request.cookies.get(COOKIE_NAME, "")
    if not DEVICE_ID.fullmatch(device_id):  # none, or not one of ours: a new browser
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
                    "device": recognise_device(request.user_agent.string),
                    "address": mask_address(request.remote_addr),
                },
            )
            audit.info("login.new_device user=%s", user.id)

    @after_this_request
    def set_cookie(response):
        config = current_app.config
        response.set_cookie(
            COOKIE_NAME,
            device_id,
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


@composer(NEW_SIGN_IN)
def compose_new_sign_in(message):
    """The notice, to the account's current address; dropped if the account is gone."""
    context = message.context or {}
    user = db.session.get(User, context.get("user_id") or 0)
    if user is None:
        return False
    if count_recent_emails(user, NEW_SIGN_IN) >= current_app.config["RESET_EMAILS_PER_HOUR"]:
        audit.warning("%s.throttled user=%s", NEW_SIGN_IN, user.id)
        return False
    message.user_id = user.id
    with i18n.in_locale(user.locale):  # "Firefox on Linux" is a sentence too
        device = name_device(*(context.get("device") or (None, None)))
    return write_email(
        message,
        user.email,
        user.locale,
        _l("New sign-in to your account"),
        NEW_SIGN_IN,
        user=user,
        when=datetime.fromisoformat(context["when"]),
        device=device,
        address=context.get("address"),
        sessions=external_url("auth.sessions"),
        change_password=external_url("auth.change_password"),
    )
