"""How times and counts read."""

from datetime import datetime, timedelta

import pytest

from microblog.formatting import exact_time, iso_time, plural, time_ago

NOW = datetime(2026, 11, 23, 12, 0, 0)


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 followers"), (1, "1 follower"), (2, "2 followers"), (1234, "1,234 followers")],
)
def test_plural_agrees_with_the_count(count, expected):
    assert plural(count, "follower", "followers") == expected


@pytest.mark.parametrize(
    ("ago", "expected"),
    [
        (timedelta(seconds=5), "just now"),
        (timedelta(minutes=1), "1 minute ago"),
        (timedelta(minutes=5, seconds=59), "5 minutes ago"),
        (timedelta(hours=3), "3 hours ago"),
        (timedelta(days=1), "1 day ago"),
        (timedelta(days=15), "2 weeks ago"),
        (timedelta(days=400), "1 year ago"),
    ],
)
def test_time_ago_reads_like_a_person_would_say_it(ago, expected):
    assert time_ago(NOW - ago, now=NOW) == expected


def test_the_exact_time_is_there_for_the_tooltip_and_machines():
    assert exact_time(NOW) == "2026-11-23 12:00 UTC"
    assert iso_time(NOW) == "2026-11-23T12:00:00Z"
