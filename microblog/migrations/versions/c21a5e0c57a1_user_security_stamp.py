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
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('security_stamp', sa.String(length=32), nullable=True))
    user = sa.table('user', sa.column('id', sa.Integer), sa.column('security_stamp', sa.String))
    connection = op.get_bind()
    for (user_id,) in connection.execute(sa.select(user.c.id)).all():
        connection.execute(
            user.update()
            .where(user.c.id == user_id)
            .values(security_stamp=secrets.token_urlsafe(24))
        )
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.alter_column('security_stamp', existing_type=sa.String(length=32), nullable=False)


def downgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('security_stamp')
