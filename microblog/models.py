"""Users, their posts and who follows whom."""

import hashlib
import secrets
from functools import lru_cache
from urllib.parse import quote

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
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
    # The primary key serves "whom does X follow"; this serves "who follows X".
    sa.Index("ix_followers_followed_id_follower_id", "followed_id", "follower_id"),
)

# The widest post the column holds; POST_MAX_LENGTH (the form's limit) stays at or below it.
POST_COLUMN_LENGTH = 1000


def new_session_token():
    """A fresh alternative id: every session holding the old one ends."""
    return secrets.token_urlsafe(32)


def new_security_stamp():
    """A fresh security stamp: every emailed link signed with the old one dies."""
    return secrets.token_urlsafe(24)


class User(UserMixin, db.Model):
    # An address is taken once verified: several sign-ups may wait on one
    # address, each with its own link, and the first verified wins (auth.signup).
    __table_args__ = (
        sa.Index(
            "uq_user_verified_email",
            "email",
            unique=True,
            sqlite_where=sa.text("email_verified_at IS NOT NULL"),
            postgresql_where=sa.text("email_verified_at IS NOT NULL"),
        ),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    username: so.Mapped[str] = so.mapped_column(sa.String(64), index=True, unique=True)
    # The name folded for comparison (microblog.usernames.skeleton): unique, so that
    # "Alice" or "aIice" cannot sit beside "alice". Set with every username.
    username_key: so.Mapped[str] = so.mapped_column(sa.String(128), index=True, unique=True)
    # Stored normalised and lower-cased (see auth.emails.normalize_email).
    email: so.Mapped[str] = so.mapped_column(sa.String(254), index=True)
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(256))
    # Rotating it ends every session record of the user (auth.sessions): a
    # password change or reset signs out every device.
    session_token: so.Mapped[str] = so.mapped_column(
        sa.String(64), unique=True, default=new_session_token
    )
    # Signed into every emailed link and kept with every queued one: changed by
    # every change that matters (password, address, sign-out everywhere,
    # verification), it kills every link made before, a->b->a included.
    # Only auth.security_stamp.bump changes it.
    security_stamp: so.Mapped[str] = so.mapped_column(sa.String(32), default=new_security_stamp)
    # None until the owner opens the verification link (or completes a reset):
    # an account whose address is not verified cannot sign in.
    email_verified_at: so.Mapped[sa.DateTime | None] = so.mapped_column(sa.DateTime)
    # Unverified accounts are removed a while after this (auth.signup).
    created_at: so.Mapped[sa.DateTime] = so.mapped_column(
        sa.DateTime,
        default=lambda: clock.utcnow(),  # looked up late: tests move the clock
    )
    about_me: so.Mapped[str | None] = so.mapped_column(sa.String(140))
    # The language of the user's pages and of every email to them (microblog.i18n):
    # set at registration from the request, changed in Edit profile.
    locale: so.Mapped[str] = so.mapped_column(sa.String(8), default="en", server_default="en")
    last_seen: so.Mapped[sa.DateTime] = so.mapped_column(sa.DateTime, default=clock.utcnow)
    # Kept by follow()/unfollow() in the same transaction as the followers row, so that
    # a profile shows its counts without counting: a page's cost does not grow with them.
    followers_count: so.Mapped[int] = so.mapped_column(default=0, server_default="0")
    following_count: so.Mapped[int] = so.mapped_column(default=0, server_default="0")

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
        """Follow once; following oneself is ignored. True when something changed."""
        if user.id == self.id or self.is_following(user):
            return False
        self.following.add(user)
        change_follow_counts(self, user, +1)
        add_followed_posts(self, user)
        return True

    def unfollow(self, user):
        """Stop following; their posts leave the timeline. True when something changed."""
        if not self.is_following(user):
            return False
        self.following.remove(user)
        change_follow_counts(self, user, -1)
        remove_followed_posts(self, user)
        return True


def change_follow_counts(follower, followed, delta):
    """Counters moved in SQL (x = x + 1), so that two follows at once both count."""
    db.session.execute(
        sa.update(User)
        .where(User.id == follower.id)
        .values(following_count=User.following_count + delta)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        sa.update(User)
        .where(User.id == followed.id)
        .values(followers_count=User.followers_count + delta)
        .execution_options(synchronize_session=False)
    )
    db.session.expire(follower, ["following_count"])
    db.session.expire(followed, ["followers_count"])


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


