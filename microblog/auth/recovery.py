"""The password-reset flow, outside of HTTP: request it, then complete it."""

import logging

import sqlalchemy as sa

from microblog.auth.emails import RESET_TAG, send_password_changed_notice
from microblog.auth.passwords import hash_password
from microblog.extensions import db
from microblog.mail import defer_email
from microblog.models import User, mark_email_verified, new_session_token
from microblog.redact import mask_email

audit = logging.getLogger("microblog.audit")


def request_password_reset(address):
    """Queue a reset for this (normalised) address, whoever owns it, if anyone.

    The lookup, the per-account limit and the email all happen in the mail
    worker: the request does the same small write for every address.
    """
    defer_email(RESET_TAG, address, tag=RESET_TAG)
    db.session.commit()
    audit.info("password_reset.requested email=%s", mask_email(address))


def replace_password(user, new_password):
    """Set the new password if the user still has the password hash we checked.

    A compare-and-swap in one UPDATE: of two simultaneous submissions exactly
    one succeeds. The session token rotates with the password, which logs out
    every session and remember-me cookie of the user (and kills every reset
    link), and the owner is told by email in the same transaction.
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
    send_password_changed_notice(user)
    db.session.commit()
    return True


def complete_password_reset(user, new_password):
    """Set the new password from a reset link; False when the link was used meanwhile."""
    if not replace_password(user, new_password):
        audit.warning("password_reset.rejected reason=already_used user=%s", user.id)
        return False
    mark_email_verified(user.id)  # the link proved the address, as a verification link does
    db.session.commit()
    audit.info("password_reset.completed user=%s", user.id)
    return True
