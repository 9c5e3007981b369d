"""user email unique among verified accounts

Several sign-ups may wait on one address; it is taken once one is verified.

Revision ID: c21b7d1f0a22
Revises: c21a5e0c57a1
Create Date: 2026-12-06 22:15:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c21b7d1f0a22'
down_revision = 'c21a5e0c57a1'
branch_labels = None
depends_on = None

VERIFIED = sa.text("email_verified_at IS NOT NULL")


def upgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_index('ix_user_email')
        batch_op.create_index('ix_user_email', ['email'], unique=False)
        batch_op.create_index(
            'uq_user_verified_email',
            ['email'],
            unique=True,
            sqlite_where=VERIFIED,
            postgresql_where=VERIFIED,
        )


def downgrade():
    # Refuses while two accounts share an address: erase the waiting ones first.
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_index('uq_user_verified_email')
        batch_op.drop_index('ix_user_email')
        batch_op.create_index('ix_user_email', ['email'], unique=True)
