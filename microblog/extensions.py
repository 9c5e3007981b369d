"""Extension objects, created unbound so that every app from create_app gets its own state."""

import ipaddress
import sqlite3

from flask import current_app, request
from flask_babel import Babel
from flask_babel import lazy_gettext as _l
from flask_bootstrap import Bootstrap5
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login = LoginManager()
login.login_view = "auth.login"
login.login_message = _l("Please log in to access this page.")
mail = Mail()
csrf = CSRFProtect()


def client_network():
    """The per-IP limits' key: an IPv4 address, or the IPv6 network it belongs to.

    One IPv6 host is commonly given a whole /64 (RATELIMIT_IPV6_PREFIX): keyed
    per address, it would be 2^64 clients, each with a fresh allowance.
    `remote_addr` is the peer's, or X-Forwarded-For's only through ProxyFix
    (PROXY_COUNT).
    """
    address = request.remote_addr or ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:  # ::ffff:198.51.100.7 is that IPv4 client
            return str(ip.ipv4_mapped)
        prefix = current_app.config["RATELIMIT_IPV6_PREFIX"]
        host_bits = 128 - prefix
        return str(ipaddress.IPv6Network((int(ip) >> host_bits << host_bits, prefix)))
    return str(ip)


limiter = Limiter(key_func=client_network)
bootstrap = Bootstrap5()
babel = Babel()


# Endpoints whose reads are limited too (read_limit): each costs a database search.
LIMITED_READS = set()


@limiter.request_filter
def reads_are_not_limited():
    """Per-IP limits guard form POSTs and a few costly reads: other reads skip the
    limiter's bookkeeping.

    It was a tenth of the sign-in page's time, spent deciding that no limit applies.
    """
    return request.method in ("GET", "HEAD", "OPTIONS") and request.endpoint not in LIMITED_READS


def post_limit(setting):
    """A per-IP limit on a view's form POSTs, read from the configuration at request time.

    Reads skip it, with every other limit (`reads_are_not_limited`).
    """
    return limiter.limit(lambda: current_app.config[setting], methods=["POST"])


def read_limit(endpoint, setting):
    """A per-IP limit on every request to a view, reads included, from the configuration."""
    LIMITED_READS.add(endpoint)
    return limiter.limit(lambda: current_app.config[setting])


@event.listens_for(Engine, "connect")
def _tune_sqlite(dbapi_connection, _record):
    """WAL lets the mail workers and gunicorn workers read while one writes."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
