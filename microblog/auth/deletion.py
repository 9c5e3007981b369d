"""Account deletion: the account and everything hanging on it go in one transaction.

The goodbye email is composed in the mail worker like every other email, but
from the outbox row's `context` (emails.py): by then the user row is gone.
"""

import sqlalchemy as sa

from microblog.auth import audit
from microblog.auth.emails import GOODBYE
from microblog.auth.models import KnownDevice, LoginThrottle, SessionRecord
from microblog.extensions import db
from microblog.mail import defer_email, drop_account_mail
from microblog.models import Post, TimelineEntry, User, followers


def erase_account(user, *only_if):
    """Delete the account's rows in the caller's transaction: nothing of it stays behind.

    Mail about the account (composed rows carry its id) goes, and so does mail
    still waiting for its address (deferred rows carry only the address), so
    nothing queued before the deletion is sent after it. `only_if` are
    conditions on the user row, checked as it is deleted: False when they no
    longer hold, and the caller then rolls back.
    """
    user_id, address = user.id, user.email
    followed = sa.select(followers.c.followed_id).where(followers.c.follower_id == user_id)
    following = sa.select(followers.c.follower_id).where(followers.c.followed_id == user_id)
    db.session.execute(  # the counts on the profiles of the people on either side
        sa.update(User)
        .where(User.id.in_(followed))
        .values(followers_count=User.followers_count - 1)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        sa.update(User)
        .where(User.id.in_(following))
        .values(following_count=User.following_count - 1)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        sa.delete(TimelineEntry).where(
            sa.or_(TimelineEntry.owner_id == user_id, TimelineEntry.author_id == user_id)
        )
    )
    db.session.execute(
        sa.delete(followers).where(
            sa.or_(followers.c.follower_id == user_id, followers.c.followed_id == user_id)
        )
    )
    db.session.execute(sa.delete(Post).where(Post.user_id == user_id))
    drop_account_mail(user_id, address)
    db.session.execute(sa.delete(SessionRecord).where(SessionRecord.user_id == user_id))
    db.session.execute(sa.delete(KnownDevice).where(KnownDevice.user_id == user_id))
    db.session.execute(sa.delete(LoginThrottle).where(LoginThrottle.user_id == user_id))
    deleted = db.session.execute(sa.delete(User).where(User.id == user_id, *only_if))
    return deleted.rowcount == 1


def delete_account_and_say_goodbye(user):
    """Erase the account and queue the goodbye, committed together.

    The goodbye is written in the account's language, kept in the row: by
    the time the worker composes it, the account is gone.
    """
    username, address, user_id, locale = user.username, user.email, user.id, user.locale
    erase_account(user)
    context = {"username": username, "locale": locale}
    defer_email(GOODBYE, address, tag=GOODBYE, context=context)
    db.session.commit()
    audit.record("account.deleted", user=user_id)
