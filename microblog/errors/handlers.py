"""Every error gets a page that says what happened and what to do next."""

import logging

from flask import Blueprint, current_app, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import SecurityError

from microblog.extensions import db

bp = Blueprint("errors", __name__)
log = logging.getLogger("microblog.errors")


def error_page(status, title, message):
    """One template for every error: what happened and a way back."""
    return render_template("errors/error.html", title=title, status=status, message=message), status


@bp.app_errorhandler(CSRFError)
def csrf_error(error):
    """A stale form token: ask to retry. No session cookie at all: say why, here and in the log."""
    if current_app.config["SESSION_COOKIE_NAME"] not in request.cookies:
        log.warning("A form came back without the session cookie: %s", why_no_cookie())
        return error_page(
            400,
            _("Cookies did not come back"),
            _(
                "Your browser did not send back this site's cookie, so the form cannot be "
                "trusted. Allow cookies for this site, open it at its own address and try again."
            ),
        )
    return error_page(
        400,
        _("Form expired"),
        _(
            "The form expired or was not sent from this site. "
            "Go back, reload the page and try again."
        ),
    )


def why_no_cookie():
    """The likely cause, for the operator: Secure over http, another host name, or a block."""
    config = current_app.config
    if config["SESSION_COOKIE_SECURE"] and not request.is_secure:
        return (
            "the cookie is Secure (PREFERRED_URL_SCHEME=https or SESSION_COOKIE_SECURE) but "
            "this request came over plain http, so browsers never send it back; serve over "
            "https (with PROXY_COUNT behind a TLS proxy)"
        )
    if config.get("SERVER_NAME") and request.host != config["SERVER_NAME"]:
        return (
            f"the request names host {request.host!r} but SERVER_NAME is "
            f"{config['SERVER_NAME']!r}: open the site at that address"
        )
    return "the client blocks or does not keep cookies (or the form was posted from elsewhere)"


@bp.app_errorhandler(SecurityError)
def untrusted_host(error):
    """A Host outside TRUSTED_HOSTS gets a plain 400, never a template.

    Flask builds no URL adapter for such a request, so a page that calls
    url_for would fail: a 500 and, with ADMINS set, an email per request.
    """
    return (
        _("Bad request: this site is not served under that host name.") + "\n",
        400,
        {"Content-Type": "text/plain; charset=utf-8"},
    )


@bp.app_errorhandler(400)
def bad_request(error):
    """Malformed input: a page, not a stack trace."""
    return error_page(400, _("Bad request"), _("The request could not be understood."))


@bp.app_errorhandler(403)
def forbidden(error):
    """Someone else's post to edit or delete."""
    return error_page(403, _("Forbidden"), _("You do not have permission to do this."))


@bp.app_errorhandler(404)
def not_found(error):
    """Unknown pages, users and post pages."""
    return error_page(404, _("Not found"), _("There is nothing at this address."))


@bp.app_errorhandler(405)
def method_not_allowed(error):
    """A GET on a POST-only action (follow, unfollow)."""
    return error_page(405, _("Not allowed"), _("This page cannot be used that way."))


@bp.app_errorhandler(413)
def too_large(error):
    """A body over MAX_CONTENT_LENGTH, or a form field or part count over its limit."""
    return error_page(413, _("Too large"), _("What you sent is larger than this site accepts."))


@bp.app_errorhandler(429)
def too_many_requests(error):
    """Flask-Limiter's per-IP limits: say when to come back."""
    return error_page(
        429,
        _("Slow down"),
        _("Too many attempts from your address. Wait a few minutes and try again."),
    )


@bp.app_errorhandler(500)
def internal_error(error):
    """Undo the half-done work of the failed request before rendering anything."""
    db.session.rollback()
    return error_page(
        500,
        _("Something went wrong"),
        _("An unexpected error occurred. The administrators have been told."),
    )


@bp.app_errorhandler(503)
def unavailable(error):
    """Busy (every password-hashing slot taken): say when to retry, in words and in Retry-After."""
    response = error_page(
        503, _("Busy"), _("The site is busy right now. Try again in a few seconds.")
    )
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        return (*response, {"Retry-After": str(retry_after)})
    return response
