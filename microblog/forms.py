"""What the blueprints' forms share."""

import sqlalchemy as sa
from flask import request
from flask_babel import gettext
from flask_wtf import FlaskForm
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import CombinedMultiDict

from microblog.extensions import db
from microblog.hostile_input import contains_control_characters
from microblog.i18n import N_
from microblog.models import User
from microblog.usernames import skeleton

CONTROL_CHARACTER_ERROR = N_("Remove the control characters (such as NUL) from this field.")


class Form(FlaskForm):
    """Every form of the app: a field with control characters is an error before any query.

    Checked ahead of every validator, so that no validator (a uniqueness
    check, a lookup) ever sends such a value to the database.
    """

    class Meta(FlaskForm.Meta):
        def wrap_formdata(self, form, formdata):
            """Fields only: no form here takes a file, and a file in a text field breaks it."""
            data = super().wrap_formdata(form, formdata)
            return request.form if isinstance(data, CombinedMultiDict) else data

    def validate(self, extra_validators=None):
        tainted = [field for field in self if contains_control_characters(field.raw_data or ())]
        if not tainted:
            return super().validate(extra_validators)
        for field in tainted:
            field.errors = [gettext(CONTROL_CHARACTER_ERROR)]
        self._errors = None
        return False


def commit_or_form_error(field, message):
    """Commit; if a unique column lost a race meanwhile, roll back and say so on the field.

    The form's own check ran first; this covers two requests passing it at once.
    """
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        field.errors.append(message)
        return False
    return True


def username_taken(username, keeping=None):
    """True when another account's name folds to the same skeleton (see microblog.usernames).

    Usernames are public (profile URLs), so saying one is taken reveals nothing.
    `keeping` is the current name of the account being renamed: it does not count.
    """
    query = sa.select(User.id).where(User.username_key == skeleton(username))
    if keeping is not None:
        query = query.where(User.username != keeping)
    return db.session.scalar(query.limit(1)) is not None
