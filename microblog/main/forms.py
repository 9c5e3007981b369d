"""Forms of the main blueprint."""

from wtforms import StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from microblog.forms import Form, username_taken
from microblog.usernames import TAKEN_MESSAGE, username_validators


class PostForm(Form):
    post = TextAreaField("Say something", validators=[DataRequired(), Length(min=1, max=140)])
    submit = SubmitField("Submit")


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
