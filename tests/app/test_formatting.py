"""How times read, in each language."""

from datetime import datetime, timedelta

import pytest
from flask_babel import force_locale

from microblog.formatting import exact_time, iso_time, time_ago

NOW = datetime(2026, 11, 23, 12, 0, 0)


@pytest.mark.parametrize(
    ("ago", "english", "russian"),
    [
        (timedelta(seconds=5), "just now", "только что"),
        (timedelta(minutes=1), "1 minute ago", "1 минуту назад"),
        (timedelta(minutes=5), "5 minutes ago", "5 минут назад"),
        (timedelta(minutes=21), "21 minutes ago", "21 минуту назад"),
        (timedelta(hours=3), "3 hours ago", "3 часа назад"),
        (timedelta(days=1), "1 day ago", "1 день назад"),
        (timedelta(days=15), "2 weeks ago", "2 недели назад"),
        (timedelta(days=400), "1 year ago", "1 год назад"),
    ],
)
def test_time_ago_reads_like_a_person_would_say_it(app, ago, english, russian):
    with app.test_request_context():
        with force_locale("en"):
            assert time_ago(NOW - ago, now=NOW) == english
        with force_locale("ru"):
            assert time_ago(NOW - ago, now=NOW) == russian


def test_the_exact_time_is_there_for_the_tooltip_and_machines(app):
    with app.test_request_context():
        with force_locale("en"):
            assert (
                exact_time(NOW) == "November 23, 2026, 12:00:00\u202fPM UTC"
            )  # CLDR: narrow no-break space
        with force_locale("ru"):
            assert exact_time(NOW) == "23 ноября 2026\u202fг., 12:00:00 UTC"
    assert iso_time(NOW) == "2026-11-23T12:00:00Z"
