"""What a deployment must provide: a secret key, and a public host for emailed links.

Debug and testing relax both; serving without them is refused at startup,
not discovered in a leaked session or a link that points at an attacker's host.
"""

import os
import secrets
from pathlib import Path

import click

from microblog.urls import public_host

MIN_SECRET_KEY_BYTES = 32


def relaxed(app):
    """Debug and testing: convenience over refusal."""
    return app.debug or app.testing


def ensure_secret_key(app):
    """Development convenience: a random key kept in instance/ when none is configured.

    Created with a hard link so that several gunicorn workers starting at once
    all end up with the same key. A configured key shorter than 32 bytes is
    refused outside debug and testing (it signs sessions and reset tokens).
    """
    key = app.config.get("SECRET_KEY")
    if key:
        if len(key.encode()) < MIN_SECRET_KEY_BYTES and not relaxed(app):
            raise RuntimeError(
                f"SECRET_KEY is too short: use at least {MIN_SECRET_KEY_BYTES} random bytes, "
                'for example python -c "import secrets; print(secrets.token_hex(32))"'
            )
        return
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        draft = path.with_name(f".secret_key.{os.getpid()}")
        draft.write_text(secrets.token_hex(32))
        draft.chmod(0o600)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    app.config["SECRET_KEY"] = path.read_text().strip()
    app.logger.warning(
        "SECRET_KEY is not set: using the development key kept in %s. "
        "Set SECRET_KEY in production.",
        path,
    )


def is_serving():
    """True unless a Flask CLI command other than `run` is building the app."""
    context = click.get_current_context(silent=True)
    return context is None or context.info_name == "run"


def check_deployable(app):
    """Refuse to serve when emailed links would have to trust the Host header."""
    if relaxed(app):
        return
    if is_serving() and public_host(app) is None:
        raise RuntimeError(
            "Set SERVER_NAME (the public host, e.g. microblog.example.com) and "
            "PREFERRED_URL_SCHEME=https, or TRUSTED_HOSTS: links in emails are built "
            "from them, never from the request's Host header. (Debug mode needs neither.)"
        )


def warn_if_plain_http(app):
    """One line at startup: a plain-HTTP deployment works, but its cookies travel in clear."""
    if relaxed(app) or not is_serving():
        return
    if app.config["PREFERRED_URL_SCHEME"] != "https":
        app.logger.warning(
            "Serving over plain HTTP (PREFERRED_URL_SCHEME=%s): session and remember-me "
            "cookies are not Secure and no HSTS is sent. In production, serve over https "
            "and set PREFERRED_URL_SCHEME=https.",
            app.config["PREFERRED_URL_SCHEME"],
        )
