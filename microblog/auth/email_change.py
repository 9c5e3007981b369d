"""Changing the address: nothing changes until the new address proves it receives mail.

The request queues two deferred emails, whatever the new address: to the
new address a confirmation link (or, if it belongs to another account, the
"someone tried" notice to its owner), and to the current address a notice
naming the new one, masked. The link works in any browser, signed in or not.
"""

import logging

import sqlalchemy as sa
from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy.exc import IntegrityError

from microblog import clock
from microblog.auth.emails import write_email
from microblog.auth.forms import ChangeEmailForm
from microblog.auth.routes import bp, config_limit
from microblog.auth.tokens import CHANGE_EMAIL, make_token, read_token, user_for_claims
from microblog.auth.verification import notify_owner, user_by_address, within_limit
from microblog.extensions import db
from microblog.mail import composer, defer_email
from microblog.models import User
from microblog.redact import mask_email
from microblog.security import secret_page
from microblog.urls import external_url

audit = logging.getLogger("microblog.audit")

CHANGE_NOTICE = "email_change_notice"


def request_email_change(user, new_address):
    """Queue both emails; the request does the same two writes for a free or a taken address."""
    defer_email(CHANGE_EMAIL, new_address, tag=CHANGE_EMAIL).user_id = user.id
    notice = defer_email(
        CHANGE_NOTICE, user.email, tag=CHANGE_NOTICE, context={"new": mask_email(new_address)}
    )
    notice.user_id = user.id
    db.session.commit()
    audit.info("email_change.requested user=%s", user.id)


@composer(CHANGE_EMAIL)
def compose_email_change(message):
    """The confirmation link to the new address, or the notice to the address's owner."""
    new_address = message.recipient_list[0]
    user = db.session.get(User, message.user_id)
    if user is None or user.email == new_address:
        return False
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


def change_address(user, new_address):
    """Move the account to the proven address; False if it was taken, or the account changed.

    A compare-and-swap on the current address: of two links opened at once,
    one wins. The new address counts as verified: the link proved it.
    """
    try:
        result = db.session.execute(
            sa.update(User)
            .where(User.id == user.id, User.email == user.email)
            .values(email=new_address, email_verified_at=clock.utcnow())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    except IntegrityError:  # the unique index: someone registered the address meanwhile
        db.session.rollback()
        return False
    return result.rowcount == 1


@bp.route("/change_email", methods=["GET", "POST"])
@login_required
@config_limit("LOGIN_RATE_LIMIT")
def change_email():
    """Ask to move the account to another address; the same answer whether it is free or not."""
    user = current_user._get_current_object()
    form = ChangeEmailForm(user)
    if form.validate_on_submit():
        request_email_change(user, form.email.data)
        flash(
            _("We sent a link to the new address. Your address changes when you open it."),
            "info",
        )
        return redirect(url_for("main.user", username=user.username))
    return render_template("auth/change_email.html", title=_("Change email address"), form=form)


@bp.route("/confirm_email/", defaults={"token": ""})
@bp.route("/confirm_email/<token>")
@secret_page(referrer_policy="no-referrer")
def confirm_email(token):
    """The link sent to the new address: the change happens here, once; again is harmless."""
    claims = read_token(token, CHANGE_EMAIL, "email")
    new_address = claims and claims["email"]
    if not isinstance(new_address, str):
        audit.info("email_change.rejected reason=invalid_token")
        return render_template("auth/link_invalid.html", title=_("Link not valid")), 400
    done = db.session.scalar(
        sa.select(User.id).where(User.id == int(claims["sub"]), User.email == new_address)
    )
    if done is None:
        user = user_for_claims(claims, CHANGE_EMAIL)
        if user is None:
            audit.info("email_change.rejected reason=invalid_token")
            return render_template("auth/link_invalid.html", title=_("Link not valid")), 400
        if not change_address(user, new_address):
            if user_by_address(new_address) is None:  # another link of hers won the race
                return render_template("auth/link_invalid.html", title=_("Link not valid")), 400
            audit.info("email_change.rejected reason=address_taken user=%s", user.id)
            return render_template("auth/email_taken.html", title=_("Address taken")), 409
        audit.info("email_change.completed user=%s", user.id)
    flash(_("Your email address is now %(address)s.", address=new_address), "success")
    return redirect(url_for("main.index" if current_user.is_authenticated else "auth.login"))
