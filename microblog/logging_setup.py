"""Where log lines go: stdout, or a rotating file under instance/logs/."""

import logging
import os
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

from flask.logging import default_handler


def under_gunicorn():
    """gunicorn's arbiter names itself in the environment its workers inherit."""
    return os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn")


def configure_logging(app):
    """INFO and up: to stdout, or a rotating file under instance/logs/ for a single process.

    Under gunicorn always stdout: each worker would rotate a shared file on
    its own (one goes on writing into the renamed file), while lines written
    to the inherited stdout arrive whole, in one stream the process manager keeps.
    """
    app.logger.setLevel(logging.INFO)
    for handler in list(app.logger.handlers):
        if getattr(handler, "microblog", False):  # left by an earlier app in this process
            app.logger.removeHandler(handler)
            handler.close()
    if app.debug or app.testing:
        return  # Flask's default handler prints to stderr
    if app.config["LOG_TO_STDOUT"] or under_gunicorn():
        handler = logging.StreamHandler(sys.stdout)
    else:
        logs = Path(app.instance_path) / "logs"
        logs.mkdir(exist_ok=True)
        handler = RotatingFileHandler(logs / "microblog.log", maxBytes=1_000_000, backupCount=10)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.microblog = True
    app.logger.removeHandler(default_handler)
    app.logger.addHandler(handler)
