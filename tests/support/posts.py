"""Posts made without the forms, and what a page of posts shows."""

import re
from datetime import timedelta
from html import unescape

import sqlalchemy as sa

from microblog import clock
from microblog.extensions import db
from microblog.models import Post, User


def add_posts(app, username, count, start=None):
    """`count` posts by `username`, one minute apart, oldest first."""
    start = start or clock.utcnow() - timedelta(days=1)
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == username))
        for n in range(count):
            db.session.add(
                Post(
                    body=f"{username} post {n}", author=user, timestamp=start + timedelta(minutes=n)
                )
            )
        db.session.commit()


def pager_links(html):
    """The rel="next" and rel="prev" URLs of a page (None where there is no link)."""
    found = {}
    for rel in ("next", "prev"):
        match = re.search(rf'<a class="page-link" rel="{rel}" href="([^"]+)"', html)
        found[rel] = unescape(match.group(1)) if match else None
    return found["next"], found["prev"]


def shown(html, username="john"):
    return [int(n) for n in re.findall(rf"{username} post (\d+)<", html)]
