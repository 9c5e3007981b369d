"""Views of the main blueprint."""

from datetime import timedelta

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy.exc import SQLAlchemyError

from microblog import clock
from microblog.extensions import db
from microblog.forms import commit_or_form_error
from microblog.main.forms import EditProfileForm, EmptyForm, PostForm
from microblog.models import Post, User, newest_first

bp = Blueprint("main", __name__)
MAX_PAGE = 1_000_000


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


def paginate(query, endpoint, **values):
    """One page of posts, with the URLs of its neighbours."""
    number = request.args.get("page", 1, type=int)
    if not 1 <= number <= MAX_PAGE:  # an OFFSET past 64 bits is an OverflowError, a 500
        abort(404)
    page = db.paginate(
        query,
        page=number,
        per_page=current_app.config["POSTS_PER_PAGE"],
        error_out=False,
    )
    next_url = url_for(endpoint, page=page.next_num, **values) if page.has_next else None
    prev_url = url_for(endpoint, page=page.prev_num, **values) if page.has_prev else None
    return page.items, next_url, prev_url


@bp.route("/", methods=["GET", "POST"])
@bp.route("/index", methods=["GET", "POST"])
@login_required
def index():
    """Your timeline: what you and the people you follow wrote, and a box to write."""
    form = PostForm()
    if form.validate_on_submit():
        db.session.add(Post(body=form.post.data, author=current_user))
        db.session.commit()
        flash("Your post is now live!", "success")
        return redirect(url_for("main.index"))
    posts, next_url, prev_url = paginate(current_user.following_posts(), "main.index")
    return render_template(
        "main/index.html",
        title="Home",
        form=form,
        posts=posts,
        next_url=next_url,
        prev_url=prev_url,
    )


@bp.route("/explore")
def explore():
    """Everyone's posts, newest first."""
    posts, next_url, prev_url = paginate(newest_first(sa.select(Post)), "main.explore")
    return render_template(
        "main/index.html", title="Explore", posts=posts, next_url=next_url, prev_url=prev_url
    )


@bp.route("/user/<username>")
def user(username):
    """A profile: who they are, who follows them, what they wrote."""
    profile = db.first_or_404(sa.select(User).where(User.username == username))
    posts, next_url, prev_url = paginate(profile.posts_select(), "main.user", username=username)
    return render_template(
        "main/user.html",
        title=profile.username,
        user=profile,
        posts=posts,
        next_url=next_url,
        prev_url=prev_url,
        form=EmptyForm(),
        is_following=current_user.is_authenticated and current_user.is_following(profile),
    )


@bp.route("/edit_profile", methods=["GET", "POST"])
@login_required
def edit_profile():
    """Change your username and about-me."""
    form = EditProfileForm(current_user.username)
    if form.validate_on_submit():
        current_user.username = form.username.data
        current_user.about_me = form.about_me.data
        if commit_or_form_error(form.username, "Please use a different username."):
            flash("Your changes have been saved.", "success")
            return redirect(url_for("main.edit_profile"))
    elif request.method == "GET":
        form.username.data = current_user.username
        form.about_me.data = current_user.about_me
    return render_template("main/edit_profile.html", title="Edit profile", form=form)


def change_following(username, follow):
    """Follow or unfollow; unknown users and oneself get a message, not an error."""
    form = EmptyForm()
    if not form.validate_on_submit():
        flash("The form expired; please try again.", "warning")
        return redirect(url_for("main.index"))
    target = db.session.scalar(sa.select(User).where(User.username == username))
    if target is None:
        flash(f"User {username} not found.", "warning")
        return redirect(url_for("main.index"))
    if target == current_user:
        flash("You cannot follow or unfollow yourself.", "warning")
    elif follow:
        current_user.follow(target)
        db.session.commit()
        flash(f"You are following {username}.", "success")
    else:
        current_user.unfollow(target)
        db.session.commit()
        flash(f"You are not following {username}.", "info")
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
