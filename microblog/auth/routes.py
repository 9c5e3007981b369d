"""The auth blueprint and every one of its views.

Each view is thin: it reads the form, calls a flow (signup, signin,
recovery, email_change, deletion, sessions) and turns the flow's outcome
into a page, a flash or a redirect. The flows know nothing of HTTP, and
record the audit trail themselves.
"""

from functools import wraps

from flask import (
    Blueprint,
    abort,
    after_this_request,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from microblog import i18n
from microblog.auth import recovery, signup
from microblog.auth.deletion import delete_account_and_say_goodbye
from microblog.auth.devices import COOKIE_NAME, set_device_cookie
from microblog.auth.email_change import (
    EmailChangeOutcome,
    address_to_confirm,
    confirm_email_change,
    keep_address,
    request_email_change,
)
from microblog.auth.forms import (
    ChangeEmailForm,
    ChangePasswordForm,
    ConfirmEmailForm,
    DeleteAccountForm,
    LoginForm,
    RegistrationForm,
    ResendVerificationForm,
    ResetPasswordForm,
    ResetPasswordRequestForm,
    SignOutDeviceForm,
    VerifyEmailForm,
)
from microblog.auth.recovery import (
    RecoveryOutcome,
    complete_password_reset,
    request_password_reset,
    user_for_reset_link,
)
from microblog.auth.sessions import (
    current_record,
    live_records,
    no_store_when_signed_in,
    record_of,
    sign_in,
    sign_out,
    sign_out_device,
    sign_out_other_devices,
)
from microblog.auth.signin import SignInOutcome, authenticate, start_session
from microblog.auth.signup import (
    SignUpOutcome,
    account_to_verify,
    register_account,
    verify_address,
)
from microblog.auth.tokens import looks_like_token
from microblog.auth.user_agents import localise_description
from microblog.extensions import post_limit
from microblog.page_cache import render_form_page
from microblog.security import secret_page
from microblog.urls import safe_next
from microblog.usernames import TAKEN_MESSAGE

bp = Blueprint("auth", __name__, url_prefix="/auth")
bp.after_app_request(no_store_when_signed_in)

RESET_SESSION_KEY = "reset_token"

# Outcomes of an emailed link that are a page of their own: template, title, status.
LINK_INVALID_PAGE = ("auth/link_invalid.html", _l("Link not valid"), 400)
EMAIL_CHANGE_REFUSED = {
    EmailChangeOutcome.LINK_INVALID: LINK_INVALID_PAGE,
    EmailChangeOutcome.ADDRESS_TAKEN: ("auth/email_taken.html", _l("Address taken"), 409),
}


def refusal_page(template, title, status):
    """A page that refuses a link or a change, with its status; `title` may be lazy."""
    return render_template(template, title=str(title)), status


def browser():
    """What the flows keep of the browser signing in: its User-Agent and address."""
    return {"user_agent": request.user_agent.string, "address": request.remote_addr}


def redirect_signed_in(view):
    """A signed-in user has no business on these pages: send them home."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_user.is_authenticated:
            return redirect(url_for("main.index"))
        return view(*args, **kwargs)

    return wrapper


# Signing up.


@bp.route("/register", methods=["GET", "POST"])
@post_limit("REGISTER_RATE_LIMIT")
@redirect_signed_in
def register():
    """Create an account; the answer says nothing about whether the address had one."""
    form = RegistrationForm()
    if form.validate_on_submit():
        # The visitor's page language: their ?lang= choice, else Accept-Language.
        locale = i18n.page_locale()
        outcome = register_account(form.username.data, form.email.data, form.password.data, locale)
        if outcome is SignUpOutcome.REGISTERED:
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


@bp.route("/verify_email/", defaults={"token": ""}, methods=["GET", "POST"])
@bp.route("/verify_email/<token>", methods=["GET", "POST"])
@post_limit("LOGIN_RATE_LIMIT")
@secret_page()
def verify_email(token):
    """The emailed link: a form; its password verifies the address and signs in.

    The GET changes nothing (mail scanners fetch every link): only the
    account's own password, posted with the form, proves that whoever holds
    the mailbox is whoever signed up.
    """
    form = VerifyEmailForm()
    if request.method == "GET" or not form.validate_on_submit():
        if account_to_verify(token) is None:
            return refusal_page(*LINK_INVALID_PAGE)
        return render_template("auth/verify_email.html", title=_("Verify your address"), form=form)
    outcome, user = verify_address(token, form.password.data, request.remote_addr)
    if outcome is SignUpOutcome.LINK_INVALID:
        return refusal_page(*LINK_INVALID_PAGE)
    if outcome is SignUpOutcome.VERIFIED:
        # Signed in, but no browser noted yet: the link often opens in a mail app's
        # browser, and the first sign-in elsewhere would be told as a "new" one.
        sign_in(user, False, **browser())
        flash(_("Your email address is verified. Welcome to Microblog!"), "success")
        return redirect(url_for("main.index"))
    if outcome is SignUpOutcome.PAUSED:
        form.password.errors.append(_("Too many wrong passwords: try again later."))
        page = render_template("auth/verify_email.html", title=_("Verify your address"), form=form)
        return page, 429
    form.password.errors.append(_("This is not the password of this account."))
    return render_template("auth/verify_email.html", title=_("Verify your address"), form=form)


@bp.route("/resend_verification", methods=["GET", "POST"])
@post_limit("RESET_RATE_LIMIT")
@redirect_signed_in
def resend_verification():
    """Ask for a new verification link; the same answer whatever the address."""
    form = ResendVerificationForm()
    if form.validate_on_submit():
        signup.resend_verification(form.email.data)
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


# Signing in and out.


@bp.route("/login", methods=["GET", "POST"])
@post_limit("LOGIN_RATE_LIMIT")
@redirect_signed_in
def login():
    """Sign in with username (or email) and password; one error for every failure."""
    if request.method == "GET":  # most requests: kept lean (see page_cache.py)
        return render_form_page("auth/login.html", LoginForm, title=_("Sign in"))
    form = LoginForm()
    if form.validate_on_submit():
        attempt = authenticate(
            form.username.data,
            form.password.data,
            request.remote_addr,
            request.cookies.get(COOKIE_NAME, ""),
        )
        if attempt.outcome is SignInOutcome.UNVERIFIED:
            # Answered as a wrong password: otherwise a sign-up on a taken address
            # (no link ever comes) would differ from one on a free address.
            signup.resend_to_waiting_account(attempt.user)
        if attempt.outcome is SignInOutcome.SIGNED_IN:
            device_id = start_session(
                attempt.user,
                form.remember_me.data,
                request.cookies.get(COOKIE_NAME, ""),
                **browser(),
            )
            after_this_request(lambda response: set_device_cookie(response, device_id))
            return redirect(safe_next(request.args.get("next")) or url_for("main.index"))
        if attempt.outcome is SignInOutcome.PAUSED:
            page = render_template(
                "auth/login.html", title=_("Sign in"), form=form, paused_until=attempt.paused_until
            )
            return page, 429
        flash(_("Invalid username or password."), "danger")  # also the UNVERIFIED answer
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


# The devices page.


@bp.route("/sessions")
@login_required
def sessions():
    """Every device signed in to your account, this one marked."""
    return render_template(
        "auth/sessions.html",
        title=_("Your devices"),
        records=live_records(current_user),
        current=current_record(),
        form=SignOutDeviceForm(),
        device_name=localise_description,
    )


@bp.route("/sessions/<int:record_id>/revoke", methods=["POST"])
@login_required
def revoke_session(record_id):
    """Sign one device out; signing out this one is the ordinary sign-out."""
    if not SignOutDeviceForm().validate_on_submit():
        abort(400)
    record = record_of(current_user, record_id)
    if record is None:
        abort(404)  # another user's record is none of yours
    if record.id == current_record().id:
        said = _("You have been signed out.")  # in the language of the user, before they go
        sign_out()
        flash(said, "info")
        return redirect(url_for("auth.login"))
    sign_out_device(current_user, record)
    flash(
        _("%(device)s has been signed out.", device=localise_description(record.device)),
        "success",
    )
    return redirect(url_for("auth.sessions"))


@bp.route("/sessions/revoke_others", methods=["POST"])
@login_required
def revoke_other_sessions():
    """Sign out everywhere else: every device but this one."""
    if not SignOutDeviceForm().validate_on_submit():
        abort(400)
    sign_out_other_devices(current_user)
    flash(_("Every other device has been signed out."), "success")
    return redirect(url_for("auth.sessions"))


# The password.


@bp.route("/reset_password_request", methods=["GET", "POST"])
@post_limit("RESET_RATE_LIMIT")
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
@post_limit("RESET_RATE_LIMIT")
@redirect_signed_in
@secret_page()
def reset_password(token=None):
    """Choose a new password, once, with a live link."""
    user = user_for_reset_link(token or session.get(RESET_SESSION_KEY))
    if user is None:
        session.pop(RESET_SESSION_KEY, None)
        return refusal_page("auth/reset_password_invalid.html", _("Link not valid"), 400)
    form = ResetPasswordForm(user)
    if form.validate_on_submit():
        session.pop(RESET_SESSION_KEY, None)
        if not complete_password_reset(user, form.password.data):
            return refusal_page("auth/reset_password_invalid.html", _("Link not valid"), 400)
        flash(_("Your password has been reset. Please sign in with it."), "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset_password.html", title=_("Reset password"), form=form)


@bp.route("/change_password", methods=["GET", "POST"])
@login_required
@post_limit("LOGIN_RATE_LIMIT")
def change_password():
    """Change your password: this session stays, every other one ends."""
    user = current_user._get_current_object()
    form = ChangePasswordForm(user)
    if form.validate_on_submit():
        remembered = current_record().remembered
        outcome = recovery.change_password(user, form.password.data, remembered, **browser())
        if outcome is RecoveryOutcome.PASSWORD_CHANGED:
            flash(
                _("Your password has been changed. Other devices have been signed out."), "success"
            )
            return redirect(url_for("main.user", username=user.username))
        form.current_password.errors.append(_("Your password changed meanwhile; try again."))
    if form.paused:
        return signed_out_for_guessing()
    return render_template("auth/change_password.html", title=_("Change password"), form=form)


def signed_out_for_guessing():
    """Too many wrong current passwords: this session ends, and sign-in is paused."""
    sign_out()
    flash(
        _(
            "Too many wrong passwords: you have been signed out, and signing in to this "
            "account is paused for a while."
        ),
        "danger",
    )
    return redirect(url_for("auth.login"))


# The address.


@bp.route("/change_email", methods=["GET", "POST"])
@login_required
@post_limit("LOGIN_RATE_LIMIT")
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
    if form.paused:
        return signed_out_for_guessing()
    return render_template("auth/change_email.html", title=_("Change email address"), form=form)


@bp.route("/keep_address", methods=["POST"])
@login_required
def keep_address_after_bounce():
    """The banner's "this address is right": activity mail to it is tried again."""
    keep_address(current_user)
    flash(_("Thank you: we will send email to your address again."), "info")
    return redirect(url_for("main.index"))


@bp.route("/confirm_email/", defaults={"token": ""}, methods=["GET", "POST"])
@bp.route("/confirm_email/<token>", methods=["GET", "POST"])
@secret_page()
def confirm_email(token):
    """The link sent to the new address: a one-button form; its POST changes the address."""
    form = ConfirmEmailForm()
    if not form.validate_on_submit():  # a GET, a scanner, or a form without its CSRF token
        if address_to_confirm(token) is None:
            return refusal_page(*LINK_INVALID_PAGE)
        return render_template(
            "auth/confirm_email.html", title=_("Confirm your new address"), form=form
        )
    outcome, new_address = confirm_email_change(token)
    if outcome in EMAIL_CHANGE_REFUSED:
        return refusal_page(*EMAIL_CHANGE_REFUSED[outcome])
    flash(_("Your email address is now %(address)s.", address=new_address), "success")
    return redirect(url_for("main.index" if current_user.is_authenticated else "auth.login"))


# Deletion.


@bp.route("/delete_account", methods=["GET", "POST"])
@login_required
@post_limit("LOGIN_RATE_LIMIT")
def delete_account():
    """Delete your account for good, after typing your password."""
    user = current_user._get_current_object()
    form = DeleteAccountForm(user)
    if form.validate_on_submit():
        said = _("Your account and your posts have been deleted. Goodbye!")  # her language
        sign_out()  # this device first; every other session goes with the account
        delete_account_and_say_goodbye(user)
        flash(said, "info")
        return redirect(url_for("main.index"))
    if form.paused:
        return signed_out_for_guessing()
    return render_template("auth/delete_account.html", title=_("Delete account"), form=form)
