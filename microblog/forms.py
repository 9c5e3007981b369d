"""What the blueprints' forms share."""

from sqlalchemy.exc import IntegrityError

from microblog.extensions import db


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
