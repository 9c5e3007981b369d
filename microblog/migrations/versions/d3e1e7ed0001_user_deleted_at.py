"""user deleted_at: an account is gone at once, its rows go in a background job

Revision ID: d3e1e7ed0001
Revises: 5ea2c4f0b001
Create Date: 2026-12-06 22:45:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd3e1e7ed0001'
down_revision = '5ea2c4f0b001'
branch_labels = None
depends_on = None

DELETED = sa.text("deleted_at IS NOT NULL")


def upgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(), nullable=True))
        batch_op.create_index(
            'ix_user_deleted',
            ['id'],
            unique=False,
            sqlite_where=DELETED,
            postgresql_where=DELETED,
        )


def downgrade():
    op.drop_index('ix_user_deleted', table_name='user')
    # In place (SQLite 3.35+): a batch rebuild of `user` is refused by the posts' foreign keys.
    op.execute('ALTER TABLE "user" DROP COLUMN deleted_at')
