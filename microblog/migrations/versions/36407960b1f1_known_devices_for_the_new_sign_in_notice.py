"""known devices for the new sign-in notice

Revision ID: 36407960b1f1
Revises: 4e7007622e4e
Create Date: 2026-11-23 04:48:10.950670

Accounts that exist when this runs know no browser yet: their next sign-in
records its browser without a notice, like the first sign-in after verification.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '36407960b1f1'
down_revision = '4e7007622e4e'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('known_device',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('device_hash', sa.String(length=64), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_hash')
    )
    with op.batch_alter_table('known_device', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_known_device_user_id'), ['user_id'], unique=False)



def downgrade():
    with op.batch_alter_table('known_device', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_known_device_user_id'))

    op.drop_table('known_device')
