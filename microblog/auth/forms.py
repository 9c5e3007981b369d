"""Forms of the auth blueprint. Every one carries a CSRF token (Flask-WTF)."""

from email_validator import EmailNotValidError
from flask import request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from microblog.auth.emails import normalize_email
from microblog.auth.passwords import policy_problem, verify_password
from microblog.auth.throttle import PasswordCheck, check_current_password
from microblog.forms import Form, username_taken
from microblog.usernames import TAKEN_MESSAGE, username_validators


def strip_spaces(value):
    """Spaces a phone keyboard adds around an address; CR, LF and the rest stay, to fail."""
    return value.strip(" \t") if isinstance(value, str) else value


def normalized_email(form, field):
    """Validate one address and replace it with its normalised form.

    A field sent twice is a list too: refused, like commas or CR/LF inside it.
    """
    if field.raw_data and len(field.raw_data) > 1:
        raise ValidationError(_("Enter one email address."))
    try:
        field.data = normalize_email(field.data)
    except EmailNotValidError:
        raise ValidationError(email_error(field.data)) from None


def email_error(address):
    """Why an address was refused, in our words: email_validator's own are English only."""
    local_part, at_sign, _domain = address.rpartition("@")
    if not at_sign:
        return _("An email address must have an @-sign.")
    if not local_part.isascii():  # SMTPUTF8 addresses are refused (see normalize_email)
        return _(
            "Internationalized characters before the @-sign are not supported: "
            "use an address in Latin letters."
        )
    return _("This is not a valid email address.")


def email_field():
    """The address field of every form: trimmed, validated, normalised."""
    return EmailField(
        _l("Email"),
        filters=[strip_spaces],
        validators=[DataRequired(), Length(max=254), normalized_email],
    )


class NewPasswordForm(Form):
    """A new password, typed twice, held to the password policy."""

    password = PasswordField(_l("Password"), validators=[DataRequired()])
    password2 = PasswordField(
        _l("Repeat password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords do not match."))],
    )

    def personal_values(self):
        return ()

    def validate_password(self, field):
        """The one password policy, with this form's personal values."""
        problem = policy_problem(field.data, *self.personal_values())
        if problem:
            raise ValidationError(problem)


class LoginForm(Form):
    username = StringField(_l("Username or email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)])
    remember_me = BooleanField(_l("Remember me"))
    submit = SubmitField(_l("Sign in"))


class RegistrationForm(NewPasswordForm):
    username = StringField(_l("Username"), validators=username_validators())
    email = email_field()
    submit = SubmitField(_l("Register"))

    def personal_values(self):
        return (self.username.data, self.email.data)

    def validate_username(self, field):
        """Reject a taken name, or one a reader could take for it, before the database has to."""
        if username_taken(field.data):
            raise ValidationError(TAKEN_MESSAGE)


class ResetPasswordRequestForm(Form):
    email = email_field()
    submit = SubmitField(_l("Request password reset"))


class ResendVerificationForm(Form):
    email = email_field()
    submit = SubmitField(_l("Send a new link"))


def confirm_current_password(form, password):
    """The session's holder typed the account's password: counted like a sign-in.

    A wrong one is a form error; at the limit `form.paused` is set, and the
    view signs the session out (see throttle.check_current_password).
    """
    outcome = check_current_password(form.user, password, request.remote_addr)
    if outcome is PasswordCheck.PAUSED:
        form.paused = True
    if outcome is not PasswordCheck.RIGHT:
        raise ValidationError(_("This is not your current password."))


class VerifyEmailForm(Form):
    """The verification link's page: the account's password, from whoever opened the link."""

    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)])
    submit = SubmitField(_l("Verify and sign in"))


class ConfirmEmailForm(Form):
    """The change link's page: one button, so that a mail scanner's GET changes nothing."""

    submit = SubmitField(_l("Confirm the new address"))


class PasswordConfirmedForm(Form):
    """An action on the signed-in account that whoever holds the session must confirm."""

    password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=1024)])
    paused = False  # set when the wrong passwords reached the limit

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def validate_password(self, field):
        confirm_current_password(self, field.data)


class ChangeEmailForm(PasswordConfirmedForm):
    email = email_field()
    submit = SubmitField(_l("Send a confirmation link"))

    def __init__(self, user, *args, **kwargs):
        super().__init__(user, *args, **kwargs)
        self.email.label.text = _("New email address")

    def validate_email(self, field):
        if field.data == self.user.email:
            raise ValidationError(_("This is already your address."))


class DeleteAccountForm(PasswordConfirmedForm):
    submit = SubmitField(_l("Delete my account"))


class AccountPasswordForm(NewPasswordForm):
    """A new password for an existing account: it may not contain the account's name."""

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def personal_values(self):
        return (self.user.username, self.user.email)

    def validate_password(self, field):
        """The policy, and not the password the account already has."""
        super().validate_password(field)
        if verify_password(self.user.password_hash, field.data):
            raise ValidationError(_("This is your current password; choose a new one."))


class ChangePasswordForm(AccountPasswordForm):
    current_password = PasswordField(
        _l("Current password"), validators=[DataRequired(), Length(max=1024)]
    )
    submit = SubmitField(_l("Change password"))
    paused = False  # set when the wrong passwords reached the limit

    def validate_password(self, field):
        """The policy only, for now: see `validate`."""
        NewPasswordForm.validate_password(self, field)

    def validate_current_password(self, field):
        """Whoever holds the session must also know the password to change it."""
        confirm_current_password(self, field.data)

    def validate(self, extra_validators=None):
        """ "This is your current password" only to whoever typed the current one.

        Said before the current password was checked, it would let a stolen
        session test guesses in the new-password field, uncounted.
        """
        if not super().validate(extra_validators):
            return False
        if verify_password(self.user.password_hash, self.password.data):
            self.password.errors.append(_("This is your current password; choose a new one."))
            return False
        return True


class ResetPasswordForm(AccountPasswordForm):
    submit = SubmitField(_l("Set new password"))


class SignOutDeviceForm(Form):
    """A button on the devices page: nothing but the CSRF token."""

    submit = SubmitField(_l("Sign out"))
