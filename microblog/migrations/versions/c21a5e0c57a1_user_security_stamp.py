"""user security stamp

Every existing account gets a random stamp of its own. Links already mailed
die with the deployment (they were signed without one); their owners ask again.

Revision ID: c21a5e0c57a1
Revises: f4a10c0de002
Create Date: 2026-12-06 21:40:00

"""
import secrets

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c21a5e0c57a1'
down_revision = 'f4a10c0de002'
branch_labels = None
depends_on = None


def upgrade():
    # NOT NULL with a default from the start: SQLite adds such a column in place,
    # where a later ALTER would rebuild the table (refused while posts point at it).
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('security_stamp', sa.String(length=32), nullable=False, server_default='')
        )
    user = sa.table('user', sa.column('id', sa.Integer), sa.column('security_stamp', sa.String))
    connection = op.get_bind()
    for (user_id,) in connection.execute(sa.select(user.c.id)).all():
        connection.execute(
            user.update()
            .where(user.c.id == user_id)
            .values(security_stamp=secrets.token_urlsafe(24))
        )


def downgrade():
    # In place on both databases (SQLite 3.35+): a batch rebuild of `user` is refused
    # by the foreign keys of the posts that point at it.
    op.execute('ALTER TABLE "user" DROP COLUMN security_stamp')
