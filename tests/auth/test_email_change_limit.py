"""Asking again and again to change the address sends no more than the hourly limit.

Both emails of a change request (the link to the new address, the notice to
the current one) go to addresses the owner may not control: like the reset,
each kind is capped per account (RESET_EMAILS_PER_HOUR), whatever the new
address.
"""

import pytest
import sqlalchemy as sa

from microblog.auth.emails import count_recent_emails
from microblog.extensions import db
from microblog.mail.outbox import OutboxMessage
from microblog.models import User
from support.auth import PASSWORD


@pytest.mark.settings(RESET_EMAILS_PER_HOUR=2)
def test_change_links_and_notices_are_capped_per_account(
    app, client, auth, make_user, deliver, smtp
):
    make_user("susan")
    auth.login()
    for n in range(4):
        client.post(
            "/auth/change_email", data={"email": f"new{n}@example.net", "password": PASSWORD}
        )
    deliver()

    smtp.wait_for(4)
    recipients = sorted(message["To"] for message in smtp.messages)
    assert recipients == ["new0@example.net", "new1@example.net"] + ["susan@example.com"] * 2
    with app.app_context():
        states = db.session.scalars(sa.select(OutboxMessage.state).order_by(OutboxMessage.id))
        assert sorted(states) == ["dropped"] * 4 + ["sent"] * 4


def row_lock_is_free(connection, user_id):
    """Whether another transaction could lock this account's row now (without waiting)."""
    try:
        if connection.dialect.name == "sqlite":  # one lock for the whole database
            connection.exec_driver_sql("PRAGMA busy_timeout = 0")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            query = sa.select(User.id).where(User.id == user_id).with_for_update(nowait=True)
            connection.execute(query)
    except sa.exc.OperationalError:
        return False
    finally:
        connection.rollback()
    return True


def test_counting_an_account_s_emails_locks_it_until_the_composer_commits(app, make_user):
    """Two composers for one account cannot both count before either writes: the cap holds."""
    susan, bob = make_user("susan"), make_user("bob")
    with app.app_context():
        count_recent_emails(db.session.get(User, susan), "password_reset")
        with db.engine.connect() as other:
            assert not row_lock_is_free(other, susan)
            if other.dialect.name != "sqlite":
                assert row_lock_is_free(other, bob)  # her row only, not everyone's
        db.session.rollback()
        with db.engine.connect() as other:
            assert row_lock_is_free(other, susan)
