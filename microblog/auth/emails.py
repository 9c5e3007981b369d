"""Everything auth sends: one composer per kind of email, and the kinds (tags) they count under.

A flow queues a message of a kind (`defer_email`); the composer registered
for the kind writes it in the mail worker, in the recipient's stored
language, or drops it (returns False): the account is gone, or it has had
its ACCOUNT_EMAILS_PER_HOUR of that kind already. Each kind is capped
separately, per account.
"""

import json
from datetime import datetime

import sqlalchemy as sa
from email_validator import validate_email
from flask import current_app, render_template
from flask_babel import lazy_gettext as _l

from microblog import clock, i18n
from microblog.auth import audit
from microblog.auth.models import LoginThrottle
from microblog.auth.tokens import CHANGE_EMAIL, VERIFY_EMAIL, make_reset_token, make_token
from microblog.auth.user_agents import name_browser
from microblog.extensions import db
from microblog.mail import composer, count_recent_emails, defer_email, rehearse_send
from microblog.models import User
from microblog.redact import mask_email
from microblog.urls import external_url

# The kinds; VERIFY_EMAIL and CHANGE_EMAIL are also the purposes of their links (tokens.py).
RESET_TAG = "password_reset"
PASSWORD_CHANGED = "password_changed"  # noqa: S105  (an email kind, not a password)
PAUSE_TAG = "login_paused"
NEW_SIGN_IN = "new_sign_in"
ADDRESS_TAKEN = "address_taken"
CHANGE_NOTICE = "email_change_notice"
GOODBYE = "account_deleted"


def normalize_email(address):
    """The one spelling of an address we store and look up: validated, ASCII, lower-case.

    Addresses that need SMTPUTF8 are refused with a clear error rather than
    accepted and then lost in the sender (many servers do not speak it).
    """
    result = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    return result.ascii_email.lower()


def user_by_address(address):
    """The verified account of a normalised address, or None.

    An address belongs to an account once verified; sign-ups still waiting
    on it never shadow its owner (auth.signup).
    """
    return db.session.scalar(
        sa.select(User).where(User.email == address, User.email_verified_at.is_not(None))
    )


def pending_sign_up(message):
    """The unverified account a verification email is for: the row's, else the newest."""
    query = sa.select(User).where(
        User.email == message.recipient_list[0], User.email_verified_at.is_(None)
    )
    if message.user_id is not None:
        query = query.where(User.id == message.user_id)
    return db.session.scalar(query.order_by(User.id.desc()).limit(1))


def stamp_holds(message, user):
    """Whether the account is as it was when this link email was asked for (security_stamp.py)."""
    return (message.context or {}).get("stamp") == user.security_stamp


def within_limit(user, tag):
    """Whether the account may get one more email of this kind this hour (see the module)."""
    if count_recent_emails(user, tag) < current_app.config["ACCOUNT_EMAILS_PER_HOUR"]:
        return True
    audit.warning(f"{tag}.throttled", user=user.id)
    return False


def write_email(message, recipient, locale, subject, template, **context):
    """Fill in a deferred message: one recipient, text and HTML parts from one template name.

    `locale` is the recipient's stored language, never the request's: the
    request that caused the email may come from anyone's browser.
    """
    message.recipients = json.dumps([recipient])
    message.subject, message.text_body, message.html_body = render_email(
        locale, subject, template, **context
    )
    return True


def render_email(locale, subject, template, **context):
    """Subject, text and HTML in `locale`; `subject` is a lazy msgid, translated here.

    The "[Microblog] " prefix is the brand, the same in every language. The
    subject may hold any character: the sender encodes it (RFC 2047).
    """
    with i18n.in_locale(locale):
        return (
            f"[Microblog] {subject}",
            render_template(f"email/{template}.txt", **context),
            render_template(f"email/{template}.html", **context),
        )


# The password reset.


