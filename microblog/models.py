"""Users, their posts and who follows whom."""

import hashlib
import secrets
from functools import lru_cache
from urllib.parse import quote

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_login import UserMixin
from markupsafe import escape

from microblog import clock
from microblog.extensions import db
from microblog.usernames import skeleton

followers = sa.Table(
    "followers",
    db.metadata,
    sa.Column("follower_id", sa.Integer, sa.ForeignKey("user.id"), primary_key=True),
    sa.Column("followed_id", sa.Integer, sa.ForeignKey("user.id"), primary_key=True),
)


def new_session_token():
    """A fresh alternative id: every session holding the old one ends."""
    return secrets.token_urlsafe(32)


class User(UserMixin, db.Model):
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    username: so.Mapped[str] = so.mapped_column(sa.String(64), index=True, unique=True)
    # The name folded for comparison (microblog.usernames.skeleton): unique, so that
    # "Alice" or "aIice" cannot sit beside "alice". Set with every username.
    username_key: so.Mapped[str] = so.mapped_column(sa.String(128), index=True, unique=True)
    # Stored normalised and lower-cased (see auth.emails.normalize_email).
    email: so.Mapped[str] = so.mapped_column(sa.String(254), index=True, unique=True)
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(256))
    # Rotating it ends every session record of the user (auth.sessions): a
    # password change or reset signs out every device.
    session_token: so.Mapped[str] = so.mapped_column(
        sa.String(64), unique=True, default=new_session_token
    )
    # None until the owner opens the verification link (or completes a reset):
    # an account whose address is not verified cannot sign in.
    email_verified_at: so.Mapped[sa.DateTime | None] = so.mapped_column(sa.DateTime)
    # Unverified accounts are removed a while after this (auth.verification).
    created_at: so.Mapped[sa.DateTime] = so.mapped_column(
        sa.DateTime,
        default=lambda: clock.utcnow(),  # looked up late: tests move the clock
    )
    about_me: so.Mapped[str | None] = so.mapped_column(sa.String(140))
    last_seen: so.Mapped[sa.DateTime] = so.mapped_column(sa.DateTime, default=clock.utcnow)

    session_id = None  # the raw id of the session record this request runs under (not stored)

    posts: so.WriteOnlyMapped["Post"] = so.relationship(back_populates="author")
    following: so.WriteOnlyMapped["User"] = so.relationship(
        secondary=followers,
        primaryjoin=(followers.c.follower_id == id),
        secondaryjoin=(followers.c.followed_id == id),
        back_populates="followers",
    )
    followers: so.WriteOnlyMapped["User"] = so.relationship(
        secondary=followers,
        primaryjoin=(followers.c.followed_id == id),
        secondaryjoin=(followers.c.follower_id == id),
        back_populates="following",
    )

    def __repr__(self):
        return f"<User {self.id}>"

    @so.validates("username")
    def _fold_username(self, _key, username):
        self.username_key = skeleton(username)
        return username

    @property
    def email_verified(self):
        return self.email_verified_at is not None

    def get_id(self):
        """What Flask-Login keeps in the session and remember cookies: a session record's id.

        Set by auth.sessions when it signs the user in or loads them; there is
        no id without a record, so nothing can sign in around the records.
        """
        return self.session_id

    def avatar(self, size):
        """A generated SVG avatar: no third party learns who reads which profile."""
        return avatar_data_uri(self.username, size)

    def is_following(self, user):
        query = self.following.select().where(User.id == user.id)
        return db.session.scalar(query) is not None

    def follow(self, user):
        """Follow once; following oneself is ignored."""
        if user is not self and not self.is_following(user):
            self.following.add(user)

    def unfollow(self, user):
        if self.is_following(user):
            self.following.remove(user)

    def followers_count(self):
        """Counted in SQL, without loading the followers."""
        query = sa.select(sa.func.count()).select_from(self.followers.select().subquery())
        return db.session.scalar(query)

    def following_count(self):
        query = sa.select(sa.func.count()).select_from(self.following.select().subquery())
        return db.session.scalar(query)

    def posts_select(self):
        return newest_first(sa.select(Post).where(Post.user_id == self.id))

    def following_posts(self):
        """The user's own posts and those of the people they follow, newest first."""
        followed = sa.select(followers.c.followed_id).where(followers.c.follower_id == self.id)
        return newest_first(
            sa.select(Post).where(sa.or_(Post.user_id == self.id, Post.user_id.in_(followed)))
        )


@lru_cache(maxsize=4096)
def avatar_data_uri(username, size):
    """Cached: a page of posts asks for the same few avatars again and again."""
    hue = int(hashlib.sha256(username.encode()).hexdigest()[:4], 16) % 360
    svg = (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{size}' height='{size}' "
        "viewBox='0 0 10 10'>"
        f"<rect width='10' height='10' fill='hsl({hue},55%,45%)'/>"
        "<text x='5' y='7' font-size='6' text-anchor='middle' fill='white' "
        f"font-family='sans-serif'>{escape(username[:1].upper())}</text></svg>"
    )
    return "data:image/svg+xml," + quote(svg)


def newest_first(query):
    """Ties on timestamp broken by id, so pages never repeat or skip a post."""
    return query.order_by(Post.timestamp.desc(), Post.id.desc())


class Post(db.Model):
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    body: so.Mapped[str] = so.mapped_column(sa.String(140))
    timestamp: so.Mapped[sa.DateTime] = so.mapped_column(
        sa.DateTime, index=True, default=clock.utcnow
    )
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey(User.id), index=True)
    # Always loaded with the post: listing pages cost one query, however many posts.
    author: so.Mapped[User] = so.relationship(back_populates="posts", lazy="joined")

    def __repr__(self):
        return f"<Post {self.id}>"


def mark_email_verified(user_id):
    """The owner proved the address (a verification or reset link); the caller commits.

    Idempotent: a second link, or a scanner that opened the first, changes nothing.
    """
    db.session.execute(
        sa.update(User)
        .where(User.id == user_id, User.email_verified_at.is_(None))
        .values(email_verified_at=clock.utcnow())
        .execution_options(synchronize_session=False)
    )
