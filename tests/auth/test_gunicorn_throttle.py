"""The per-account sign-in pause holds across `gunicorn -w 2` workers (counted in the database)."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from support.auth import PASSWORD
from support.gunicorn import register, sign_in
from support.visitor import Visitor

pytestmark = pytest.mark.gunicorn

LIMIT = 10  # LOGIN_FAILURES_PER_ACCOUNT, the default an operator gets


def test_guesses_spread_over_both_workers_pause_the_account_once(gunicorn, smtp):
    register(Visitor(gunicorn.base_url), "susan", smtp)

    def guess(n):
        return sign_in(Visitor(gunicorn.base_url), "susan", f"wrong guess number {n}")

    # Two at a time: enough for both workers to count at once, within the per-process
    # hashing bound (a deployment answers a burst beyond it with 503s, not guesses).
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(guess, range(2 * LIMIT)))
    assert len(gunicorn.pids_that_served("POST", "/auth/login")) == 2
    invalid = [a for a in answers if "Invalid username or password." in a.text]
    paused = [a for a in answers if "Sign-in is paused for this account" in a.text]
    # On a loaded machine a guess may find the hashing slot taken: 503, counted all the same.
    busy = [a for a in answers if a.status == 503]
    assert len(invalid) + len(paused) + len(busy) == 2 * LIMIT
    # Per-worker counting would let 2 * LIMIT - 1 guesses be checked; the database lets LIMIT.
    assert LIMIT - 1 - len(busy) <= len(invalid) <= LIMIT - 1
    assert len(paused) >= LIMIT + 1 - len(busy)
    refused = sign_in(Visitor(gunicorn.base_url), "susan", PASSWORD)
    assert refused.status == 429 and refused.location is None

    notice = smtp.wait_for(2)[-1]  # after the verification email
    assert notice["Subject"] == "[Microblog] Sign-in to your account is paused"
    assert notice["To"] == "susan@example.com"
