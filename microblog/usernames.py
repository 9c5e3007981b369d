"""What a username may be, and when two of them are the same name to a reader.

Shared by the auth and main blueprints (sign-up, sign-in, rename) and the
User model, so that each blueprint reads the rule from below, not from the other.
"""

import re

from wtforms.validators import DataRequired, Length, ValidationError

MAX_LENGTH = 64
PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
PATTERN_MESSAGE = "Use letters, digits, dots, dashes and underscores."
TAKEN_MESSAGE = "Please use a different username."

# Unicode TS #39 confusables.txt, every entry whose source is one of the
# characters allowed above (the file maps nothing else among them, and no
# other ASCII letter: "w" is not mapped to "vv", nor "d" to "cl").
CONFUSABLES = str.maketrans({"0": "O", "1": "l", "I": "l", "m": "rn"})


def skeleton(username):
    """The key two names share when a reader could take one for the other.

    The TS #39 skeleton, made case-blind: mapped (I -> l before lower-casing
    makes it an i), lower-cased, mapped again (M -> m -> rn). "Alice",
    "aIice" and "a1ice" all fold to "alice".
    """
    return username.translate(CONFUSABLES).lower().translate(CONFUSABLES)


def valid_username(form, field):
    """A whole-string match: `re.match` with `$` would let "alice\\n" through."""
    if not PATTERN.fullmatch(field.data or ""):
        raise ValidationError(PATTERN_MESSAGE)


def username_validators():
    """The validators of every username field, sign-up and rename alike."""
    return [DataRequired(), Length(max=MAX_LENGTH), valid_username]
