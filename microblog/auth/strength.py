"""How guessable a password is, estimated with zxcvbn (Dropbox's estimator).

A list of common passwords catches what people chose before; it misses
what they build the same way at any length: "passwordpassword" (a repeat),
"123456789012345" (a sequence), "qwertyuiopasdfgh" (a keyboard walk),
"P@ssword12345678" (a common word with small changes). zxcvbn scores such
patterns 0 to 4; PASSWORD_MIN_STRENGTH (3: "safely unguessable, moderate
protection from offline slow-hash attacks", about 10^8 guesses and up) is
the floor. The account's username and email address count as known words.

zxcvbn explains itself in English only: its warnings and suggestions are
listed here, marked for our catalog, and translated when shown; one it
added in a later release, unknown here, gives way to our generic advice
rather than appear in English on a Russian page.
"""

from flask import current_app
from flask_babel import gettext as _
from zxcvbn import zxcvbn

# zxcvbn's matching grows fast with length; what lies past this is not scored
# (a long tail only adds strength, so the verdict on the head is conservative).
MAX_SCORED_LENGTH = 72  # also zxcvbn's own limit (it raises beyond)


def N_(text):
    """Marks a string for the catalog; it is translated when shown."""
    return text


# Every warning and suggestion of zxcvbn's feedback.py (a test checks this list against it).
ZXCVBN_FEEDBACK = frozenset(
    (
        N_("Use a few words, avoid common phrases."),
        N_("No need for symbols, digits, or uppercase letters."),
        N_("Add another word or two. Uncommon words are better."),
        N_("Straight rows of keys are easy to guess."),
        N_("Short keyboard patterns are easy to guess."),
        N_("Use a longer keyboard pattern with more turns."),
        N_('Repeats like "aaa" are easy to guess.'),
        N_('Repeats like "abcabcabc" are only slightly harder to guess than "abc".'),
        N_("Avoid repeated words and characters."),
        N_('Sequences like "abc" or "6543" are easy to guess.'),
        N_("Avoid sequences."),
        N_("Recent years are easy to guess."),
        N_("Avoid recent years."),
        N_("Avoid years that are associated with you."),
        N_("Dates are often easy to guess."),
        N_("Avoid dates and years that are associated with you."),
        N_("This is a top-10 common password."),
        N_("This is a top-100 common password."),
        N_("This is a very common password."),
        N_("This is similar to a commonly used password."),
        N_("A word by itself is easy to guess."),
        N_("Names and surnames by themselves are easy to guess."),
        N_("Common names and surnames are easy to guess."),
        N_("Capitalization doesn't help very much."),
        N_("All-uppercase is almost as easy to guess as all-lowercase."),
        N_("Reversed words aren't much harder to guess."),
        N_("Predictable substitutions like '@' instead of 'a' don't help very much."),
    )
)


def translated(feedback):
    """zxcvbn's sentence in the page's language; None for one this list does not know."""
    return _(feedback) if feedback in ZXCVBN_FEEDBACK else None


def strength_problem(password, personal=()):
    """Why zxcvbn finds this password too guessable, with its advice; None if strong enough."""
    inputs = [value for value in personal if value]
    inputs += [part for value in inputs for part in value.replace("@", " ").split()]
    result = zxcvbn(password[:MAX_SCORED_LENGTH], user_inputs=inputs, max_length=MAX_SCORED_LENGTH)
    if result["score"] >= current_app.config["PASSWORD_MIN_STRENGTH"]:
        return None
    feedback = result["feedback"]
    reason = translated(feedback.get("warning")) or _("This password would be easy to guess.")
    suggestions = [translated(text) for text in feedback.get("suggestions") or []]
    advice = " ".join(text for text in suggestions if text) or _(
        "Add a few uncommon words; a phrase only you would make up works well."
    )
    return _("Too easy to guess: %(reason)s. %(advice)s", reason=reason.rstrip("."), advice=advice)
