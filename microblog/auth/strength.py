"""How guessable a password is, estimated with zxcvbn (Dropbox's estimator).

A list of common passwords catches what people chose before; it misses
what they build the same way at any length: "passwordpassword" (a repeat),
"123456789012345" (a sequence), "qwertyuiopasdfgh" (a keyboard walk),
"P@ssword12345678" (a common word with small changes). zxcvbn scores such
patterns 0 to 4; PASSWORD_MIN_STRENGTH (3: "safely unguessable, moderate
protection from offline slow-hash attacks", about 10^8 guesses and up) is
the floor. The account's username and email address count as known words.
"""

from flask import current_app
from zxcvbn import zxcvbn

# zxcvbn's matching grows fast with length; what lies past this is not scored
# (a long tail only adds strength, so the verdict on the head is conservative).
MAX_SCORED_LENGTH = 72  # also zxcvbn's own limit (it raises beyond)


def strength_problem(password, personal=()):
    """Why zxcvbn finds this password too guessable, with its advice; None if strong enough."""
    inputs = [value for value in personal if value]
    inputs += [part for value in inputs for part in value.replace("@", " ").split()]
    result = zxcvbn(password[:MAX_SCORED_LENGTH], user_inputs=inputs, max_length=MAX_SCORED_LENGTH)
    if result["score"] >= current_app.config["PASSWORD_MIN_STRENGTH"]:
        return None
    feedback = result["feedback"]
    reason = feedback.get("warning") or "This password would be easy to guess."
    advice = " ".join(feedback.get("suggestions") or []) or (
        "Add a few uncommon words; a phrase only you would make up works well."
    )
    return f"Too easy to guess: {reason.rstrip('.')}. {advice}"
