"""Forms of the main blueprint."""

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from wtforms import SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from microblog.forms import Form, username_taken
from microblog.i18n import language_choices, languages, supported
from microblog.usernames import TAKEN_MESSAGE, username_validators


def within_post_limit(form, field):
    """POST_MAX_LENGTH, read when the form is checked: the setting can change per app."""
    limit = current_app.config["POST_MAX_LENGTH"]
    length = len(field.data or "")
    if length > limit:
        raise ValidationError(
            ngettext(
                "Posts can be up to %(limit)s characters long; this one has %(length)s. "
                "Please shorten it by %(num)s.",
                "Posts can be up to %(limit)s characters long; this one has %(length)s. "
                "Please shorten it by %(num)s.",
                length - limit,
                limit=limit,
                length=length,
            )
        )


class PostForm(Form):
    post = TextAreaField(
        _l("What's on your mind?"),
        validators=[DataRequired(_l("Write something first.")), within_post_limit],
    )
    submit = SubmitField(_l("Post"))


class EditProfileForm(Form):
    username = StringField(_l("Username"), validators=username_validators())
    about_me = TextAreaField(_l("About me"), validators=[Length(max=140)])
    locale = SelectField(_l("Language"))
    submit = SubmitField(_l("Submit"))

    def __init__(self, user, *args, **kwargs):
        """A form without `locale` keeps the user's language; any other value is an error."""
        current = supported(user.locale) or languages()[0]  # a language since withdrawn
        super().__init__(*args, data={"locale": current}, **kwargs)
        self.original_username = user.username
        # lang on each option: a screen reader says "Русский" with a Russian voice
        self.locale.choices = [(code, name, {"lang": code}) for code, name in language_choices()]

    def validate_username(self, field):
        """Recasing one's own name is fine; taking another's, or a lookalike, is not."""
        if username_taken(field.data, keeping=self.original_username):
            raise ValidationError(TAKEN_MESSAGE)


def within_search_limit(form, field):
    """SEARCH_MAX_LENGTH, read when the form is checked (the setting can change per app)."""
    limit = current_app.config["SEARCH_MAX_LENGTH"]
    if len(field.data or "") > limit:
        raise ValidationError(
            ngettext(
                "Search for up to %(num)s character.",
                "Search for up to %(num)s characters.",
                limit,
            )
        )


class SearchForm(Form):
    """The search box: a GET form (it changes nothing), so no CSRF token."""

    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[within_search_limit])


class EmptyForm(Form):
    """A button that posts: follow and unfollow need nothing but the CSRF token."""

    submit = SubmitField(_l("Submit"))
