"""The password flows, outside of HTTP: request a reset, complete it, change the password."""

import enum

import sqlalchemy as sa

from microblog.auth import audit, security_stamp, throttle
from microblog.auth.devices import forget_devices
from microblog.auth.emails import RESET_TAG, send_password_changed_notice, user_by_address
from microblog.auth.passwords import hash_password
from microblog.auth.sessions import sign_in
from microblog.auth.tokens import user_for_reset_token
from microblog.extensions import db
from microblog.mail import defer_email
from microblog.models import User, mark_email_verified, new_session_token
from microblog.redact import mask_email


class RecoveryOutcome(enum.Enum):
    PASSWORD_CHANGED = "password_changed"  # noqa: S105  (an outcome, not a password)
    CHANGED_MEANWHILE = "changed_meanwhile"


def request_password_reset(address):
    """Queue a reset for this (normalised) address, whoever owns it, if anyone.

    The per-account limit and the email happen in the mail worker: the
    request does one indexed read (the account's security stamp, if any, so
    that a change before the email is written kills it) and the same small
    write for every address.
    """
    context = security_stamp.stamp_context(user_by_address(address))
    defer_email(RESET_TAG, address, tag=RESET_TAG, context=context)
    db.session.commit()
    audit.record("password_reset.requested", email=mask_email(address))


def user_for_reset_link(token):
    """The account a live reset link may reset, or None (recorded: the link was refused)."""
    user = user_for_reset_token(token)
    if user is None:
        audit.record("password_reset.rejected", reason="invalid_token")
    return user


def replace_password(user, new_password):
    """Set the new password if the user still has the password hash we checked.

    A compare-and-swap in one UPDATE: of two simultaneous submissions exactly
    one succeeds. The session token rotates with the password, which logs out
    every session and remember-me cookie of the user; the security stamp
    moves, which kills every emailed link; and the owner is told by email in
    the same transaction.
    """
    result = db.session.execute(
        sa.update(User)
        .where(User.id == user.id, User.password_hash == user.password_hash)
        .values(password_hash=hash_password(new_password), session_token=new_session_token())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        return False
    security_stamp.bump(user)
    send_password_changed_notice(user)
    db.session.commit()
    return True


def complete_password_reset(user, new_password):
    """Set the new password from a reset link; False when the link was used meanwhile.

    The link proved the address, as a verification link does, and that the
    owner holds the mailbox: a sign-in pause is lifted.
    """
    if not replace_password(user, new_password):
        audit.warning("password_reset.rejected", reason="already_used", user=user.id)
        return False
    mark_email_verified(user.id)
    forget_devices(user)  # the rotated session token already ended every session
    db.session.commit()
    audit.record("password_reset.completed", user=user.id)
    throttle.lift(user)
    return True


def change_password(user, new_password, remembered, user_agent, address):
    """Change the password of a signed-in user: this session goes on, every other one ends.

    The rotated session token ended this session's record too: it is signed
    in again under the new one, remembered as it was.
    """
    if not replace_password(user, new_password):
        return RecoveryOutcome.CHANGED_MEANWHILE
    sign_in(db.session.get(User, user.id), remembered, user_agent, address)
    audit.record("password_change.completed", user=user.id)
    return RecoveryOutcome.PASSWORD_CHANGED
