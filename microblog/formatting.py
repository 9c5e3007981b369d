"""How times read on a page, in the reader's language: the Jinja filters, in one place."""

from datetime import datetime
from functools import lru_cache

from flask import request, url_for
from flask_babel import format_datetime, format_timedelta, gettext

from microblog import clock


def time_ago(moment: datetime, now: datetime | None = None):
    """ "just now", "5 minutes ago", "5 минут назад": how long ago a naive-UTC moment was."""
    delta = moment - (now or clock.utcnow())
    if delta.total_seconds() > -60:
        return gettext("just now")
    return format_timedelta(delta, granularity="minute", add_direction=True)


def exact_time(moment: datetime):
    """The full time, for a tooltip: "November 23, 2026 at 12:00:00 PM UTC"."""
    return format_datetime(moment, "long")


def iso_time(moment: datetime):
    """For <time datetime=...>: ISO 8601, in UTC."""
    return moment.isoformat(timespec="seconds") + "Z"


FILTERS = {
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
