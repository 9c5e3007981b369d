"""Every error gets a page that says what happened and what to do next."""

from flask import Blueprint, render_template
from flask_wtf.csrf import CSRFError

from microblog.extensions import db

bp = Blueprint("errors", __name__)


def error_page(status, title, message):
    """One template for every error: what happened and a way back."""
    return render_template("errors/error.html", title=title, status=status, message=message), status


@bp.app_errorhandler(CSRFError)
def csrf_error(error):
    """A stale or missing form token: ask to retry, don't look like a crash."""
    return error_page(
        400,
        "Form expired",
        "The form expired or was not sent from this site. Go back, reload the page and try again.",
    )


@bp.app_errorhandler(400)
def bad_request(error):
    """Malformed input: a page, not a stack trace."""
    return error_page(400, "Bad request", "The request could not be understood.")


@bp.app_errorhandler(404)
def not_found(error):
    """Unknown pages, users and post pages."""
    return error_page(404, "Not found", "There is nothing at this address.")


@bp.app_errorhandler(405)
def method_not_allowed(error):
    """A GET on a POST-only action (follow, unfollow)."""
    return error_page(405, "Not allowed", "This page cannot be used that way.")


@bp.app_errorhandler(429)
def too_many_requests(error):
    """Flask-Limiter's per-IP limits: say when to come back."""
    return error_page(
        429, "Slow down", "Too many attempts from your address. Wait a few minutes and try again."
    )


@bp.app_errorhandler(500)
def internal_error(error):
    """Undo the half-done work of the failed request before rendering anything."""
    db.session.rollback()
    return error_page(
        500,
        "Something went wrong",
        "An unexpected error occurred. The administrators have been told.",
    )
