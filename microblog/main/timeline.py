"""The home timeline: the rows copied on write, merged with the big accounts read now.

Two sources, one order: the reader's TimelineEntry rows and the posts of the
followed authors too big to copy (`User.timeline_on_read`, the design is in
TimelineEntry's docstring). Both are keyed on (timestamp, post id), so one
cursor bounds both; each gives at most n+1 rows past it, the merge keeps the
first n+1, and a post found in both (copied before its author grew) counts
once. A page is a fixed number of statements: the followed big accounts, the
copied rows, the big accounts' posts (one LIMIT n+1 seek each, in one
statement), whatever the number of posts.
"""

import sqlalchemy as sa

from microblog.extensions import db
from microblog.main import keyset
from microblog.models import Post, TimelineEntry, User, followers, visible_author

COPIED_KEY = (TimelineEntry.timestamp, TimelineEntry.post_id)
POST_KEY = (Post.timestamp, Post.id)


def post_key(post):
    return (post.timestamp, post.id)


def followed_big_accounts(reader_id):
    query = (
        sa.select(followers.c.followed_id)
        .join(User, User.id == followers.c.followed_id)
        .where(
            followers.c.follower_id == reader_id,
            User.timeline_on_read,
            User.deleted_at.is_(None),
        )
    )
    return db.session.scalars(query).all()


def copied_posts(reader_id):
    """The reader's own rows, of authors still followed (an unfollow's rows may linger)."""
    still_followed = (
        sa.select(followers.c.followed_id)
        .where(
            followers.c.follower_id == reader_id,
            followers.c.followed_id == TimelineEntry.author_id,
        )
        .exists()
    )
    return (
        sa.select(Post)
        .join(TimelineEntry, TimelineEntry.post_id == Post.id)
        .where(
            TimelineEntry.owner_id == reader_id,
            sa.or_(TimelineEntry.author_id == reader_id, still_followed),
            visible_author(TimelineEntry.author_id),  # a deleted account's rows may linger
        )
    )


def big_posts(authors, bound, descending, limit):
    """At most `limit` posts of `authors` past `bound`: one index seek per author."""
    order = [column.desc() if descending else column.asc() for column in POST_KEY]
    seeks = [
        sa.select(
            keyset.bounded(sa.select(Post.id).where(Post.user_id == author), POST_KEY, bound)
            .order_by(*order)
            .limit(limit)
            .subquery()
        )
        for author in authors
    ]
    ids = seeks[0] if len(seeks) == 1 else sa.union_all(*seeks)
    return keyset.rows(sa.select(Post).where(Post.id.in_(ids)), POST_KEY, descending, limit)


def home_page(reader_id, per_page, endpoint):
    """One page of the reader's home timeline (keyset.Page of Posts)."""
    big = followed_big_accounts(reader_id)
    copied = copied_posts(reader_id)

    def fetch(bound, descending, limit):
        found = keyset.rows(
            keyset.bounded(copied, COPIED_KEY, bound), COPIED_KEY, descending, limit
        )
        if big:
            found += big_posts(big, bound, descending, limit)
        unique = {post.id: post for post in found}.values()
        return sorted(unique, key=post_key, reverse=descending)[:limit]

    kinds = [keyset.datetime, int]
    return keyset.paginate_fetched(fetch, kinds, post_key, per_page, endpoint)
