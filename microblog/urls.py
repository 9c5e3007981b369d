"""URLs the app hands out: in emails (absolute) and after login (`next`)."""

from urllib.parse import urlsplit

from flask import current_app


def public_host(app):
    """The host emailed links point at: configured, never taken from a request.

    SERVER_NAME first, then the first of TRUSTED_HOSTS; in debug and testing
    a local default, so that a newcomer's console links work out of the box.
    """
    config = app.config
    hosts = [host for host in (config.get("TRUSTED_HOSTS") or []) if not host.startswith(".")]
    host = config.get("SERVER_NAME") or (hosts[0] if hosts else None)
    if host is None and (app.debug or app.testing):
        host = "localhost:5000"
    return host


def external_url(endpoint, **values):
    """An absolute URL built from configuration alone, immune to Host-header poisoning."""
    app = current_app._get_current_object()
    host = public_host(app)
    if host is None:  # only wildcard TRUSTED_HOSTS (".example.com"): no host to name
        raise RuntimeError(
            "No public host for emailed links: set SERVER_NAME (e.g. microblog.example.com) "
            "or put a plain host name first in TRUSTED_HOSTS."
        )
    adapter = app.url_map.bind(
        host,
        url_scheme=app.config["PREFERRED_URL_SCHEME"],
        script_name=app.config["APPLICATION_ROOT"],
    )
    return adapter.build(endpoint, values, force_external=True)


def safe_next(target):
    """`target` if it is a path on this site as a browser would read it, else None.

    Browsers drop tabs and newlines, read a backslash as a slash and treat
    `//host` as another site: anything but a plain absolute path is refused.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(char) < 0x21 or ord(char) == 0x7F for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