class Post(db.Model):
    # Pages of posts walk these indexes newest first (keyset pagination): explore
    # the first, a profile the second. Each also ends on id, the tie-breaker.
    __table_args__ = (
        sa.Index("ix_post_timestamp_id", "timestamp", "id"),
        sa.Index("ix_post_user_id_timestamp_id", "user_id", "timestamp", "id"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    body: so.Mapped[str] = so.mapped_column(sa.String(POST_COLUMN_LENGTH))
    timestamp: so.Mapped[sa.DateTime] = so.mapped_column(sa.DateTime, default=clock.utcnow)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey(User.id))
    # Set when the author changes the body; the page then says "edited".
    edited_at: so.Mapped[sa.DateTime | None] = so.mapped_column(sa.DateTime)
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


class TimelineEntry(db.Model):
    """One post in one user's home timeline, written when the post is.

    Why fan-out on write: reading a timeline is then one index range scan
    (owner, timestamp, post) of n+1 rows, whatever the data and whoever the
    reader is. The alternatives each fail one of the two readers who matter:
    walking the newest posts of everyone (timestamp index) and keeping those by
    followed authors is cheap for someone following 500 active users but scans
    almost every post for someone following 3 quiet accounts; merging the newest
    posts of each followed author (one index seek each) is cheap for the quiet
    three but costs 500 seeks and a sort of up to 500 x n rows per page for the
    busy reader. Both get slower as data grows; this table does not.

    The price is paid on write, where it is bounded and rare by comparison: a
    new post costs one INSERT ... SELECT of one row per follower (publish), a
    follow copies at most TIMELINE_BACKFILL of the followed user's latest posts
    (add_followed_posts), an unfollow deletes that author's rows from one
    timeline (remove_followed_posts). Accounts with millions of followers would
    want their posts merged at read time instead; at this app's scale (tens of
    thousands of users) the table is the simple, predictable choice, on SQLite
    and PostgreSQL alike. Edits change nothing here; deletes cascade.
    """

    __tablename__ = "timeline_entry"
    __table_args__ = (
        sa.Index("ix_timeline_entry_owner_timestamp_post", "owner_id", "timestamp", "post_id"),
        sa.Index("ix_timeline_entry_owner_author", "owner_id", "author_id"),
        sa.Index("ix_timeline_entry_post_id", "post_id"),
    )

    owner_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey(User.id, ondelete="CASCADE"), primary_key=True
    )
    post_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey(Post.id, ondelete="CASCADE"), primary_key=True
    )
    author_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey(User.id, ondelete="CASCADE"))
    # The post's own timestamp, copied so that a page is one index range scan.
    timestamp: so.Mapped[sa.DateTime] = so.mapped_column(sa.DateTime)
    post: so.Mapped[Post] = so.relationship(lazy="joined", innerjoin=True)


@sa.event.listens_for(Post, "after_insert")
def fan_out(_mapper, connection, post):
    """A new post goes into its author's and every follower's timeline, in the same flush.

    Fan-out on write (the design is in TimelineEntry): one INSERT ... SELECT,
    whatever the number of followers. An ORM event, so that every way of adding
    a post through the session fills the timelines; bulk loads do it themselves.
    """
    owners = sa.union_all(
        sa.select(sa.literal(post.user_id).label("owner_id")),
        sa.select(followers.c.follower_id).where(followers.c.followed_id == post.user_id),
    ).subquery()
    connection.execute(
        sa.insert(TimelineEntry).from_select(
            ["owner_id", "post_id", "author_id", "timestamp"],
            sa.select(
                owners.c.owner_id,
                sa.literal(post.id),
                sa.literal(post.user_id),
                sa.literal(post.timestamp, sa.DateTime),
            ),
        )
    )


def unpublish(post):
    """Delete a post and its timeline entries (the foreign keys cascade too; this is explicit)."""
    db.session.execute(sa.delete(TimelineEntry).where(TimelineEntry.post_id == post.id))
    db.session.delete(post)


def add_followed_posts(follower, followed):
    """A new follow brings the followed user's latest posts into the follower's timeline.

    Only the latest TIMELINE_BACKFILL of them: following a prolific account is
    one bounded write, and older posts stay on their profile.
    """
    latest = (
        sa.select(sa.literal(follower.id), Post.id, Post.user_id, Post.timestamp)
        .where(Post.user_id == followed.id)
        .order_by(Post.timestamp.desc(), Post.id.desc())
        .limit(current_app.config["TIMELINE_BACKFILL"])
    )
    db.session.execute(
        sa.insert(TimelineEntry).from_select(
            ["owner_id", "post_id", "author_id", "timestamp"], latest
        )
    )


def remove_followed_posts(follower, followed):
    """An unfollow takes the unfollowed user's posts out of the follower's timeline."""
    db.session.execute(
        sa.delete(TimelineEntry).where(
            TimelineEntry.owner_id == follower.id, TimelineEntry.author_id == followed.id
        )
    )
