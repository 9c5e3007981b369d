"""Views of the auth blueprint."""

import logging
from functools import wraps

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from microblog.auth import throttle
from microblog.auth.forms import (
    ChangePasswordForm,
    LoginForm,
    ResetPasswordForm,
    ResetPasswordRequestForm,
)
from microblog.auth.new_device import note_sign_in_device
from microblog.auth.recovery import (
    complete_password_reset,
    replace_password,
    request_password_reset,
)
from microblog.auth.sessions import current_record, no_store_when_signed_in, sign_in, sign_out
from microblog.auth.signin import PAUSED, SIGNED_IN, UNVERIFIED, authenticate
from microblog.auth.tokens import looks_like_token, user_for_reset_token
from microblog.extensions import db, limiter
from microblog.models import User
from microblog.page_cache import render_form_page
from microblog.security import secret_page
from microblog.urls import safe_next

bp = Blueprint("auth", __name__, url_prefix="/auth")
bp.after_app_request(no_store_when_signed_in)
audit = logging.getLogger("microblog.audit")

RESET_SESSION_KEY = "reset_token"


def config_limit(name):
    """A Flask-Limiter limit on POSTs, read from the configuration at request time.

    GETs go around the limiter's wrapper: it cost a tenth of the sign-in page
    only to find that no limit applies to a GET.
    """
    limited = limiter.limit(lambda: current_app.config[name], methods=["POST"])

    def decorate(view):
        checked = limited(view)

        @wraps(view)
        def wrapper(*args, **kwargs):
            if request.method == "POST":
                return checked(*args, **kwargs)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def redirect_signed_in(view):
    """A signed-in user has no business on these pages: send them home."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_user.is_authenticated:
            return redirect(url_for("main.index"))
        return view(*args, **kwargs)

    return wrapper


@bp.route("/login", methods=["GET", "POST"])
@config_limit("LOGIN_RATE_LIMIT")
@redirect_signed_in
def login():
    """Sign in with username (or email) and password; one error for every failure."""
    if request.method == "GET":  # most requests: kept lean (see page_cache.py)
        return render_form_page("auth/login.html", LoginForm, title=_("Sign in"))
    form = LoginForm()
    if form.validate_on_submit():
        outcome = authenticate(form.username.data, form.password.data, request.remote_addr)
        if outcome.status == UNVERIFIED:  # the password was right: saying so leaks nothing
            audit.info("login.unverified user=%s", outcome.user.id)
            return render_template("auth/unverified.html", title=_("Verify your address"))
        if outcome.status == SIGNED_IN:
            note_sign_in_device(outcome.user)  # committed with the sign-in
            sign_in(outcome.user, remember=form.remember_me.data)
            audit.info("login.success user=%s", outcome.user.id)
            return redirect(safe_next(request.args.get("next")) or url_for("main.index"))
        audit.info("login.failure reason=%s", outcome.status)
        if outcome.status == PAUSED:
            page = render_template(
                "auth/login.html", title=_("Sign in"), form=form, paused_until=outcome.paused_until
            )
            return page, 429
        flash(_("Invalid username or password."), "danger")
    return render_form_page("auth/login.html", form, title=_("Sign in"))


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out: this session's record is revoked, so a copied cookie dies with it.

    POST only (with the CSRF token): a link or an image on another site must
    not be able to sign anyone out.
    """
    said = _("You have been signed out.")  # in the language of the user, before they go
    sign_out()
    flash(said, "info")
    return redirect(url_for("auth.login"))


@bp.route("/reset_password_request", methods=["GET", "POST"])
@config_limit("RESET_RATE_LIMIT")
@redirect_signed_in
def reset_password_request():
    """Ask for a reset link; the answer is the same whether the address is known or not."""
    form = ResetPasswordRequestForm()
    if form.validate_on_submit():
        request_password_reset(form.email.data)
        flash(_("Check your email for the instructions to reset your password."), "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset_password_request.html", title=_("Reset password"), form=form)


@bp.route("/reset_password/", defaults={"token": ""}, methods=["GET"])
@bp.route("/reset_password/<token>", methods=["GET"])
@redirect_signed_in
@secret_page(referrer_policy="no-referrer")
def reset_password_link(token):
    """The emailed link: keep the token in the session and leave the URL that shows it.

    Nothing is checked or consumed here (mail scanners open links); the
    token-free page does the checking, and no Referer or log line can leak it.
    What cannot be a token (8 KB, non-ASCII, empty) is not kept: the page
    then says the link is not valid, and the session cookie stays small.
    """
    if looks_like_token(token):
        session[RESET_SESSION_KEY] = token
    else:
        session.pop(RESET_SESSION_KEY, None)
    return redirect(url_for("auth.reset_password"))


@bp.route("/reset_password", methods=["GET", "POST"])
@bp.route("/reset_password/<token>", methods=["POST"])
@config_limit("RESET_RATE_LIMIT")
@redirect_signed_in
@secret_page()
def reset_password(token=None):
    """Choose a new password, once, with a live link."""
    token = token or session.get(RESET_SESSION_KEY)
    user = user_for_reset_token(token)
    if user is None:
        session.pop(RESET_SESSION_KEY, None)
        audit.info("password_reset.rejected reason=invalid_token")
        return render_template("auth/reset_password_invalid.html", title=_("Link not valid")), 400
    form = ResetPasswordForm(user)
    if form.validate_on_submit():
        session.pop(RESET_SESSION_KEY, None)
        if not complete_password_reset(user, form.password.data):
            return render_template(
                "auth/reset_password_invalid.html", title=_("Link not valid")
            ), 400
        throttle.lift(user)
        flash(_("Your password has been reset. Please sign in with it."), "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset_password.html", title=_("Reset password"), form=form)


@bp.route("/change_password", methods=["GET", "POST"])
@login_required
@config_limit("LOGIN_RATE_LIMIT")
def change_password():
    """Change your password: this session stays, every other one ends."""
    user = current_user._get_current_object()
    form = ChangePasswordForm(user)
    if form.validate_on_submit():
        remembered = current_record().remembered
        if replace_password(user, form.password.data):
            sign_in(db.session.get(User, user.id), remember=remembered)  # under the new token
            audit.info("password_change.completed user=%s", user.id)
            flash(
                _("Your password has been changed. Other devices have been signed out."), "success"
            )
            return redirect(url_for("main.user", username=user.username))
        form.current_password.errors.append(_("Your password changed meanwhile; try again."))
    return render_template("auth/change_password.html", title=_("Change password"), form=form)
