"""Proving the address: sign-up without enumeration, the verification link, and clean-up.

Registration answers the same whether or not the address has an account,
and leaves the same trace: every sign-up creates an unverified account,
invisible and unable to sign in, holding its name. An address belongs to an
account only once verified, so several sign-ups may wait on one address,
each with a link of its own; the first verified wins and the others are
erased. Whether the email is a link or the "someone tried" notice to the
address's owner is decided in the mail worker (emails.py), like the reset.
"""

import enum
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from microblog import clock
from microblog.auth import audit, security_stamp
from microblog.auth.deletion import erase_account
from microblog.auth.passwords import hash_password
from microblog.auth.signin import SignInOutcome, authenticate
from microblog.auth.tokens import VERIFY_EMAIL, user_for_token
from microblog.extensions import db
from microblog.mail import clear_undeliverable, defer_email
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
    """Create an unverified account holding the name, whatever the address; or NAME_TAKEN.

    The same work on every path: a password hash, the account's row and one
    deferred email, so that neither the answer, nor its time, nor what is
    left behind (the name taken, the sign-in's answer) tells whether the
    address already had an account. The worker decides what the email is: a
    link for this sign-up, or the "someone tried" notice to the address's
    owner. `locale` is the language of the account's emails.
    """
    user = User(
        username=username,
        email=address,
        password_hash=hash_password(password),
        locale=locale,
        security_stamp=new_security_stamp(),
    )
    db.session.add(user)
    try:
        db.session.flush()
        queue_verification(user)
        db.session.commit()
    except IntegrityError:  # lost a race for the name
        db.session.rollback()
        return SignUpOutcome.NAME_TAKEN
    audit.record("register", user=user.id)
    return SignUpOutcome.REGISTERED


def queue_verification(user):
    """Queue a verification email for this waiting account, bound to its stamp now."""
    context = security_stamp.stamp_context(user)
    defer_email(VERIFY_EMAIL, user.email, tag=VERIFY_EMAIL, context=context).user_id = user.id


def resend_to_waiting_account(user):
    """A correct password on a waiting account: a fresh link, never a different answer."""
    queue_verification(user)
    db.session.commit()
    audit.record("verify_email.requested", user=user.id)


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
    if not win_address(user):
        audit.record("verify_email.rejected", reason="address_taken", user=user.id)
        return SignUpOutcome.LINK_INVALID, None
    audit.record("verify_email.completed", user=user.id)
    return SignUpOutcome.VERIFIED, db.session.get(User, user.id)


def win_address(user):
    """Verify `user`'s address; every other sign-up waiting on it dies. False if one won first.

    The unique index on verified addresses decides a race between two links.
    """
    waiting = (User.email == user.email, User.id != user.id, User.email_verified_at.is_(None))
    for other in db.session.scalars(sa.select(User).where(*waiting)).all():
        erase_account(other, User.email_verified_at.is_(None))
    clear_undeliverable(user.email)  # the link arrived: the address receives mail
    mark_email_verified(user.id)
    security_stamp.bump(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return False
    return True


def resend_verification(address):
    """Queue a new verification link; the composer decides whether the address needs one."""
    waiting = db.session.scalar(
        sa.select(User)
        .where(User.email == address, User.email_verified_at.is_(None))
        .order_by(User.id.desc())
        .limit(1)
    )
    context = security_stamp.stamp_context(waiting)
    defer_email(VERIFY_EMAIL, address, tag=VERIFY_EMAIL, context=context)
    db.session.commit()
    audit.record("verify_email.requested", email=mask_email(address))


def purge_unverified_accounts():
    """Remove accounts not verified in time, freeing their names and addresses."""
    days = current_app.config["UNVERIFIED_ACCOUNT_DAYS"]
    cutoff = clock.utcnow() - timedelta(days=days)
    # A deleted account is unverified too, but its own job removes it.
    unverified = (
        User.email_verified_at.is_(None),
        User.created_at < cutoff,
        User.deleted_at.is_(None),
    )
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
