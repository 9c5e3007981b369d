"""Asking again and again to change the address sends no more than the hourly limit.

Both emails of a change request (the link to the new address, the notice to
the current one) go to addresses the owner may not control: like the reset,
each kind is capped per account (RESET_EMAILS_PER_HOUR), whatever the new
address.
"""

import pytest
import sqlalchemy as sa

from conftest import PASSWORD
from microblog.extensions import db
from microblog.mail.outbox import OutboxMessage


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
