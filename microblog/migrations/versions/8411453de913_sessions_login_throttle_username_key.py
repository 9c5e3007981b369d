"""session records, login throttle, username skeleton

Revision ID: 8411453de913
Revises: 0652ef8bf78a
Create Date: 2026-11-23 04:08:22.496605

Adds user.username_key (the name folded for comparison) and fills it for
existing accounts. If two existing accounts fold to the same key ("alice"
and "Alice", "bob" and "b0b"), the upgrade stops and names them: an
operator must rename one (UPDATE user SET username = ...) before upgrading.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '8411453de913'
down_revision = '0652ef8bf78a'
branch_labels = None
depends_on = None

# Frozen copy of microblog.usernames.skeleton as of this revision (a migration
# must fold names the same way whatever the code says later).
CONFUSABLES = str.maketrans({"0": "o", "1": "l", "i": "l", "m": "rn"})


def skeleton(username):
    return username.lower().translate(CONFUSABLES)


USER = sa.table("user", sa.column("id", sa.Integer), sa.column("username", sa.String),
                sa.column("username_key", sa.String))


def folded_usernames():
    """{id: key} for every existing account; stops with a report if two share a key.

    Runs before any change: SQLite has no transactional DDL, so stopping later
    would leave a half-upgraded schema.
    """
    connection = op.get_bind()
    user = USER
    rows = connection.execute(sa.select(user.c.id, user.c.username).order_by(user.c.id)).all()
    by_key = {}
    for row in rows:
        by_key.setdefault(skeleton(row.username), []).append(row)
    clashes = {key: group for key, group in by_key.items() if len(group) > 1}
    if clashes:
        report = "\n".join(
            f"  {key!r}: " + ", ".join(f"id {row.id} {row.username!r}" for row in group)
            for key, group in sorted(clashes.items())
        )
        raise RuntimeError(
            "Cannot add the unique folded username: these existing accounts have names a "
            "reader cannot tell apart (case, I/l/1, O/0, rn/m). Rename all but one in each "
            f"group, then run the upgrade again:\n{report}"
        )
    return {row.id: key for key, [row] in by_key.items()}


def upgrade():
    keys = folded_usernames()
    op.create_table('login_throttle',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_started_at', sa.DateTime(), nullable=True),
    sa.Column('paused_until', sa.DateTime(), nullable=True),
    sa.Column('paused_at', sa.DateTime(), nullable=True),
    sa.Column('pauses', sa.Integer(), nullable=False),
    sa.Column('addresses', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_throttle_user_id'), ['user_id'], unique=False)

    op.create_table('session_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('user_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('remembered', sa.Boolean(), nullable=False),
    sa.Column('device', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('session_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_session_record_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('username_key', sa.String(length=128), nullable=True))
    connection = op.get_bind()
    for user_id, key in keys.items():
        connection.execute(sa.update(USER).where(USER.c.id == user_id).values(username_key=key))
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.alter_column('username_key', existing_type=sa.String(length=128), nullable=False)
        batch_op.create_index(batch_op.f('ix_user_username_key'), ['username_key'], unique=True)


def downgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_username_key'))
        batch_op.drop_column('username_key')

    with op.batch_alter_table('session_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_session_record_user_id'))

    op.drop_table('session_record')
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_throttle_user_id'))

    op.drop_table('login_throttle')
