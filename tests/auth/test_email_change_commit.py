"""The address moves once, to the proven address, which counts as verified from then on."""

import sqlalchemy as sa

from microblog import clock
from microblog.auth.email_change import change_address
from microblog.extensions import db
from microblog.models import User


def stored(app, user_id):
    with app.app_context():
        user = db.session.get(User, user_id)
        return user.email, user.email_verified_at


def test_the_proven_address_is_verified_as_of_the_change(app, make_user, monkeypatch):
    user_id = make_user("susan")
    now = clock.utcnow()
    monkeypatch.setattr(clock, "utcnow", lambda: now)
    with app.app_context():
        assert change_address(db.session.get(User, user_id), "susan.new@example.com") is True
    assert stored(app, user_id) == ("susan.new@example.com", now)


def test_of_two_links_opened_at_once_the_second_changes_nothing(app, make_user):
    """A compare-and-swap on the address the second request read."""
    user_id = make_user("susan")
    with app.app_context():
        seen_by_second = db.session.get(User, user_id)
        with db.engine.begin() as first:
            first.execute(
                sa.update(User).where(User.id == user_id).values(email="first@example.com")
            )
        assert change_address(seen_by_second, "second@example.com") is False
    assert stored(app, user_id)[0] == "first@example.com"
