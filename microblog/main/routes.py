"""Views of the main blueprint."""

from datetime import timedelta

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import refresh
from flask_login import current_user, login_required
from sqlalchemy.exc import SQLAlchemyError

from microblog import clock
from microblog.extensions import db, login, read_limit
from microblog.forms import commit_or_form_error
from microblog.hostile_input import LARGEST_INTEGER
from microblog.i18n import N_
from microblog.main import keyset, timeline
from microblog.main.forms import EditProfileForm, EmptyForm, PostForm, SearchForm
from microblog.models import Post, User, followers, unpublish, visible_author
from microblog.search import matching_people, post_fetcher
from microblog.urls import safe_next
from microblog.usernames import TAKEN_MESSAGE
from microblog.words import highlight, query_terms

bp = Blueprint("main", __name__)

WELCOME_POSTS = 10  # the latest posts a visitor sees on the home page


@bp.before_app_request
def record_last_seen():
    """Keep last_seen fresh without a write on every request: once a minute at most."""
    if not current_user.is_authenticated:
        return
    now = clock.utcnow()
    interval = timedelta(seconds=current_app.config["LAST_SEEN_INTERVAL"])
    if current_user.last_seen is None or now - current_user.last_seen >= interval:
        current_user.last_seen = now
        db.session.commit()


def post_page(query, endpoint, **values):
    """One page of posts, newest first, keyed on (timestamp, id)."""
    return keyset.paginate(
        query,
        (Post.timestamp, Post.id),
        lambda post: (post.timestamp, post.id),
        current_app.config["POSTS_PER_PAGE"],
        endpoint,
        **values,
    )


def all_posts():
    """Everyone's posts but a deleted account's, gone from the pages before its rows are."""
    return sa.select(Post).where(visible_author(Post.user_id))


@bp.route("/", methods=["GET", "POST"])
def home():
    """The site's front door: your timeline when signed in, else what this place is."""
    if current_user.is_authenticated:
        return index()
    if request.method == "POST":
        return login.unauthorized()
    latest = db.session.scalars(
        all_posts().order_by(Post.timestamp.desc(), Post.id.desc()).limit(WELCOME_POSTS)
    ).all()
    return render_template("main/welcome.html", posts=latest)


@bp.route("/index", methods=["GET", "POST"])
@login_required
def index():
    """Your timeline: what you and the people you follow wrote, and a box to write."""
    form = PostForm()
    if form.validate_on_submit():
        db.session.add(Post(body=form.post.data, author=current_user))
        db.session.commit()
        flash(_("Your post is now live!"), "success")
        return redirect(url_for("main.index"))
    page = timeline.home_page(current_user.id, current_app.config["POSTS_PER_PAGE"], "main.index")
    return render_template("main/index.html", title=_("Home"), form=form, page=page)


@bp.route("/explore")
def explore():
    """Everyone's posts, newest first."""
    page = post_page(all_posts(), "main.explore")
    return render_template("main/explore.html", title=_("Explore"), page=page)


SEARCH_KINDS = ("posts", "people")
PEOPLE_BESIDE_POSTS = 5  # the people a search of both kinds shows above the posts


@bp.route("/search")
@read_limit("main.search", "SEARCH_RATE_LIMIT")
def search():
    """Posts with every word of the query, newest first, and people whose name starts with it."""
    kind = request.args.get("kind")
    if kind is not None and kind not in SEARCH_KINDS:
        abort(404)
    form = SearchForm(request.args)
    query = (form.q.data or "").strip() if form.validate() else ""
    terms = query_terms(query)
    posts = people = None
    if terms and kind != "people":
        posts = keyset.paginate_fetched(
            post_fetcher(terms),
            (int,),
            lambda post: (post.id,),
            current_app.config["POSTS_PER_PAGE"],
            "main.search",
            q=query,
            kind="posts",
        )
    found, key = matching_people(query)
    if found is not None and kind == "people":
        people = keyset.paginate(
            found,
            (key,),
            lambda person: (person.id,),
            current_app.config["PEOPLE_PER_PAGE"],
            "main.search",
            q=query,
            kind="people",
        )
    elif found is not None and kind is None:
        first = db.session.scalars(found.order_by(key.desc()).limit(PEOPLE_BESIDE_POSTS)).all()
        people = keyset.Page(first, None, None)
    return render_template(
        "main/search.html",
        title=_("Search: %(query)s", query=query) if query else _("Search"),
        form=form,
        query=query,
        kind=kind,
        posts=posts,
        people=people,
        people_beside_posts=PEOPLE_BESIDE_POSTS,
        mark=lambda text: highlight(text, terms),
    )


# A deleted account loses its name and its verification at once; the marker says it too.
VISIBLE = (User.email_verified_at.is_not(None), User.deleted_at.is_(None))


def find_user(username):
    """A visible account by its name: one still waiting for verification is a 404."""
    return db.first_or_404(sa.select(User).where(User.username == username, *VISIBLE))


def viewer_follows(profile):
    """Whether the signed-in viewer follows `profile`: one query, only for someone else."""
    if not current_user.is_authenticated or current_user.id == profile.id:
        return False
    return current_user.is_following(profile)


