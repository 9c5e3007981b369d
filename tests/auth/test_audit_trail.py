"""Each audit line about an account names that account, and every line formats.

An operator follows an account through `microblog.audit` by its id (README,
Security): a line with no id, the wrong one, or arguments that do not fit
its format (logging then prints an error instead of the line) loses the trail.
"""

import logging
from datetime import timedelta

import pytest

from microblog import clock
from microblog.auth.email_change import request_email_change
from microblog.auth.emails import within_limit
from microblog.auth.recovery import complete_password_reset
from microblog.auth.signup import purge_unverified_accounts
from microblog.extensions import db
from microblog.models import User

NEW_PASSWORD = "a brand new passphrase, never used"


@pytest.fixture
def audit(caplog):
    """The audit lines logged so far, formatted (a line that cannot be formatted fails)."""
    caplog.set_level(logging.INFO, logger="microblog.audit")

    def lines():
        return [r.getMessage() for r in caplog.records if r.name == "microblog.audit"]

    return lines


def test_a_completed_reset_and_a_second_submission_name_the_account(app, make_user, audit):
    user_id = make_user("susan")
    with app.app_context():
        read_by_both = db.session.get(User, user_id).password_hash
        first = db.session.get(User, user_id)
        assert complete_password_reset(first, NEW_PASSWORD) is True
        second = User(id=user_id, password_hash=read_by_both)  # submitted with the same link
        assert complete_password_reset(second, NEW_PASSWORD) is False
    assert audit() == [
        f"password_reset.completed user={user_id}",
        f"password_reset.rejected reason=already_used user={user_id}",
    ]


def test_an_email_change_request_names_the_account(app, make_user, audit):
    user_id = make_user("susan")
    with app.app_context():
        request_email_change(db.session.get(User, user_id), "susan.new@example.com")
    assert audit() == [f"email_change.requested user={user_id}"]


@pytest.mark.settings(ACCOUNT_EMAILS_PER_HOUR=0)
def test_a_throttled_email_names_its_kind_and_the_account(app, make_user, audit):
    user_id = make_user("susan")
    with app.app_context():
        assert within_limit(db.session.get(User, user_id), "address_taken") is False
    assert audit() == [f"address_taken.throttled user={user_id}"]


def test_each_purged_account_is_named(app, make_user, audit, monkeypatch):
    long_ago = clock.utcnow() - timedelta(days=app.config["UNVERIFIED_ACCOUNT_DAYS"] + 1)
    with monkeypatch.context() as patch:
        patch.setattr(clock, "utcnow", lambda: long_ago)
        ids = [make_user(name, verified=False) for name in ("ann", "bob")]
    with app.app_context():
        purge_unverified_accounts()
    assert sorted(audit()) == [f"account.purged_unverified user={i}" for i in sorted(ids)]
