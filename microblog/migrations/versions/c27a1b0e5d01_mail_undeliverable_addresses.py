"""mail: undeliverable addresses, and the category of each outbox message

Addresses that failed for good (a bounce, a 5xx at RCPT) stop activity mail;
existing messages are account mail, which is always tried.

Revision ID: c27a1b0e5d01
Revises: bce8e8ca53c9
Create Date: 2026-12-06 21:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c27a1b0e5d01'
down_revision = 'bce8e8ca53c9'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'undeliverable_address',
        sa.Column('address', sa.String(length=320), nullable=False),
        sa.Column('reason', sa.String(length=200), nullable=False),
        sa.Column('failed_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('address'),
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('category', sa.String(length=16), server_default='account', nullable=False)
        )


def downgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('category')
    op.drop_table('undeliverable_address')
