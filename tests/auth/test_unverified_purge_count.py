"""`flask auth purge-unverified` reports how many accounts it removed, not whether it did."""

from datetime import timedelta

from microblog import clock
from microblog.auth.verification import purge_unverified_accounts


def test_the_purge_counts_every_account_it_removes(app, make_user, monkeypatch):
    long_ago = clock.utcnow() - timedelta(days=app.config["UNVERIFIED_ACCOUNT_DAYS"] + 1)
    with monkeypatch.context() as patch:
        patch.setattr(clock, "utcnow", lambda: long_ago)
        for name in ("ann", "bob", "cid"):
            make_user(name, verified=False)
    make_user("dee", verified=False)  # recent: kept
    with app.app_context():
        assert purge_unverified_accounts() == 3
        assert purge_unverified_accounts() == 0
