"""Measured deliverability: SpamAssassin (local tests only) scores every kind of email, in
every language, as it arrives on the wire, at 0.5 or less.

Slow (SpamAssassin loads its rules once per run: a few seconds), and skipped
where the `spamassassin` binary is missing (Debian's package; `.ci/run` installs it).
"""

import mailbox
import os
import re
import shutil
import subprocess
from datetime import timedelta

import pytest

from microblog import clock, i18n
from microblog.auth.emails import render_email
from microblog.extensions import db
from microblog.mail import send_email
from microblog.models import User

pytestmark = [
    pytest.mark.spamassassin,
    pytest.mark.skipif(shutil.which("spamassassin") is None, reason="spamassassin not installed"),
]

MAX_SCORE = 0.5
SITE = "https://blog.example"
LINK = f"{SITE}/auth/reset_password/eyJhbGciOiJIUzI1NiJ9.eyJyZXNldCI6MX0.c2lnbmF0dXJl"


def every_email():
    """(template, subject, context) of each kind of email auth sends, with typical values."""
    user = User(id=1, username="susan", email="susan@example.com", password_hash="")
    now = clock.utcnow()
    return [
        ("reset_password", "Reset your password", {"user": user, "link": LINK}),
        (
            "password_changed",
            "Your password was changed",
            {"user": user, "link": LINK, "when": now},
        ),
        (
            "login_paused",
            "Sign-in to your account is paused",
            {
                "user": user,
                "paused_at": now,
                "paused_until": now + timedelta(minutes=15),
                "addresses": ["203.0.113.0/24"],
                "link": LINK,
                "limit": 10,
            },
        ),
        (
            "new_sign_in",
            "New sign-in to your account",
            {
                "user": user,
                "when": now,
                "device": "Firefox on Linux",
                "address": "203.0.113.7",
                "sessions": f"{SITE}/auth/sessions",
                "change_password": f"{SITE}/auth/change_password",
            },
        ),
        ("verify_email", "Verify your email address", {"user": user, "link": LINK}),
        (
            "address_taken",
            "Someone tried to use your email address",
            {
                "user": user,
                "attempt": "register",
                "login": f"{SITE}/auth/login",
                "reset": f"{SITE}/auth/reset_password_request",
            },
        ),
        ("change_email", "Confirm your new email address", {"user": user, "link": LINK}),
        (
            "email_change_notice",
            "A change of your email address was requested",
            {"user": user, "new_address": "s***@example.org", "link": LINK},
        ),
        ("account_deleted", "Your account was deleted", {"username": "susan"}),
    ]


def scores(messages, folder):
    """SpamAssassin's score of each message, in one run over an mbox of them all."""
    path = folder / "mail.mbox"
    box = mailbox.mbox(path)
    for message in messages:
        box.add(message.wire)
    box.close()
    # No Bayes, no auto-learning, nothing written to the home folder of whoever runs the tests.
    prefs = folder / "user_prefs"
    prefs.write_text("use_bayes 0\nbayes_auto_learn 0\nuse_auto_whitelist 0\n")
    result = subprocess.run(
        ["spamassassin", "--local", "--test-mode", f"--prefspath={prefs}", "--mbox", str(path)],
        env={"HOME": str(folder), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        timeout=300,
        check=True,
    )
    found = re.findall(
        rb"X-Spam-Status: \w+, score=(-?[\d.]+)[^\n]*\n((?:\s+[^\n]*\n)*)", result.stdout
    )
    return [(float(score), b" ".join(rules.split()).decode()) for score, rules in found]


def test_every_email_in_every_language_scores_at_most_half_a_point(app, smtp, deliver, tmp_path):
    kinds = every_email()
    sent = []
    with app.test_request_context():
        languages = i18n.languages()
        for locale in languages:
            for template, subject, context in kinds:
                title, text, html = render_email(locale, subject, template, **context)
                send_email(title, None, ["susan@example.com"], text, html, tag=template)
                sent.append((locale, template))
        db.session.commit()
    assert len(sent) == len(kinds) * len(languages) >= 18
    assert deliver() == len(sent)
    messages = smtp.wait_for(len(sent))
    measured = scores(messages, tmp_path)
    assert len(measured) == len(sent)
    too_high = [
        (locale, template, score, rules)
        for (locale, template), (score, rules) in zip(sent, measured, strict=True)
        if score > MAX_SCORE
    ]
    assert too_high == []
