"""The signed-in devices are listed most recently seen first (ties: the newest sign-in)."""

from datetime import timedelta

from microblog import clock
from microblog.auth.sessions import SessionRecord, live_records
from microblog.extensions import db
from microblog.models import User


def test_the_most_recently_seen_device_comes_first(app, make_user):
    user_id = make_user("susan")
    now = clock.utcnow()
    seen = {"a": now - timedelta(minutes=5), "b": now, "c": now - timedelta(minutes=1), "d": now}
    with app.app_context():
        user = db.session.get(User, user_id)
        for name, last_seen in seen.items():
            db.session.add(
                SessionRecord(
                    token_hash=name * 64,
                    user_id=user_id,
                    user_token=user.session_token,
                    last_seen_at=last_seen,
                    expires_at=now + timedelta(days=1),
                    remembered=True,
                    device=name,
                )
            )
        db.session.commit()
        assert [record.device for record in live_records(user)] == ["d", "b", "c", "a"]
