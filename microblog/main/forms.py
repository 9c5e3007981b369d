"""Forms of the main blueprint."""

import sqlalchemy as sa
from wtforms import StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from microblog.auth.forms import USERNAME_RULES
from microblog.extensions import db
from microblog.forms import Form
from microblog.models import User


class PostForm(Form):
    post = TextAreaField("Say something", validators=[DataRequired(), Length(min=1, max=140)])
    submit = SubmitField("Submit")


class EditProfileForm(Form):
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


class EmptyForm(Form):
    """A button that posts: follow and unfollow need nothing but the CSRF token."""

    submit = SubmitField("Submit")
