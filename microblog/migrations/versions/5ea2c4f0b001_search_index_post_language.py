"""search: each post's language, and the search index of posts' stemmed words

The index (microblog.models.SEARCH_SCHEMA) is a tsvector table with a GIN
index on PostgreSQL, an FTS5 table on SQLite; existing posts are indexed
here, in batches, with the analysis of microblog.words (the same that
`flask search rebuild` applies).

Revision ID: 5ea2c4f0b001
Revises: c21b7d1f0a22
Create Date: 2026-12-06 22:30:00

"""

import sqlalchemy as sa
from alembic import op

from microblog.models import create_search_index, drop_search_index, index_posts
from microblog.words import detect_language

# revision identifiers, used by Alembic.
revision = "5ea2c4f0b001"
down_revision = "c21b7d1f0a22"
branch_labels = None
depends_on = None

BATCH = 2000


def upgrade():
    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), server_default="en", nullable=False))
    connection = op.get_bind()
    create_search_index(connection)
    last = 0
    while True:
        rows = connection.execute(
            sa.text(
                'SELECT post.id, post.body, "user".locale FROM post JOIN "user" ON "user".id = post.user_id'
                " WHERE post.id > :last ORDER BY post.id LIMIT :batch"
            ),
            {"last": last, "batch": BATCH},
        ).all()
        if not rows:
            break
        connection.execute(
            sa.text("UPDATE post SET language = :language WHERE id = :id"),
            [{"id": id_, "language": detect_language(body, locale or "en")} for id_, body, locale in rows],
        )
        index_posts(connection, [(id_, body) for id_, body, _ in rows])
        last = rows[-1][0]


def downgrade():
    drop_search_index(op.get_bind())
    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.drop_column("language")
