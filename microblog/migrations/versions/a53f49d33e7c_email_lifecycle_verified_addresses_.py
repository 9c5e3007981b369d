"""email lifecycle: verified addresses, account age, outbox context

Revision ID: a53f49d33e7c
Revises: 8411453de913
Create Date: 2026-11-23 04:40:00

Accounts that exist when this runs count as verified (since their creation,
which is unknown: the migration's time stands in for both).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a53f49d33e7c'
down_revision = '8411453de913'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('context', sa.JSON(), nullable=True))

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_verified_at', sa.DateTime(), nullable=True))
        # The default fills the existing rows; new rows get theirs from the model.
        batch_op.add_column(sa.Column('created_at', sa.DateTime(), nullable=False,
                                      server_default=sa.func.current_timestamp()))

    user = sa.table('user', sa.column('email_verified_at', sa.DateTime()),
                    sa.column('created_at', sa.DateTime()))
    op.execute(user.update().values(email_verified_at=user.c.created_at))

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.alter_column('created_at', server_default=None)


def downgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('created_at')
        batch_op.drop_column('email_verified_at')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('context')
