"""How times and counts read on a page: the Jinja filters, in one place.

Kept small and separate so that the translated versions (Flask-Babel's
format_timedelta and ngettext) can replace them without touching templates.
"""

from datetime import datetime
from functools import lru_cache

from flask import request, url_for

from microblog import clock

UNITS = (
    (365 * 24 * 3600, "year", "years"),
    (30 * 24 * 3600, "month", "months"),
    (7 * 24 * 3600, "week", "weeks"),
    (24 * 3600, "day", "days"),
    (3600, "hour", "hours"),
    (60, "minute", "minutes"),
)


def plural(count, singular, plural_form):
    """ "1 follower", "2 followers", "1,024 followers"."""
    return f"{count:,} {singular if count == 1 else plural_form}"


def time_ago(moment: datetime, now: datetime | None = None):
    """ "just now", "5 minutes ago", "3 days ago": how long ago a naive-UTC moment was."""
    seconds = ((now or clock.utcnow()) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    for length, singular, plural_form in UNITS:
        if seconds >= length:
            return f"{plural(int(seconds // length), singular, plural_form)} ago"
    return "just now"  # unreachable: the last unit is a minute


def exact_time(moment: datetime):
    """The full time, for a tooltip: "2026-11-23 04:05 UTC"."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def iso_time(moment: datetime):
    """For <time datetime=...>: ISO 8601, in UTC."""
    return moment.isoformat(timespec="seconds") + "Z"


FILTERS = {
    "plural": plural,
    "time_ago": time_ago,
    "exact_time": exact_time,
    "iso_time": iso_time,
}


def profile_url(username):
    """url_for("main.user", username=...), built once per username and application root.

    A page of posts asks for the same few profile URLs again and again, and
    url_for was a third of the cost of rendering a post.
    """
    return cached_profile_url(request.script_root, username)


@lru_cache(maxsize=4096)
def cached_profile_url(_script_root, username):
    return url_for("main.user", username=username)


def register_filters(app):
    """Make the filters (and profile_url) available to every template of `app`."""
    app.jinja_env.filters.update(FILTERS)
    app.jinja_env.globals["profile_url"] = profile_url
