"""Proving the address: sign-up without enumeration, the verification link, and clean-up.

Registration answers the same whether or not the address has an account,
and does the same expensive work (a password hash) either way: a new
address gets an unverified account and a verification email; a taken one
creates nothing and its owner is told that someone tried. Both emails are
deferred outbox rows composed in the mail worker (emails.py), like the reset email.
"""

import enum
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from microblog import clock
from microblog.auth import audit, security_stamp
from microblog.auth.deletion import erase_account
from microblog.auth.emails import ADDRESS_TAKEN, user_by_address
from microblog.auth.forms import username_taken
from microblog.auth.passwords import hash_password
from microblog.auth.signin import SignInOutcome, authenticate
from microblog.auth.tokens import VERIFY_EMAIL, user_for_token
from microblog.extensions import db
from microblog.mail import defer_email
from microblog.models import User, mark_email_verified, new_security_stamp
from microblog.redact import mask_email


class SignUpOutcome(enum.Enum):
    REGISTERED = "registered"  # or the address's owner told: the same answer
    NAME_TAKEN = "name_taken"
    VERIFIED = "verified"
    LINK_INVALID = "link_invalid"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105  (an outcome, not a password)
    PAUSED = "paused"


def register_account(username, address, password, locale):
    """Create an unverified account, or tell the address's owner; NAME_TAKEN if the name is.

    The password is hashed on both paths, so that the answer takes as long
    for a taken address as for a free one. `locale` is the language the
    account's emails will be written in, the verification email first.
    """
    password_hash = hash_password(password)
    if not address_has_account(address):
        user = User(
            username=username,
            email=address,
            password_hash=password_hash,
            locale=locale,
            security_stamp=new_security_stamp(),
        )
        db.session.add(user)
        context = security_stamp.stamp_context(user)
        defer_email(VERIFY_EMAIL, address, tag=VERIFY_EMAIL, context=context)
        try:
            db.session.commit()
        except IntegrityError:  # lost a race for the name or the address
            db.session.rollback()
            if username_taken(username):
                return SignUpOutcome.NAME_TAKEN
        else:
            audit.record("register", user=user.id)
            return SignUpOutcome.REGISTERED
    tell_owner_of_attempt(address, "register")
    db.session.commit()
    audit.record("register.address_taken", email=mask_email(address))
    return SignUpOutcome.REGISTERED


def address_has_account(address):
    """Whether the (normalised) address belongs to an account, verified or not."""
    return db.session.scalar(sa.select(User.id).where(User.email == address)) is not None


def tell_owner_of_attempt(address, attempt):
    """Queue the "someone tried to use your address" notice (sign-up or email change)."""
    defer_email(ADDRESS_TAKEN, address, tag=ADDRESS_TAKEN, context={"attempt": attempt})


def account_to_verify(token):
    """The account a live verification link is for, or None; reading it changes nothing."""
    user = user_for_token(token, VERIFY_EMAIL)
    return user if user is not None and not user.email_verified else None


def verify_address(token, password, address):
    """The link's form, posted: (outcome, the account when VERIFIED, else None).

    The mailbox (the link) and the password together, from one person: a
    link alone, as a mail scanner fetches it, proves nothing about who asked.
    The password is checked as a sign-in is, counted by the same throttle
    under the account's name. The link dies at use: the stamp moves.
    """
    user = account_to_verify(token)
    if user is None:
        audit.record("verify_email.rejected", reason="invalid_token")
        return SignUpOutcome.LINK_INVALID, None
    attempt = authenticate(user.username, password, address)
    if attempt.outcome is SignInOutcome.PAUSED:
        return SignUpOutcome.PAUSED, None
    if attempt.user is None or attempt.user.id != user.id:
        audit.record("verify_email.rejected", reason="wrong_password", user=user.id)
        return SignUpOutcome.WRONG_PASSWORD, None
    mark_email_verified(user.id)
    security_stamp.bump(user)
    db.session.commit()
    audit.record("verify_email.completed", user=user.id)
    return SignUpOutcome.VERIFIED, db.session.get(User, user.id)


def resend_verification(address):
    """Queue a new verification link; the composer decides whether the address needs one."""
    context = security_stamp.stamp_context(user_by_address(address))
    defer_email(VERIFY_EMAIL, address, tag=VERIFY_EMAIL, context=context)
    db.session.commit()
    audit.record("verify_email.requested", email=mask_email(address))


def purge_unverified_accounts():
    """Remove accounts not verified in time, freeing their names and addresses."""
    days = current_app.config["UNVERIFIED_ACCOUNT_DAYS"]
    cutoff = clock.utcnow() - timedelta(days=days)
    unverified = (User.email_verified_at.is_(None), User.created_at < cutoff)
    removed = 0
    for user in db.session.scalars(sa.select(User).where(*unverified)).all():
        user_id = user.id
        if erase_account(user, *unverified):  # not verified since the SELECT
            db.session.commit()
            audit.record("account.purged_unverified", user=user_id)
            removed += 1
        else:
            db.session.rollback()
    return removed
