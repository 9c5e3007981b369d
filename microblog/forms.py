"""What the blueprints' forms share."""

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from microblog.extensions import db
from microblog.models import User
from microblog.usernames import skeleton


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
