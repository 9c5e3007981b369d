"""Proving the address: sign-up without enumeration, the verification link, and clean-up.

Registration answers the same whether or not the address has an account,
and does the same expensive work (a password hash) either way: a new
address gets an unverified account and a verification email; a taken one
creates nothing and its owner is told that someone tried. Both emails are
deferred outbox rows composed in the mail worker, like the reset email.
"""

import logging
from datetime import timedelta

import click
import sqlalchemy as sa
from flask import current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError

from microblog import clock, i18n
from microblog.auth.deletion import erase_account
from microblog.auth.emails import count_recent_emails, write_email
from microblog.auth.forms import RegistrationForm, ResendVerificationForm, username_taken
from microblog.auth.passwords import hash_password
from microblog.auth.routes import bp, config_limit, redirect_signed_in
from microblog.auth.tokens import VERIFY_EMAIL, make_token, user_for_token
from microblog.extensions import db
from microblog.mail import composer, defer_email
from microblog.models import User, mark_email_verified
from microblog.redact import mask_email
from microblog.security import secret_page
from microblog.urls import external_url
from microblog.usernames import TAKEN_MESSAGE

audit = logging.getLogger("microblog.audit")

ADDRESS_TAKEN = "address_taken"


def register_account(username, address, password, locale):
    """Create an unverified account, or tell the address's owner; False if the name is taken.

    The password is hashed on both paths, so that the answer takes as long
    for a taken address as for a free one. `locale` is the language the
    account's emails will be written in, the verification email first.
    """
    password_hash = hash_password(password)
    if not address_has_account(address):
        user = User(username=username, email=address, password_hash=password_hash, locale=locale)
        db.session.add(user)
        defer_email(VERIFY_EMAIL, address, tag=VERIFY_EMAIL)
        try:
            db.session.commit()
        except IntegrityError:  # lost a race for the name or the address
            db.session.rollback()
            if username_taken(username):
                return False
        else:
            audit.info("register user=%s", user.id)
            return True
    tell_owner_of_attempt(address, "register")
    db.session.commit()
    audit.info("register.address_taken email=%s", mask_email(address))
    return True


def address_has_account(address):
    """Whether the (normalised) address belongs to an account, verified or not."""
    return db.session.scalar(sa.select(User.id).where(User.email == address)) is not None


def tell_owner_of_attempt(address, attempt):
    """Queue the "someone tried to use your address" notice (sign-up or email change)."""
    defer_email(ADDRESS_TAKEN, address, tag=ADDRESS_TAKEN, context={"attempt": attempt})


def within_limit(user, tag):
    """The per-account limit of the reset request, applied to every unasked-for email."""
    if count_recent_emails(user, tag) < current_app.config["RESET_EMAILS_PER_HOUR"]:
        return True
    audit.warning("%s.throttled user=%s", tag, user.id)
    return False


def user_by_address(address):
    """The account of a normalised address, or None."""
    return db.session.scalar(sa.select(User).where(User.email == address))


@composer(VERIFY_EMAIL)
def compose_verification(message):
    """The verification link, for an account still waiting for it; dropped otherwise."""
    user = user_by_address(message.recipient_list[0])
    if user is None or user.email_verified:
        audit.info("verify_email.not_needed email=%s", mask_email(message.recipient_list[0]))
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


@bp.route("/register", methods=["GET", "POST"])
@config_limit("REGISTER_RATE_LIMIT")
@redirect_signed_in
def register():
    """Create an account; the answer says nothing about whether the address had one."""
    form = RegistrationForm()
    if form.validate_on_submit():
        # The visitor's page language: their ?lang= choice, else Accept-Language.
        locale = i18n.page_locale()
        if register_account(form.username.data, form.email.data, form.password.data, locale):
            flash(
                _(
                    "Almost there: we sent an email to the address you gave. "
                    "Open the link in it to verify your address, then sign in."
                ),
                "info",
            )
            return redirect(url_for("auth.login"))
        form.username.errors.append(TAKEN_MESSAGE)
    return render_template("auth/register.html", title=_("Create an account"), form=form)


@bp.route("/verify_email/", defaults={"token": ""})
@bp.route("/verify_email/<token>")
@secret_page(referrer_policy="no-referrer")
def verify_email(token):
    """The emailed link: verifies the address (again is harmless), then on to sign in."""
    user = user_for_token(token, VERIFY_EMAIL)
    if user is None:
        audit.info("verify_email.rejected reason=invalid_token")
        return render_template("auth/link_invalid.html", title=_("Link not valid")), 400
    if not user.email_verified:
        mark_email_verified(user.id)
        db.session.commit()
        audit.info("verify_email.completed user=%s", user.id)
    flash(_("Your email address is verified. You can sign in now."), "success")
    return redirect(url_for("auth.login"))


@bp.route("/resend_verification", methods=["GET", "POST"])
@config_limit("RESET_RATE_LIMIT")
@redirect_signed_in
def resend_verification():
    """Ask for a new verification link; the same answer whatever the address."""
    form = ResendVerificationForm()
    if form.validate_on_submit():
        defer_email(VERIFY_EMAIL, form.email.data, tag=VERIFY_EMAIL)
        db.session.commit()
        audit.info("verify_email.requested email=%s", mask_email(form.email.data))
        flash(
            _(
                "If an account with this address is waiting for verification, "
                "a new link is on its way."
            ),
            "info",
        )
        return redirect(url_for("auth.login"))
    return render_template(
        "auth/resend_verification.html", title=_("Verify your email address"), form=form
    )


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
            audit.info("account.purged_unverified user=%s", user_id)
            removed += 1
        else:
            db.session.rollback()
    return removed


@bp.cli.command("purge-unverified")
def purge_unverified_command():
    """Delete accounts whose address was not verified within UNVERIFIED_ACCOUNT_DAYS."""
    click.echo(f"Removed {purge_unverified_accounts()} unverified account(s).")