@bp.route("/user/<username>")
def user(username):
    """A profile: who they are, who follows them, what they wrote."""
    profile = find_user(username)
    page = post_page(
        sa.select(Post).where(Post.user_id == profile.id), "main.user", username=username
    )
    return render_template(
        "main/user.html",
        title=profile.username,
        user=profile,
        page=page,
        form=EmptyForm(),
        is_following=viewer_follows(profile),
    )


# listing -> (the column listed, the column that pairs with the profile, the page title)
PEOPLE_LISTINGS = {
    "followers": (
        followers.c.follower_id,
        followers.c.followed_id,
        N_("People following %(username)s"),
    ),
    "following": (
        followers.c.followed_id,
        followers.c.follower_id,
        N_("People %(username)s follows"),
    ),
}


def people_listing(username, listing):
    """One page of the people on one side of a user's follows, most recent accounts first."""
    profile = find_user(username)
    listed, other, title = PEOPLE_LISTINGS[listing]
    query = (
        sa.select(User)
        .join(followers, listed == User.id)
        .where(other == profile.id, User.deleted_at.is_(None))
    )
    page = keyset.paginate(
        query,
        (listed,),
        lambda person: (person.id,),
        current_app.config["PEOPLE_PER_PAGE"],
        f"main.user_{listing}",
        username=profile.username,
    )
    return render_template(
        "main/people.html",
        title=_(title, username=profile.username),
        user=profile,
        page=page,
        listing=listing,
    )


@bp.route("/user/<username>/followers")
def user_followers(username):
    """Who follows this user."""
    return people_listing(username, "followers")


@bp.route("/user/<username>/following")
def user_following(username):
    """Whom this user follows."""
    return people_listing(username, "following")


def own_post(post_id):
    """The signed-in user's post: 404 if there is none, 403 if it is someone else's."""
    post = db.session.get(Post, post_id) if post_id <= LARGEST_INTEGER else None
    if post is None:
        abort(404)
    if post.user_id != current_user.id:
        abort(403)
    return post


@bp.route("/post/<int:post_id>/edit", methods=["GET", "POST"])
@login_required
def edit_post(post_id):
    """Change what you wrote; the post then says "edited"."""
    post = own_post(post_id)
    form = PostForm()
    if request.method == "GET":
        form.post.data = post.body
    elif form.validate_on_submit():
        if form.post.data != post.body:
            post.body = form.post.data
            post.edited_at = clock.utcnow()
            db.session.commit()
        flash(_("Your post has been updated."), "success")
        return redirect(url_for("main.user", username=current_user.username))
    return render_template("main/edit_post.html", title=_("Edit post"), form=form, post=post)


@bp.route("/post/<int:post_id>/delete", methods=["POST"])
@login_required
def delete_post(post_id):
    """Delete one of your posts (a POST with CSRF token, never a link)."""
    post = own_post(post_id)
    if not EmptyForm().validate_on_submit():
        flash(_("The form expired; please try again."), "warning")
    else:
        unpublish(post)
        db.session.commit()
        flash(_("Your post has been deleted."), "info")
    return redirect(safe_next(request.form.get("next")) or url_for("main.index"))


@bp.route("/edit_profile", methods=["GET", "POST"])
@login_required
def edit_profile():
    """Change your username, about-me and language (the next page is in the new one)."""
    form = EditProfileForm(current_user)
    if form.validate_on_submit():
        current_user.username = form.username.data
        current_user.about_me = form.about_me.data
        current_user.locale = form.locale.data
        if commit_or_form_error(form.username, TAKEN_MESSAGE):
            refresh()  # the message below, already in the language just chosen
            flash(_("Your changes have been saved."), "success")
            return redirect(url_for("main.edit_profile"))
    elif request.method == "GET":
        form.username.data = current_user.username
        form.about_me.data = current_user.about_me
    return render_template("main/edit_profile.html", title=_("Edit profile"), form=form)


def change_following(username, follow):
    """Follow or unfollow; unknown users and oneself get a message, not an error."""
    form = EmptyForm()
    if not form.validate_on_submit():
        flash(_("The form expired; please try again."), "warning")
        return redirect(url_for("main.index"))
    target = db.session.scalar(sa.select(User).where(User.username == username, *VISIBLE))
    if target is None:
        flash(_("User %(username)s not found.", username=username), "warning")
        return redirect(url_for("main.index"))
    if target == current_user:
        flash(_("You cannot follow or unfollow yourself."), "warning")
    elif follow:
        current_user.follow(target)
        db.session.commit()
        flash(_("You are following %(username)s.", username=username), "success")
    else:
        current_user.unfollow(target)
        db.session.commit()
        flash(_("You are no longer following %(username)s.", username=username), "info")
    return redirect(url_for("main.user", username=username))


@bp.route("/follow/<username>", methods=["POST"])
@login_required
def follow(username):
    """Follow a user (a POST with CSRF token, never a link)."""
    return change_following(username, follow=True)


@bp.route("/unfollow/<username>", methods=["POST"])
@login_required
def unfollow(username):
    """Stop following a user."""
    return change_following(username, follow=False)


@bp.route("/healthz")
def healthz():
    """For load balancers: 200 while the database answers, 503 when it does not."""
    try:
        db.session.execute(sa.text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        return {"status": "unavailable", "database": "unreachable"}, 503
    return {"status": "ok"}
