"""Usernames that cannot impersonate: whole-string rule, case- and lookalike-blind uniqueness."""

import threading

import pytest
import sqlalchemy as sa

from microblog.extensions import db
from microblog.models import User
from microblog.usernames import skeleton
from support.auth import AuthActions, flashes

TAKEN = "Please use a different username."
RULE = "Use letters, digits, dots, dashes and underscores."


def usernames(app):
    with app.app_context():
        return sorted(db.session.scalars(sa.select(User.username)))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("alice\n", RULE),  # `$` matched before a final newline
        ("alice\r\n", RULE),
        (" alice", RULE),
        ("Alice", TAKEN),
        ("ALICE", TAKEN),
        ("aIice", TAKEN),  # capital I for l
        ("a1ice", TAKEN),
        ("a|ice", RULE),
    ],
)
def test_lookalikes_of_a_name_are_refused_at_sign_up(app, auth, make_user, name, message):
    make_user("alice")
    response = auth.register(name, email="imposter@example.com")
    assert response.status_code == 200
    assert message in response.text
    assert usernames(app) == ["alice"]


@pytest.mark.parametrize(
    ("name", "message"),
    [("bob\n", RULE), ("Bob", TAKEN), ("b0b", TAKEN), ("B0B", TAKEN)],
)
def test_lookalikes_of_a_name_are_refused_on_rename(app, client, auth, make_user, name, message):
    make_user("bob")
    make_user("susan")
    auth.login()
    response = client.post("/edit_profile", data={"username": name, "about_me": ""})
    assert "Location" not in response.headers
    assert message in response.text
    assert usernames(app) == ["bob", "susan"]


def test_recasing_your_own_name_is_fine(app, client, auth, make_user):
    make_user("susan")
    auth.login()
    response = client.post("/edit_profile", data={"username": "SuSan", "about_me": ""})
    assert response.headers["Location"] == "/edit_profile"
    assert usernames(app) == ["SuSan"]


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("alice", "aIice"),
        ("ALICE", "a1ice"),
        ("bill", "BI11"),
        ("rnary", "mary"),
        ("OTTO", "0tt0"),
        ("a.b", "A.B"),
    ],
)
def test_lookalikes_share_a_skeleton(one, other):
    assert skeleton(one) == skeleton(other)


@pytest.mark.parametrize(("one", "other"), [("alice", "alicx"), ("a.b", "a-b"), ("bob", "b0bb")])
def test_different_names_keep_different_skeletons(one, other):
    assert skeleton(one) != skeleton(other)


def test_the_database_refuses_a_lookalike_that_skips_the_form(app, make_user):
    make_user("alice")
    with pytest.raises(sa.exc.IntegrityError):
        make_user("ALlCE", email="other@example.com")


def test_sign_in_by_username_ignores_case(auth, make_user):
    make_user("susan")
    assert auth.login("SUSAN").headers["Location"] == "/index"


def test_two_sign_ups_racing_for_lookalikes_get_one_account_and_a_form_error(app):
    """Both pass the form's check; the unique index decides, and the loser sees a form error."""
    from microblog.auth import forms

    both_checked = threading.Barrier(2)
    real_taken = forms.username_taken

    def taken_after_both_checked(name, **kwargs):
        answer = real_taken(name, **kwargs)
        both_checked.wait(timeout=10)
        return answer

    answers = {}

    def register(name):
        # Distinct addresses (CAROL@ and carol@ are one): only the names may collide.
        address = f"{name}-{len(name) + name.isupper()}@example.com".lower()
        answers[name] = AuthActions(app.test_client()).register(name, email=address)

    forms.username_taken = taken_after_both_checked
    try:
        threads = [threading.Thread(target=register, args=(n,)) for n in ("carol", "CAROL")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        forms.username_taken = real_taken
    locations = [a.headers.get("Location") for a in answers.values()]
    assert sorted(locations, key=str) == ["/auth/login", None]
    [loser] = [a for a in answers.values() if "Location" not in a.headers]
    assert "Please use a different username." in loser.text
    assert len(usernames(app)) == 1
    assert flashes(loser) == []


def test_a_renamed_account_is_found_and_guarded_by_its_new_name(app, client, auth, make_user):
    """The skeleton follows a rename: sign-in by the new name, and its lookalikes are taken."""
    make_user("susan")
    auth.login()
    response = client.post("/edit_profile", data={"username": "Bob", "about_me": ""})
    assert response.headers["Location"] == "/edit_profile"
    auth.logout()

    assert auth.login("bob").headers["Location"] == "/index"
    auth.logout()
    response = auth.register("b0b", email="imposter@example.com")
    assert TAKEN in response.text
    assert usernames(app) == ["Bob"]
