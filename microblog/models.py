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

from microblog import clock, jobs
from microblog.extensions import db
from microblog.usernames import skeleton
from microblog.words import detect_language, terms

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
        # The few accounts deleted but not yet purged (auth.deletion): what
        # `visible_author` reads on every page of posts, kept tiny.
        sa.Index(
            "ix_user_deleted",
            "id",
            sqlite_where=sa.text("deleted_at IS NOT NULL"),
            postgresql_where=sa.text("deleted_at IS NOT NULL"),
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
    # Set for good once followers_count passes TIMELINE_FANOUT_LIMIT: the user's posts
    # are then read into their followers' home pages, not copied (see TimelineEntry).
    # Never cleared, so that no post falls between the two ways of reaching a timeline.
    timeline_on_read: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())
    # Set when the account is deleted: from then on it is a tombstone (no name,
    # no address, no way in) that every page leaves out, until the background
    # job has removed its follows, timeline rows and posts, then the row itself.
    deleted_at: so.Mapped[sa.DateTime | None] = so.mapped_column(sa.DateTime)

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
        if not user.timeline_on_read:  # read at request time: nothing to copy
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
    limit = current_app.config["TIMELINE_FANOUT_LIMIT"]
    db.session.execute(
        sa.update(User)
        .where(User.id == followed.id)
        .values(
            followers_count=User.followers_count + delta,
            timeline_on_read=sa.or_(User.timeline_on_read, User.followers_count + delta > limit),
        )
        .execution_options(synchronize_session=False)
    )
    db.session.expire(follower, ["following_count"])
    db.session.expire(followed, ["followers_count", "timeline_on_read"])


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


def visible_author(author_id):
    """A condition on a posts query: the author is not a deleted account awaiting its purge.

    A NOT IN over the partial index of deleted accounts (a handful of rows at
    most), so a page of posts costs what it did and needs no join.
    """
    return author_id.not_in(sa.select(User.id).where(User.deleted_at.is_not(None)))


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
    # Detected when the body is written (words.detect_language): the `lang` of its text.
    language: so.Mapped[str] = so.mapped_column(sa.String(8), default="en", server_default="en")
    # Always loaded with the post: listing pages cost one query, however many posts.
    author: so.Mapped[User] = so.relationship(back_populates="posts", lazy="joined")

    def __repr__(self):
        return f"<Post {self.id}>"


# The search index: one row per post, keyed on the post's id, holding the stems of its
# words (microblog.words.terms), so that both databases match the same terms.
# PostgreSQL: a tsvector built from those stems as they are (array_to_tsvector parses
# nothing), with a GIN index; its foreign key cascades, so deleted posts and deleted
# accounts' posts leave it. SQLite: an FTS5 table whose rowid is the post's id, and a
# trigger for the deletes (a virtual table has no foreign keys). Not in the metadata
# (neither type is one SQLAlchemy knows): created and dropped with the post table.
SEARCH_SCHEMA = {
    "postgresql": (
        [
            "CREATE TABLE post_search (post_id INTEGER PRIMARY KEY"
            " REFERENCES post(id) ON DELETE CASCADE, terms TSVECTOR NOT NULL)",
            "CREATE INDEX ix_post_search_terms ON post_search USING gin (terms)",
        ],
        ["DROP TABLE IF EXISTS post_search"],
    ),
    "sqlite": (
        [
            "CREATE VIRTUAL TABLE post_search USING fts5("
            "terms, tokenize = 'unicode61 remove_diacritics 0', columnsize = 0)",
            "CREATE TRIGGER post_search_delete AFTER DELETE ON post"
            " BEGIN DELETE FROM post_search WHERE rowid = old.id; END",
        ],
        ["DROP TRIGGER IF EXISTS post_search_delete", "DROP TABLE IF EXISTS post_search"],
    ),
}


def is_search_index_table(name):
    """The index, and on SQLite the tables FTS5 keeps it in (post_search_data, ...)."""
    return name == "post_search" or name.startswith("post_search_")


def create_search_index(connection):
    for statement in SEARCH_SCHEMA[connection.dialect.name][0]:
        connection.exec_driver_sql(statement)


def drop_search_index(connection):
    for statement in SEARCH_SCHEMA[connection.dialect.name][1]:
        connection.exec_driver_sql(statement)


sa.event.listen(Post.__table__, "after_create", lambda _t, c, **_kw: create_search_index(c))
sa.event.listen(Post.__table__, "before_drop", lambda _t, c, **_kw: drop_search_index(c))


def index_posts(connection, rows):
    """Write the index rows of (post id, body) pairs, replacing any they had."""
    rows = [(post_id, terms(body)) for post_id, body in rows]
    if not rows:
        return
    ids = [{"id": post_id} for post_id, _ in rows]
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("DELETE FROM post_search WHERE post_id = :id"), ids)
        connection.execute(
            sa.text(
                "INSERT INTO post_search (post_id, terms)"
                " VALUES (:id, array_to_tsvector(string_to_array(:terms, ' ')))"
            ),
            [{"id": post_id, "terms": text} for post_id, text in rows],
        )
    else:
        connection.execute(sa.text("DELETE FROM post_search WHERE rowid = :id"), ids)
        connection.execute(
            sa.text("INSERT INTO post_search (rowid, terms) VALUES (:id, :terms)"),
            [{"id": post_id, "terms": text} for post_id, text in rows],
        )


@sa.event.listens_for(Post, "before_insert")
@sa.event.listens_for(Post, "before_update")
def detect_post_language(_mapper, _connection, post):
    """The language of what was written, or the author's when the text does not tell."""
    if post.id is None or sa.inspect(post).attrs.body.history.has_changes():
        fallback = post.author.locale if post.author is not None else "en"
        post.language = detect_language(post.body, fallback)


