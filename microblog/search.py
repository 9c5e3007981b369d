"""Finding posts by their words and people by their names, on PostgreSQL and SQLite.

Posts: the index (models.SEARCH_SCHEMA) holds each post's stemmed words;
a query's stems (words.query_terms) must all be there. One function per
question, one implementation per database behind it, the same results from
both. Results come newest first (the order in which posts were published,
their id), read with the keyset pager: a page is a LIMIT n+1 past a cursor.
On SQLite, FTS5 walks the matching post ids in descending order itself; on
PostgreSQL the planner either walks post_search's primary key backwards
testing each row (a common word: the first n+1 match soon) or reads the GIN
index and sorts the few matches (a rare word).

People: a prefix of the name, compared through its skeleton (so "ALI" and
"a1i" find "alice"), verified accounts only, newest accounts first.
"""

import click
import sqlalchemy as sa
from flask.cli import with_appcontext

from microblog.extensions import db
from microblog.models import Post, User, index_posts
from microblog.usernames import PATTERN, skeleton

REBUILD_BATCH = 2000


def fts5_query(terms):
    """Each term an FTS5 string ("..." with " doubled): no operator, prefix or column syntax."""
    return " ".join('"' + term.replace('"', '""') + '"' for term in terms)


def tsquery(terms):
    """Each term a quoted tsquery lexeme, all of them required: nothing is parsed."""
    quoted = ("'" + term.replace("\\", "\\\\").replace("'", "''") + "'" for term in terms)
    return " & ".join(quoted)


def matching_posts(terms):
    """(query of posts holding every term, the column it is ordered and paged by)."""
    if db.engine.dialect.name == "postgresql":
        index = sa.table("post_search", sa.column("post_id"), sa.column("terms"))
        key = index.c.post_id
        match = sa.text("post_search.terms @@ CAST(:search_query AS tsquery)").bindparams(
            search_query=tsquery(terms)
        )
    else:
        index = sa.table("post_search", sa.column("rowid"))
        key = index.c.rowid
        match = sa.text("post_search MATCH :search_query").bindparams(
            search_query=fts5_query(terms)
        )
    query = sa.select(Post).select_from(index).join(Post, Post.id == key).where(match)
    return query, key


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
