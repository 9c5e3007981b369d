"""Response headers that every page carries, and the stricter ones of secret-bearing pages."""

from functools import wraps

from flask import abort, current_app, make_response, request

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def refuse_oversized_body():
    """A before_request hook: a declared body over MAX_CONTENT_LENGTH is a 413 before any view.

    Werkzeug refuses it only when the form is read; a view that never reads
    it (a redirect) would otherwise answer, leaving the server to drain it.
    """
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if limit is not None and (request.content_length or 0) > limit:
        abort(413)


def add_security_headers(response):
    """What every response carries: CSP, no framing, no sniffing; HSTS for an https site.

    HSTS only when the public scheme is https (and the request came over it):
    on a plain-HTTP site it would lock browsers out of the site.
    """
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if request.is_secure and current_app.config["PREFERRED_URL_SCHEME"] == "https":
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


def secret_page(referrer_policy="same-origin"):
    """For pages reached with a secret: never cached, never leaked in a Referer.

    `same-origin` (not `no-referrer`) on form pages: Flask-WTF checks the
    Referer of HTTPS form posts and would refuse the form without it.
    """

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            response = make_response(view(*args, **kwargs))
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = referrer_policy
            return response

        return wrapper

    return decorate