@sa.event.listens_for(Post, "after_insert")
def index_new_post(_mapper, connection, post):
    """Searchable in the same transaction that publishes it; bulk loads index themselves."""
    index_posts(connection, [(post.id, post.body)])


@sa.event.listens_for(Post, "after_update")
def reindex_edited_post(_mapper, connection, post):
    """An edit replaces the post's terms: the old words no longer find it."""
    if sa.inspect(post).attrs.body.history.has_changes():
        index_posts(connection, [(post.id, post.body)])


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
    """One post in one user's home timeline, written when the post is (for most authors).

    The home timeline is hybrid, as Twitter's is: posts of authors with at most
    TIMELINE_FANOUT_LIMIT followers (1,000) are copied here on write, one row
    per follower; posts of the few authors above it (`User.timeline_on_read`)
    are not copied at all but merged in when a follower reads the page.

    Why copy for most: reading is then one index range scan (owner, timestamp,
    post) of n+1 rows, whoever the reader is. Walking everyone's newest posts
    and keeping the followed scans almost every post for a reader following 3
    quiet accounts; merging the newest posts of each followed author costs 500
    seeks and a sort for a reader following 500. This table costs neither.

    Why not copy for the big: the copy is paid in the request that posts and
    grows with the audience. Measured before the split: 52 ms at 10,000
    followers on SQLite, 1.3 s at 200,000 (holding SQLite's only write lock all
    that time), 5.3 s on PostgreSQL, about 27 s at a million, near gunicorn's
    timeout. Moving the copy to a background job (Mastodon's way) frees the
    request but still writes a million rows per post and delays the post by as
    long. Read-time merge writes nothing: a big account's post is one row, and
    each page adds one LIMIT n+1 seek per followed big account on
    posts(user_id, timestamp, id) (main/timeline.py), both branches keyed on
    the same (timestamp, post id) cursor so that nothing repeats or is skipped.
    There are few such accounts, so the read stays bounded; the write is
    bounded by the limit, whatever the audience. Why 1,000 and not Twitter's
    larger figure: through gunicorn a post copied to 10,000 followers took
    87 ms on SQLite and 1.1 s on PostgreSQL on this machine (shared, noisy),
    and other requests waited up to 144 ms behind it; past the limit a post to
    a million followers costs what one to ten does (docs/benchmarks.md).

    A follow of a big account copies nothing; an unfollow removes the author
    at once (the page reads only authors still followed) and its rows in
    bounded batches. Edits change nothing here; deletes cascade.
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
    """A new post goes into its author's timeline and, unless the author is read at
    request time, every follower's, in the same flush.

    Fan-out on write (the design is in TimelineEntry): one INSERT ... SELECT of at
    most TIMELINE_FANOUT_LIMIT + 1 rows. An ORM event, so that every way of adding
    a post through the session fills the timelines; bulk loads do it themselves.
    """
    copied = (
        sa.select(followers.c.follower_id)
        .join(User, User.id == followers.c.followed_id)
        .where(followers.c.followed_id == post.user_id, sa.not_(User.timeline_on_read))
    )
    owners = sa.union_all(sa.select(sa.literal(post.user_id).label("owner_id")), copied).subquery()
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
    already = (  # left by an unfollow whose background clean-up has not run yet
        sa.select(TimelineEntry.post_id)
        .where(TimelineEntry.owner_id == follower.id, TimelineEntry.post_id == Post.id)
        .exists()
    )
    latest = (
        sa.select(sa.literal(follower.id), Post.id, Post.user_id, Post.timestamp)
        .where(Post.user_id == followed.id, ~already)
        .order_by(Post.timestamp.desc(), Post.id.desc())
        .limit(current_app.config["TIMELINE_BACKFILL"])
    )
    db.session.execute(
        sa.insert(TimelineEntry).from_select(
            ["owner_id", "post_id", "author_id", "timestamp"], latest
        )
    )


def remove_followed_posts(follower, followed):
    """An unfollow takes the unfollowed user's posts out of the follower's timeline.

    The page stops showing them at once (it reads only authors still followed);
    the rows go one bounded batch now and the rest in a background job, so an
    unfollow of a prolific author holds no lock for long.
    """
    if not delete_author_batch(follower.id, followed.id):
        jobs.enqueue(REMOVE_AUTHOR, owner_id=follower.id, author_id=followed.id)


def delete_author_batch(owner_id, author_id):
    """Delete up to TIMELINE_DELETE_BATCH of an author's rows in a timeline; True if all gone."""
    batch = current_app.config["TIMELINE_DELETE_BATCH"]
    rows = (
        sa.select(TimelineEntry.post_id)
        .where(TimelineEntry.owner_id == owner_id, TimelineEntry.author_id == author_id)
        .limit(batch)
    )
    deleted = db.session.execute(
        sa.delete(TimelineEntry)
        .where(TimelineEntry.owner_id == owner_id, TimelineEntry.post_id.in_(rows))
        .execution_options(synchronize_session=False)
    )
    return deleted.rowcount < batch


REMOVE_AUTHOR = "timeline.remove_author"


@jobs.handler(REMOVE_AUTHOR)
def finish_removing_author(owner_id, author_id):
    """The rest of an unfollow's rows, a batch per run; nothing if they follow again meanwhile."""
    following_again = db.session.scalar(
        sa.select(followers.c.follower_id).where(
            followers.c.follower_id == owner_id, followers.c.followed_id == author_id
        )
    )
    if following_again is not None:
        return True
    return delete_author_batch(owner_id, author_id)