@composer(RESET_TAG)
def compose_password_reset(message):
    """Turn a queued reset request into an email, or drop it (unknown, throttled).

    Every address costs the worker the same work: an unknown one is counted
    and its email written for a stand-in account that no row has, and only
    then is it dropped (a throttled one likewise, its MIME message built and
    thrown away), so that what the worker did for one request does not show
    in the time of the requests after it; only the SMTP exchange differs.
    """
    address = message.recipient_list[0]
    user = user_by_address(address)
    recipient = user or stand_in(address)
    limit = current_app.config["ACCOUNT_EMAILS_PER_HOUR"]
    throttled = count_recent_emails(recipient, RESET_TAG) >= limit
    subject, text_body, html_body = write_reset_email(recipient)
    outdated = user is not None and not stamp_holds(message, user)
    if user is None or outdated or throttled:
        rehearse_send(message, subject, text_body, html_body)
    if user is None:
        audit.record("password_reset.unknown_address", email=mask_email(address))
        return False
    if outdated:  # the password or the address changed since the request
        audit.record("password_reset.outdated", user=user.id)
        return False
    if throttled:
        audit.warning("password_reset.throttled", user=user.id)
        return False
    message.user_id = user.id
    message.recipients = json.dumps([user.email])
    message.subject, message.text_body, message.html_body = subject, text_body, html_body
    return True


def stand_in(address):
    """An account no row has (id 0): what an unknown address costs, never what it gets."""
    return User(
        id=0,
        username="stand-in",
        email=address,
        password_hash="",
        session_token="",
        security_stamp="",
        locale=i18n.languages()[0],
    )


def write_reset_email(user):
    """Subject, text and HTML of the reset email for this user, with a fresh link."""
    link = external_url("auth.reset_password_link", token=make_reset_token(user))
    return render_email(
        user.locale, _l("Reset your password"), "reset_password", user=user, link=link
    )


def send_password_changed_notice(user):
    """Tell the owner, so that a reset they did not ask for does not go unnoticed.

    Queued in the caller's transaction, written in the mail worker like every
    other email (in the recipient's terms, not the request's).
    """
    defer_email(
        PASSWORD_CHANGED,
        user.email,
        tag=PASSWORD_CHANGED,
        context={"user_id": user.id, "when": clock.utcnow().isoformat()},
    )


@composer(PASSWORD_CHANGED)
def compose_password_changed(message):
    """The notice, to the account's current address; dropped if the account is gone."""
    context = message.context or {}
    user = db.session.get(User, context.get("user_id") or 0)
    if user is None:
        return False
    message.user_id = user.id
    return write_email(
        message,
        user.email,
        user.locale,
        _l("Your password was changed"),
        PASSWORD_CHANGED,
        user=user,
        link=external_url("auth.reset_password_request"),
        when=datetime.fromisoformat(context["when"]),
    )


# Sign-in: a pause, a new browser.


@composer(PAUSE_TAG)
def compose_pause_notice(message):
    """Tell the owner their sign-in is paused; drop it for keys of unknown names."""
    row = db.session.get(LoginThrottle, message.recipient_list[0])
    user = db.session.get(User, row.user_id) if row is not None and row.user_id else None
    if user is None or row.paused_until is None:
        return False
    message.user_id = user.id
    return write_email(
        message,
        user.email,
        user.locale,
        _l("Sign-in to your account is paused"),
        PAUSE_TAG,
        user=user,
        paused_at=row.paused_at,
        paused_until=row.paused_until,
        addresses=json.loads(row.addresses or "[]"),
        link=external_url("auth.reset_password_request"),
        limit=current_app.config["LOGIN_FAILURES_PER_ACCOUNT"],
    )


@composer(NEW_SIGN_IN)
def compose_new_sign_in(message):
    """The notice, to the account's current address; dropped if the account is gone."""
    context = message.context or {}
    user = db.session.get(User, context.get("user_id") or 0)
    if user is None or not within_limit(user, NEW_SIGN_IN):
        return False
    message.user_id = user.id
    with i18n.in_locale(user.locale):  # "Firefox on Linux" is a sentence too
        device = name_browser(*(context.get("device") or (None, None)))
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


