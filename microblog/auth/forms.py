"""Forms of the auth blueprint. Every one carries a CSRF token (Flask-WTF)."""

import sqlalchemy as sa
from email_validator import EmailNotValidError
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp, ValidationError

from microblog.auth.emails import normalize_email
from microblog.auth.passwords import policy_problem
from microblog.extensions import db
from microblog.models import User

USERNAME_RULES = [
    DataRequired(),
    Length(max=64),
    Regexp(r"^[A-Za-z0-9_.-]+$", message="Use letters, digits, dots, dashes and underscores."),
]


def normalized_email(form, field):
    """Validate the address and replace it with its normalised form."""
    try:
        field.data = normalize_email(field.data)
    except EmailNotValidError as error:
        raise ValidationError(str(error)) from None


def username_taken(username):
    return db.session.scalar(sa.select(User.id).where(User.username == username)) is not None


class NewPasswordForm(FlaskForm):
    """A new password, typed twice, held to the password policy."""

    password = PasswordField("Password", validators=[DataRequired()])
    password2 = PasswordField(
        "Repeat password",
        validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")],
    )

    def personal_values(self):
        return ()

    def validate_password(self, field):
        problem = policy_problem(field.data, *self.personal_values())
        if problem:
            raise ValidationError(problem)


class LoginForm(FlaskForm):
    username = StringField("Username or email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    remember_me = BooleanField("Remember me")
    submit = SubmitField("Sign in")


class RegistrationForm(NewPasswordForm):
    username = StringField("Username", validators=USERNAME_RULES)
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), normalized_email])
    submit = SubmitField("Register")

    def personal_values(self):
        return (self.username.data, self.email.data)

    def validate_username(self, field):
        if username_taken(field.data):
            raise ValidationError("Please use a different username.")

    def validate_email(self, field):
        taken = db.session.scalar(sa.select(User.id).where(User.email == field.data))
        if taken is not None:
            raise ValidationError("Please use a different email address.")


class ResetPasswordRequestForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), normalized_email])
    submit = SubmitField("Request password reset")


class ResetPasswordForm(NewPasswordForm):
    submit = SubmitField("Set new password")

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def personal_values(self):
        return (self.user.username, self.user.email)
