"""What a username may be, and when two of them are the same name to a reader.

Shared by the auth and main blueprints (sign-up, sign-in, rename) and the
User model, so that each blueprint reads the rule from below, not from the other.
"""

import re

from flask_babel import lazy_gettext as _l
from wtforms.validators import DataRequired, Length, ValidationError

MAX_LENGTH = 64
PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
# Lazy: translated when shown, in the reader's language (both are raised by validators).
PATTERN_MESSAGE = _l("Use letters, digits, dots, dashes and underscores.")
TAKEN_MESSAGE = _l("Please use a different username.")

# Unicode TS #39 confusables.txt maps, among the characters allowed above,
# only 0 -> O, 1 -> l, I -> l and m -> rn (nothing for "w"/"vv" or "d"/"cl").
# Uniqueness must also ignore case, and I is both the capital of i and a
# lookalike of l, so i, l (and 1, I, L) fall into one class, as do o, O, 0:
# the closure of both relations, applied after lower-casing.
CONFUSABLES = str.maketrans({"0": "o", "1": "l", "i": "l", "m": "rn"})


def skeleton(username):
    """The key two names share when a reader could take one for the other.

    "Alice", "ALICE", "aIice" and "a1ice" all fold to "allce"; "M0M" to "rnorn".
    (So do "allce" and "alice": a name one letter from a lookalike is refused too.)
    """
    return username.lower().translate(CONFUSABLES)


def valid_username(form, field):
    """A whole-string match: `re.match` with `$` would let "alice\\n" through."""
    if not PATTERN.fullmatch(field.data or ""):
        raise ValidationError(PATTERN_MESSAGE)


def username_validators():
    """The validators of every username field, sign-up and rename alike."""
    return [DataRequired(), Length(max=MAX_LENGTH), valid_username]
