"""Listing pages cost the same number of SQL queries whether they show 1 post or 25 (no N+1)."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.extensions import db
from microblog.models import Post, User, followers
from support.app import counting_queries

AUTHORS = ("bob", "carol", "dave")
PER_PAGE = 25


@pytest.fixture
def world(app, make_user, auth):
    """susan, signed in, follows three authors; `add_posts(n, authors)` writes their posts."""
    make_user("susan")
    ids = {name: make_user(name) for name in AUTHORS}
    with app.app_context():
        susan = db.session.scalar(sa.select(User.id).where(User.username == "susan"))
        db.session.execute(
            sa.insert(followers), [{"follower_id": susan, "followed_id": i} for i in ids.values()]
        )
        db.session.commit()
    start = clock.utcnow() - timedelta(days=1)
    written = 0

    def add_posts(count, authors=AUTHORS):
        nonlocal written
        with app.app_context():
            for n in range(count):
                written += 1
                author = ids[authors[n % len(authors)]]
                when = start + timedelta(minutes=written)
                db.session.add(Post(body=f"post {written}", user_id=author, timestamp=when))
            db.session.commit()

    auth.login("susan")
    return add_posts


def queries_for(app, client, url):
    """How many posts the page shows and the queries it took.

    Visited once first, so that a once-a-minute write such as last_seen does
    not land in one count and not the other.
    """
    assert client.get(url).status_code == 200
    with counting_queries(app) as statements:
        page = client.get(url)
    assert page.status_code == 200
    return len(re.findall(r'<article class="card mb-3 post"', page.text)), statements


@pytest.mark.parametrize(
    ("url", "authors"),
    [
        ("/index", AUTHORS),
        ("/explore", AUTHORS),
        ("/user/bob", ("bob",)),
    ],
)
def test_listing_pages_cost_the_same_queries_for_1_post_as_for_25(app, client, world, url, authors):
    """Posts by several authors: a lazy author load would add a query per post or per author."""
    world(1, authors)
    shown_one, one = queries_for(app, client, url)
    world(PER_PAGE + 5, authors)
    shown_full, full = queries_for(app, client, url)

    assert (shown_one, shown_full) == (1, PER_PAGE)
    assert len(full) == len(one), "\n\n".join(full)


def test_the_home_page_merging_big_accounts_costs_the_same_queries_for_1_post_as_for_25(
    app, client, world
):
    """Authors read at request time: one seek each, in one statement, whatever their posts.

    One big account first, then two: a statement per big account would add one.
    """

    def read_at_request_time(*names):
        with app.app_context():
            db.session.execute(
                sa.update(User).where(User.username.in_(names)).values(timeline_on_read=True)
            )
            db.session.commit()

    read_at_request_time("bob")
    world(1, ("bob",))
    shown_one, one = queries_for(app, client, "/index")
    read_at_request_time("carol")
    world(PER_PAGE + 5, AUTHORS)
    shown_full, full = queries_for(app, client, "/index")
    assert (shown_one, shown_full) == (1, PER_PAGE)
    assert len(full) == len(one), "\n\n".join(full)
    next_page = re.search(r'rel="next" href="([^"]+)"', client.get("/index").text).group(1)
    _, older = queries_for(app, client, next_page.replace("&amp;", "&"))
    assert len(older) <= len(full) + 2  # the probe for a newer page: one per source
