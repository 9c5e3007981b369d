"""The password policy at its edges: what NFKC makes long, and the shortest personal value.

The refusals are compared with the refusal of a plain case of the same rule,
not with their wording.
"""

from microblog.auth.passwords import policy_problem

# Typed, 27 characters; after NFKC, 15 x 18 + 12: over PASSWORD_MAX_LENGTH (256).
EXPANDS = "\ufdfa" * 15 + " tangerine !"


def test_a_password_that_nfkc_makes_too_long_is_refused_as_too_long(app):
    with app.app_context():
        too_long = policy_problem("x" * (app.config["PASSWORD_MAX_LENGTH"] + 1))
        assert len(EXPANDS) <= app.config["PASSWORD_MAX_LENGTH"]
        assert too_long is not None
        assert policy_problem(EXPANDS) == too_long


def test_a_four_letter_username_in_the_password_is_refused(app):
    with app.app_context():
        personal = policy_problem("violet susan marmalade lighthouse", "susan")
        assert personal is not None
        assert policy_problem("violet bert marmalade lighthouse", "bert") == personal


def test_the_username_disguised_in_the_password_is_refused(app):
    """The substring rule misses l33t and reversed forms; the strength estimate must not."""
    username = "zkwqhfxnbtmvaplr"
    with app.app_context():
        for disguised in ("zkwqhfxnbtmvap1r", "rlpavmtbnxfhqwkz"):
            assert policy_problem(disguised) is None  # strong for anyone else
            assert policy_problem(disguised, username) is not None
