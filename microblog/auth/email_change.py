"""Changing the address: nothing changes until the new address proves it receives mail.

The request queues two deferred emails, whatever the new address: to the
new address a confirmation link (or, if it belongs to another account, the
"someone tried" notice to its owner), and to the current address a notice
naming the new one, masked. The link works in any browser, signed in or not.
"""

import enum

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from microblog import clock
from microblog.auth import audit, security_stamp
from microblog.auth.devices import forget_devices
from microblog.auth.emails import CHANGE_NOTICE, user_by_address
from microblog.auth.sessions import sign_out_other_sessions
from microblog.auth.tokens import CHANGE_EMAIL, read_token, user_for_claims
from microblog.extensions import db
from microblog.mail import clear_undeliverable, count_recent_requests, defer_email
from microblog.models import User
from microblog.redact import mask_email


class EmailChangeOutcome(enum.Enum):
    CHANGED = "changed"  # now, or by an earlier opening of the same link
    LINK_INVALID = "link_invalid"
    ADDRESS_TAKEN = "address_taken"


def request_email_change(user, new_address):
    """Queue both emails; the request does the same writes for a free or a taken address.

    The requester's hourly quota of links (ACCOUNT_EMAILS_PER_HOUR) is
    charged here, per request, before anything looks at the new address:
    charged in the composer, it was spent only when the address was free,
    and counting the links told which addresses had an account.
    """
    requests = count_recent_requests(user, CHANGE_NOTICE)  # one notice per request
    if requests < current_app.config["ACCOUNT_EMAILS_PER_HOUR"]:
        context = security_stamp.stamp_context(user)
        link = defer_email(CHANGE_EMAIL, new_address, tag=CHANGE_EMAIL, context=context)
        link.user_id = user.id
    notice = defer_email(
        CHANGE_NOTICE, user.email, tag=CHANGE_NOTICE, context={"new": mask_email(new_address)}
    )
    notice.user_id = user.id
    db.session.commit()
    audit.record("email_change.requested", user=user.id)


def address_to_confirm(token):
    """The address a well-formed change link names, or None; reading it changes nothing."""
    claims = read_token(token, CHANGE_EMAIL, "email")
    new_address = claims and claims["email"]
    return new_address if isinstance(new_address, str) else None


def confirm_email_change(token):
    """The link's form, posted: (outcome, the new address when the link names one).

    The change happens once; opening the link again is harmless (CHANGED).
    """
    claims = read_token(token, CHANGE_EMAIL, "email")
    new_address = claims and claims["email"]
    if not isinstance(new_address, str):
        audit.record("email_change.rejected", reason="invalid_token")
        return EmailChangeOutcome.LINK_INVALID, None
    done = db.session.scalar(
        sa.select(User.id).where(User.id == int(claims["sub"]), User.email == new_address)
    )
    if done is None:
        user = user_for_claims(claims, CHANGE_EMAIL)
        if user is None:
            audit.record("email_change.rejected", reason="invalid_token")
            return EmailChangeOutcome.LINK_INVALID, new_address
        if not change_address(user, new_address):
            if user_by_address(new_address) is None:  # another link of hers won the race
                return EmailChangeOutcome.LINK_INVALID, new_address
            audit.record("email_change.rejected", reason="address_taken", user=user.id)
            return EmailChangeOutcome.ADDRESS_TAKEN, new_address
        forget_devices(user)  # committed with the sign-outs
        ended = sign_out_other_sessions(user)
        audit.record("email_change.completed", user=user.id, signed_out=ended)
    return EmailChangeOutcome.CHANGED, new_address


def change_address(user, new_address):
    """Move the account to the proven address; False if it was taken, or the account changed.

    A compare-and-swap on the current address: of two links opened at once,
    one wins. The new address counts as verified: the link proved it. The
    security stamp moves with it, killing every other link of the account.
    """
    try:
        result = db.session.execute(
            sa.update(User)
            .where(User.id == user.id, User.email == user.email)
            .values(email=new_address, email_verified_at=clock.utcnow())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            security_stamp.bump(user)
        db.session.commit()
    except IntegrityError:  # the unique index: someone registered the address meanwhile
        db.session.rollback()
        return False
    return result.rowcount == 1


def keep_address(user):
    """The owner says the address that mail could not reach is right: try it again.

    The mark only stops activity mail, so the owner's word is enough to lift
    it; if the address bounces again, it is marked again.
    """
    clear_undeliverable(user.email)
    db.session.commit()
    audit.record("email.kept_after_bounce", user=user.id)
