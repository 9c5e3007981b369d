"""The security stamp: one value per account that every emailed link is bound to.

A link authorises what the account was when the link was asked for, not
when the mail worker got round to writing it. So the flow that queues a
link email stores the account's stamp in the outbox row (`context`), the
composer drops the row if the stamp has moved since, and the token signs the
stamp (tokens.link_binding). Every change that matters calls `bump`: a new
stamp kills every link made before it (a->b->a included, which a binding of
the password hash and address alone would revive), and the account's link
emails still queued are dropped in the same transaction.
"""

import sqlalchemy as sa

from microblog.auth.emails import RESET_TAG
from microblog.auth.tokens import CHANGE_EMAIL, VERIFY_EMAIL
from microblog.extensions import db
from microblog.mail import drop_queued_mail
from microblog.models import User, new_security_stamp

# The kinds of email that carry a link acting on the account.
LINK_TAGS = (RESET_TAG, VERIFY_EMAIL, CHANGE_EMAIL)


def bump(user):
    """Give the account a new stamp and drop its queued links; the caller commits.

    Called on every password change or reset, address change, verification
    and sign-out everywhere (deletion drops the account with its mail).
    """
    db.session.execute(
        sa.update(User)
        .where(User.id == user.id)
        .values(security_stamp=new_security_stamp())
        .execution_options(synchronize_session=False)
    )
    drop_queued_mail(LINK_TAGS, user.id, user.email)
    if user in db.session:
        db.session.expire(user, ["security_stamp"])


def stamp_context(user, **context):
    """The `context` of a queued link email: the account's stamp now, and `context`."""
    return {"stamp": user.security_stamp if user is not None else None, **context}
