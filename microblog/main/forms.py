"""Forms of the main blueprint."""

import sqlalchemy as sa
from flask import current_app
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from microblog.auth.forms import USERNAME_RULES
from microblog.extensions import db
from microblog.models import User


def within_post_limit(form, field):
    """POST_MAX_LENGTH, read when the form is checked: the setting can change per app."""
    limit = current_app.config["POST_MAX_LENGTH"]
    length = len(field.data or "")
    if length > limit:
        raise ValidationError(
            f"Posts can be up to {limit} characters long; this one has {length}. "
            f"Please shorten it by {length - limit}."
        )


class PostForm(FlaskForm):
    post = TextAreaField(
        "What's on your mind?",
        validators=[DataRequired("Write something first."), within_post_limit],
    )
    submit = SubmitField("Post")


class EditProfileForm(FlaskForm):
    username = StringField("Username", validators=USERNAME_RULES)
    about_me = TextAreaField("About me", validators=[Length(max=140)])
    submit = SubmitField("Submit")

    def __init__(self, original_username, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.original_username = original_username

    def validate_username(self, field):
        """Keeping one's own name is fine; taking another's is not."""
        if field.data != self.original_username:
            taken = db.session.scalar(sa.select(User.id).where(User.username == field.data))
            if taken is not None:
                raise ValidationError("Please use a different username.")


class EmptyForm(FlaskForm):
    """A button that posts: follow and unfollow need nothing but the CSRF token."""

    submit = SubmitField("Submit")
