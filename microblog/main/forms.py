"""Forms of the main blueprint."""

from flask import current_app
from wtforms import StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from microblog.forms import Form, username_taken
from microblog.usernames import TAKEN_MESSAGE, username_validators


def within_post_limit(form, field):
    """POST_MAX_LENGTH, read when the form is checked: the setting can change per app."""
    limit = current_app.config["POST_MAX_LENGTH"]
    length = len(field.data or "")
    if length > limit:
        raise ValidationError(
            f"Posts can be up to {limit} characters long; this one has {length}. "
            f"Please shorten it by {length - limit}."
        )


class PostForm(Form):
    post = TextAreaField(
        "What's on your mind?",
        validators=[DataRequired("Write something first."), within_post_limit],
    )
    submit = SubmitField("Post")


class EditProfileForm(Form):
    username = StringField("Username", validators=username_validators())
    about_me = TextAreaField("About me", validators=[Length(max=140)])
    submit = SubmitField("Submit")

    def __init__(self, original_username, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.original_username = original_username

    def validate_username(self, field):
        """Recasing one's own name is fine; taking another's, or a lookalike, is not."""
        if username_taken(field.data, keeping=self.original_username):
            raise ValidationError(TAKEN_MESSAGE)


class EmptyForm(Form):
    """A button that posts: follow and unfollow need nothing but the CSRF token."""

    submit = SubmitField("Submit")
