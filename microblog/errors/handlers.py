"""Every error gets a page that says what happened and what to do next."""

from flask import Blueprint, render_template
from flask_wtf.csrf import CSRFError

from microblog.extensions import db

bp = Blueprint("errors", __name__)


def error_page(status, title, message):
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
    return error_page(400, "Bad request", "The request could not be understood.")


@bp.app_errorhandler(404)
def not_found(error):
    return error_page(404, "Not found", "There is nothing at this address.")


@bp.app_errorhandler(405)
def method_not_allowed(error):
    return error_page(405, "Not allowed", "This page cannot be used that way.")


@bp.app_errorhandler(429)
def too_many_requests(error):
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
