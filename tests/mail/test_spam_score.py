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

import pytest

from support.emails import every_email, queue_every_email

pytestmark = [
    pytest.mark.spamassassin,
    pytest.mark.skipif(shutil.which("spamassassin") is None, reason="spamassassin not installed"),
]

MAX_SCORE = 0.5


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
    sent = queue_every_email(app)
    assert len(sent) == len(every_email()) * 2
    assert deliver() == len(sent)
    measured = scores(smtp.wait_for(len(sent)), tmp_path)
    assert len(measured) == len(sent)
    too_high = [
        (locale, template, score, rules)
        for (locale, template, _), (score, rules) in zip(sent, measured, strict=True)
        if score > MAX_SCORE
    ]
    assert too_high == []
