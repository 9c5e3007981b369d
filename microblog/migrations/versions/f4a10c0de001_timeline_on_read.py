"""timeline on read: authors above TIMELINE_FANOUT_LIMIT followers are merged at read time

Existing accounts above the limit are marked at once, so that their next post
is not copied to every follower.

Revision ID: f4a10c0de001
Revises: c27a1b0e5d01
Create Date: 2026-12-06 21:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f4a10c0de001'
down_revision = 'c27a1b0e5d01'
branch_labels = None
depends_on = None

FANOUT_LIMIT = 1000  # the setting's default when this revision was written


def upgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('timeline_on_read', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.execute(
        sa.text('UPDATE "user" SET timeline_on_read = :yes WHERE followers_count > :limit')
        .bindparams(yes=True, limit=FANOUT_LIMIT)
    )


def downgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('timeline_on_read')
