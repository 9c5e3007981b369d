"""Finding posts by their words and people by their names, on PostgreSQL and SQLite.

Posts: the index (models.SEARCH_SCHEMA) holds each post's stemmed words;
a query's stems (words.query_terms) must all be there. One function per
question, one implementation per database behind it, the same results from
both. Results come newest first (the order in which posts were published,
their id), read with the keyset pager: a page is a LIMIT n+1 past a cursor.
On SQLite, FTS5 walks the matching post ids in descending order itself; on
PostgreSQL one statement tests the newest rows one by one, then asks the GIN
index only if they held too few matches (postgres_ids).

People: a prefix of the name, compared through its skeleton (so "ALI" and
"a1i" find "alice"), verified accounts only, newest accounts first.
"""

import click
import sqlalchemy as sa
from flask.cli import with_appcontext
from sqlalchemy.dialects.postgresql import TSQUERY

from microblog.extensions import db
from microblog.models import Post, User, index_posts, visible_author
from microblog.usernames import PATTERN, skeleton

REBUILD_BATCH = 2000


def fts5_query(terms):
    """Each term an FTS5 string ("..." with " doubled): no operator, prefix or column syntax."""
    return " ".join('"' + term.replace('"', '""') + '"' for term in terms)


def tsquery(terms):
    """Each term a quoted tsquery lexeme, all of them required: nothing is parsed."""
    quoted = ("'" + term.replace("\\", "\\\\").replace("'", "''") + "'" for term in terms)
    return " & ".join(quoted)


def post_fetcher(terms):
    """fetch(bound, descending, limit): at most `limit` posts holding every term, past
    `bound` (None, or (comparison, (post id,))), by id in that direction, for the keyset pager.
    """
    if db.engine.dialect.name == "postgresql":
        return lambda bound, descending, limit: fetch_posts(
            postgres_ids(tsquery(terms), bound, descending, limit), descending
        )
    index = sa.table("post_search", sa.column("rowid"))
    match = sa.text("post_search MATCH :search_query").bindparams(search_query=fts5_query(terms))

    def fetch(bound, descending, limit):
        # FTS5 walks the term's ids in rowid order itself: a page costs n+1 rows, rare or common.
        ids = past(sa.select(index.c.rowid).where(match), index.c.rowid, bound)
        return fetch_posts(ordered(ids, index.c.rowid, descending).limit(limit), descending)

    return fetch


# Newest rows of the index a PostgreSQL search tests one by one before it asks the GIN index.
SEARCH_WINDOW = 2000


def postgres_ids(query_text, bound, descending, limit):
    """The ids of a page of matches on PostgreSQL, whether the words are common or rare.

    The planner alone gets one of the two wrong: it reads the GIN index and
    sorts every match (250 ms for a word in 90% of a million posts), or
    walks the primary key testing each row (300 ms for a word in 10 posts),
    as its guess of the word's frequency says. So one statement does both in
    turn: the SEARCH_WINDOW rows past the cursor tested one by one (a common
    word fills the page there), then, only if the page is not full, the GIN
    index for the matches beyond that window, sorted (a rare word has few).
    UNION ALL under a LIMIT runs its second branch only when the first one
    came short, and in that order. Words between the two (in about 1% of the
    posts) cost the sort of their matches: 10,000 at a million posts.
    """
    index = sa.table("post_search", sa.column("post_id"), sa.column("terms"))
    key = index.c.post_id
    query = sa.cast(sa.literal(query_text), TSQUERY)
    window = ordered(past(sa.select(key, index.c.terms), key, bound), key, descending)
    window = window.limit(SEARCH_WINDOW).subquery()
    recent = sa.select(window.c.post_id).where(window.c.terms.op("@@")(query))
    recent = ordered(recent, window.c.post_id, descending).limit(limit).subquery()
    edge = sa.func.min(window.c.post_id) if descending else sa.func.max(window.c.post_id)
    edge = sa.select(edge).scalar_subquery()
    beyond = sa.select(key).where(
        index.c.terms.op("@@")(query), key < edge if descending else key > edge
    )
    # key + 0: an order the primary key cannot give, so that only the GIN index is read.
    beyond = ordered(beyond, key + 0, descending).limit(limit).subquery()
    both = sa.union_all(sa.select(recent.c.post_id), sa.select(beyond.c.post_id)).subquery()
    return sa.select(both.c.post_id).limit(limit)


def past(query, key, bound):
    if bound is None:
        return query
    compare, (cursor,) = bound
    return query.where(compare(key, cursor))


def ordered(query, key, descending):
    return query.order_by(key.desc() if descending else key.asc())


def fetch_posts(ids, descending):
    """The posts (with their authors) of a page whose ids `ids` selects, in page order."""
    ids = ids.subquery()
    # A deleted account's posts wait for their purge job: never shown meanwhile.
    query = sa.select(Post).join(ids, ids.c[0] == Post.id).where(visible_author(Post.user_id))
    return db.session.scalars(ordered(query, Post.id, descending)).all()


def matching_people(text):
    """(query of verified accounts whose name starts like `text`, its paging column)."""
    prefix = text.strip()
    if not PATTERN.fullmatch(prefix):
        return None, User.id  # no name has a space, an emoji or a quote in it
    folded = skeleton(prefix).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = sa.select(User).where(
        User.username_key.like(folded + "%", escape="\\"),
        User.email_verified_at.is_not(None),
    )
    return query, User.id


def rebuild_index():
    """Index every post again from its body, in batches; the number of posts indexed.

    For a changed analysis (words.py): each batch replaces its posts' rows in
    its own transaction, so search keeps answering and the site keeps writing
    meanwhile. Rows of posts that no longer exist (none, unless the index was
    written around the app) go at the end.
    """
    done, last = 0, 0
    while True:
        rows = db.session.execute(
            sa.select(Post.id, Post.body)
            .where(Post.id > last)
            .order_by(Post.id)
            .limit(REBUILD_BATCH)
        ).all()
        if not rows:
            key = "post_id" if db.engine.dialect.name == "postgresql" else "rowid"
            db.session.execute(
                sa.text(f"DELETE FROM post_search WHERE {key} NOT IN (SELECT id FROM post)")  # noqa: S608
            )
            db.session.commit()
            return done
        index_posts(db.session.connection(), rows)
        db.session.commit()
        done += len(rows)
        last = rows[-1][0]


@click.group()
def search():
    """The search index of posts."""


@search.command()
@with_appcontext
def rebuild():
    """Index every post again (after a change to how words are stemmed)."""
    click.echo(f"Indexed {rebuild_index()} posts.")


def register_commands(app):
    app.cli.add_command(search)