# Sign-up: the verification link, and "someone tried to use your address".


@composer(VERIFY_EMAIL)
def compose_verification(message):
    """The link for a sign-up still waiting; the "someone tried" notice if the address is taken.

    Decided here, in the worker, so that the sign-up itself does the same
    work whether or not the address already has an account.
    """
    owner = user_by_address(message.recipient_list[0])
    if owner is not None:
        if message.user_id is None:  # a resend: nobody signed up, nothing to tell
            return False
        return notify_owner(message, owner, "register")
    user = pending_sign_up(message)
    if user is None or not stamp_holds(message, user):
        audit.record("verify_email.not_needed", email=mask_email(message.recipient_list[0]))
        return False
    if not within_limit(user, VERIFY_EMAIL):
        return False
    link = external_url("auth.verify_email", token=make_token(user, VERIFY_EMAIL))
    message.user_id = user.id
    return write_email(
        message,
        user.email,
        user.locale,
        _l("Verify your email address"),
        "verify_email",
        user=user,
        link=link,
    )


@composer(ADDRESS_TAKEN)
def compose_address_taken(message):
    """Tell the owner that someone tried to use their address; dropped if it has no owner now."""
    owner = user_by_address(message.recipient_list[0])
    attempt = (message.context or {}).get("attempt", "register")
    return owner is not None and notify_owner(message, owner, attempt)


def notify_owner(message, owner, attempt):
    """Write the "someone tried" notice to `owner`, within the per-account limit."""
    if not within_limit(owner, ADDRESS_TAKEN):
        return False
    message.user_id = owner.id
    message.tag = ADDRESS_TAKEN
    links = {
        "login": external_url("auth.login"),
        "reset": external_url("auth.reset_password_request"),
    }
    return write_email(
        message,
        owner.email,
        owner.locale,
        _l("Someone tried to use your email address"),
        ADDRESS_TAKEN,
        user=owner,
        attempt=attempt,
        **links,
    )


# The email change: the link to the new address, the notice to the current one.


@composer(CHANGE_EMAIL)
def compose_email_change(message):
    """The confirmation link to the new address, or the notice to the address's owner."""
    new_address = message.recipient_list[0]
    user = db.session.get(User, message.user_id)
    if user is None or user.email == new_address or not stamp_holds(message, user):
        return False  # gone, done, or changed since the request: the link would be stale
    owner = user_by_address(new_address)
    if owner is not None:
        return notify_owner(message, owner, "change_email")
    if not within_limit(user, CHANGE_EMAIL):
        return False
    token = make_token(user, CHANGE_EMAIL, email=new_address)
    link = external_url("auth.confirm_email", token=token)
    return write_email(
        message,
        new_address,
        user.locale,
        _l("Confirm your new email address"),
        "change_email",
        user=user,
        link=link,
    )


@composer(CHANGE_NOTICE)
def compose_change_notice(message):
    """Tell the current address that a change was asked for, and what to do if not by them."""
    user = db.session.get(User, message.user_id)
    if user is None or not within_limit(user, CHANGE_NOTICE):
        return False
    masked = (message.context or {}).get("new", "***")
    link = external_url("auth.reset_password_request")
    return write_email(
        message,
        message.recipient_list[0],
        user.locale,
        _l("A change of your email address was requested"),
        CHANGE_NOTICE,
        user=user,
        new_address=masked,
        link=link,
    )


# Deletion.


@composer(GOODBYE)
def compose_goodbye(message):
    """The goodbye: everything it names comes from the row, the user is gone."""
    context = message.context or {}
    return write_email(
        message,
        message.recipient_list[0],
        context.get("locale"),
        _l("Your account was deleted"),
        GOODBYE,
        username=context.get("username", ""),
    )
