"""All configuration in one place: defaults here, overridden by the environment.

Values come from the process environment (and a `.env` file at the project
root, for convenience in development). `create_app` then reads
`instance/config.py` and any `FLASK_`-prefixed variable on top of them
(unless READ_INSTANCE_CONFIG is false).
"""

import os
from pathlib import Path

from dotenv import load_dotenv

load_dotenv(Path(__file__).resolve().parent.parent / ".env")


def env_bool(name, default=False):
    """Read a yes/no variable the way people write them: 1, true, yes, on."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name, default):
    """Read a whole number; unset or blank means the default."""
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name):
    """Split a comma-separated variable into a list, ignoring blanks."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def database_url(url):
    """Point bare PostgreSQL URLs at psycopg 3, the driver this project installs."""
    for prefix in ("postgres://", "postgresql://"):
        if url and url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Config:
    # instance/config.py and FLASK_<KEY> variables, read on top of these (and of a
    # class or mapping passed to create_app). Tests turn it off to see only their own.
    READ_INSTANCE_CONFIG = True

    # Secrets and hosts. SECRET_KEY unset: create_app keeps a random one in instance/.
    SECRET_KEY = os.environ.get("SECRET_KEY")
    SERVER_NAME = os.environ.get("SERVER_NAME") or None
    PREFERRED_URL_SCHEME = os.environ.get("PREFERRED_URL_SCHEME", "http")
    TRUSTED_HOSTS = env_list("TRUSTED_HOSTS") or None
    # Number of proxies in front of the app whose X-Forwarded-For/-Proto to believe.
    # X-Forwarded-Host is never believed.
    PROXY_COUNT = env_int("PROXY_COUNT", 0)

    # Database. None: a SQLite file in the instance folder.
    SQLALCHEMY_DATABASE_URI = database_url(os.environ.get("DATABASE_URL"))

    # Mail (Flask-Mail reads the MAIL_* keys). No MAIL_SERVER: mail goes to the log.
    MAIL_SERVER = os.environ.get("MAIL_SERVER") or None
    MAIL_PORT = env_int("MAIL_PORT", 25)
    MAIL_USE_TLS = env_bool("MAIL_USE_TLS")
    MAIL_USE_SSL = env_bool("MAIL_USE_SSL")
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
    ADMINS = env_list("ADMINS")
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER") or (
        ADMINS[0] if ADMINS else "no-reply@localhost"
    )
    MAIL_SUPPRESS_SEND = False
    # Envelope sender (MAIL FROM), where bounces go: an address piped to `flask mail bounce`.
    # Unset: the From address. MAIL_VERP: bounces+susan=example.com@... per recipient.
    MAIL_RETURN_PATH = os.environ.get("MAIL_RETURN_PATH") or None
    MAIL_VERP = env_bool("MAIL_VERP")
    # DKIM: all three set, every email is signed with this key (RSA 2048+ or Ed25519, PEM);
    # `flask mail dkim-record` prints the DNS record to publish. Unset: unsigned.
    DKIM_DOMAIN = os.environ.get("DKIM_DOMAIN") or None
    DKIM_SELECTOR = os.environ.get("DKIM_SELECTOR") or None
    DKIM_PRIVATE_KEY_PATH = os.environ.get("DKIM_PRIVATE_KEY_PATH") or None

    # The outbox: worker threads per process, and how hard they try.
    # MAIL_WORKERS threads always run (0: none in this process, see `flask mail worker`);
    # more start while a backlog lasts, up to MAIL_MAX_CONNECTIONS (one SMTP connection each).
    MAIL_WORKERS = env_int("MAIL_WORKERS", 2)
    MAIL_MAX_CONNECTIONS = env_int("MAIL_MAX_CONNECTIONS", 10)
    # The longest a lower connection cap found from the server's refusals (421/451/454) is
    # kept: growth is tried again after MAIL_PROBE_MIN_DELAY, twice as long at each refusal.
    MAIL_THROTTLE_MEMORY = float(os.environ.get("MAIL_THROTTLE_MEMORY", 300))
    # Messages one worker claims (and settles) in one statement; less as a backlog drains.
    MAIL_BATCH_SIZE = env_int("MAIL_BATCH_SIZE", 10)
    # While the server is unavailable: a probe every MIN seconds, doubling to MAX while the
    # server answers with refusals (a port nobody listens on is probed every MIN seconds).
    MAIL_PROBE_MIN_DELAY = float(os.environ.get("MAIL_PROBE_MIN_DELAY", 1))
    MAIL_PROBE_MAX_DELAY = float(os.environ.get("MAIL_PROBE_MAX_DELAY", 30))
    # Seconds for one SMTP exchange. The lease of a claimed message is at least
    # 16 exchanges long, so this also sets how soon a dead worker's message returns.
    MAIL_TIMEOUT = env_int("MAIL_TIMEOUT", 10)
    MAIL_LEASE_SECONDS = env_int("MAIL_LEASE_SECONDS", 120)
    MAIL_POLL_INTERVAL = float(os.environ.get("MAIL_POLL_INTERVAL", 2))
    # Sent and dropped outbox rows are deleted this many seconds after they were queued.
    MAIL_KEEP_SENT = env_int("MAIL_KEEP_SENT", 7 * 24 * 3600)
    # Seconds between two rounds of housekeeping (mail.housekeeping), in one process at a
    # time: old mail, expired throttle rows, known browsers and sessions; 0: none.
    HOUSEKEEPING_INTERVAL = env_int("HOUSEKEEPING_INTERVAL", 3600)
    MAIL_RETRY_BASE_DELAY = float(os.environ.get("MAIL_RETRY_BASE_DELAY", 30))
    MAIL_RETRY_MAX_DELAY = float(os.environ.get("MAIL_RETRY_MAX_DELAY", 3600))
    MAIL_RETRY_DEADLINE = env_int("MAIL_RETRY_DEADLINE", 24 * 3600)
    MAIL_SHUTDOWN_TIMEOUT = float(os.environ.get("MAIL_SHUTDOWN_TIMEOUT", 20))
    # Bearer token for /metrics; unset: /metrics answers 404.
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN") or None

    # Password recovery and password policy.
    RESET_TOKEN_EXPIRES_IN = env_int("RESET_TOKEN_EXPIRES_IN", 600)
    # Emails of each kind one account may be sent per hour: resets, verification links,
    # "someone tried", new sign-in notices, email-change links and notices. The variable
    # had the name RESET_EMAILS_PER_HOUR, which still works (microblog.former_names).
    ACCOUNT_EMAILS_PER_HOUR = env_int(
        "ACCOUNT_EMAILS_PER_HOUR", env_int("RESET_EMAILS_PER_HOUR", 3)
    )
    # Verification and email-change links: 48 hours, time to find the email.
    VERIFY_TOKEN_EXPIRES_IN = env_int("VERIFY_TOKEN_EXPIRES_IN", 172800)
    # Accounts whose address is still unverified after this many days are removed
    # by `flask auth purge-unverified` (run it from cron), freeing name and address.
    UNVERIFIED_ACCOUNT_DAYS = env_int("UNVERIFIED_ACCOUNT_DAYS", 7)
    PASSWORD_MIN_LENGTH = env_int("PASSWORD_MIN_LENGTH", 15)
    # zxcvbn score (0-4) a new password must reach; 3 is about 10^8 guesses (auth.strength).
    PASSWORD_MIN_STRENGTH = env_int("PASSWORD_MIN_STRENGTH", 3)
    PASSWORD_MAX_LENGTH = env_int("PASSWORD_MAX_LENGTH", 256)
    # Argon2id with OWASP's parameters: 19 MiB, 2 passes, 1 lane. Hashes made
    # with other parameters (or werkzeug's scrypt/pbkdf2) are upgraded at the next login.
    PASSWORD_ARGON2_MEMORY_KIB = env_int("PASSWORD_ARGON2_MEMORY_KIB", 19456)
    PASSWORD_ARGON2_TIME_COST = env_int("PASSWORD_ARGON2_TIME_COST", 2)
    PASSWORD_ARGON2_PARALLELISM = env_int("PASSWORD_ARGON2_PARALLELISM", 1)
    # Hashes computed at once per process (0: as many as the cores it may run on);
    # a sign-in waits in line only while its expected wait (queue x measured hash
    # time) fits PASSWORD_HASH_WAIT seconds, else it gets a 503 at once.
    PASSWORD_HASH_CONCURRENCY = env_int("PASSWORD_HASH_CONCURRENCY", 0)
    PASSWORD_HASH_WAIT = float(os.environ.get("PASSWORD_HASH_WAIT", 2))
    # Added to the server's own nice value for the hashing threads (0-5): page
    # views of the same process win a contended core, other processes do not.
    PASSWORD_HASH_NICE = env_int("PASSWORD_HASH_NICE", 2)

    # Per-client-IP limits (Flask-Limiter). The per-account reset limit is separate.
    RATELIMIT_ENABLED = env_bool("RATELIMIT_ENABLED", True)
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_HEADERS_ENABLED = True
    # IPv6 clients are limited per network of this prefix length (a host's usual /64).
    RATELIMIT_IPV6_PREFIX = env_int("RATELIMIT_IPV6_PREFIX", 64)
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "10 per minute;50 per hour")
    RESET_RATE_LIMIT = os.environ.get("RESET_RATE_LIMIT", "5 per minute;20 per hour")
    REGISTER_RATE_LIMIT = os.environ.get("REGISTER_RATE_LIMIT", "5 per minute;30 per hour")
    # Searches (/search pages, each a query of the index) one client may make.
    SEARCH_RATE_LIMIT = os.environ.get("SEARCH_RATE_LIMIT", "30 per minute;600 per hour")

    # Per-account sign-in throttle (auth.throttle), in the database, whatever RATELIMIT_ENABLED:
    # this many failures within the window pause the account's sign-in, for a pause that
    # doubles with each further pause, up to the maximum.
    LOGIN_FAILURES_PER_ACCOUNT = env_int("LOGIN_FAILURES_PER_ACCOUNT", 10)
    LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 15 * 60)
    LOGIN_PAUSE_SECONDS = env_int("LOGIN_PAUSE_SECONDS", 15 * 60)
    LOGIN_PAUSE_MAX_SECONDS = env_int("LOGIN_PAUSE_MAX_SECONDS", 24 * 3600)
    # A browser the account knows (its device cookie) is never paused by others' guesses:
    # it has this budget of failures per LOGIN_FAILURE_WINDOW of its own instead.
    LOGIN_FAILURES_PER_DEVICE = env_int("LOGIN_FAILURES_PER_DEVICE", 5)

    # Server-side sessions (auth.sessions), checked on every request. Remembered sign-ins
    # end after REMEMBER_COOKIE_DURATION seconds; others after SESSION_IDLE_TIMEOUT seconds
    # without a request, and after SESSION_MAX_AGE seconds whatever happens.
    REMEMBER_COOKIE_DURATION = env_int("REMEMBER_COOKIE_DURATION", 30 * 24 * 3600)
    SESSION_IDLE_TIMEOUT = env_int("SESSION_IDLE_TIMEOUT", 12 * 3600)
    SESSION_MAX_AGE = env_int("SESSION_MAX_AGE", 7 * 24 * 3600)
    # Live sessions one account may hold; a sign-in beyond it ends the least recently used.
    MAX_SESSIONS_PER_ACCOUNT = env_int("MAX_SESSIONS_PER_ACCOUNT", 50)
    # Seconds a browser stays known to the accounts that signed in with it (auth.devices):
    # a sign-in from a browser the account does not know emails its owner.
    DEVICE_COOKIE_DURATION = env_int("DEVICE_COOKIE_DURATION", 2 * 365 * 24 * 3600)

    # Pages and sessions.
    POSTS_PER_PAGE = env_int("POSTS_PER_PAGE", 25)
    PEOPLE_PER_PAGE = env_int("PEOPLE_PER_PAGE", 30)  # follower and following lists
    # The longest search query read; longer ones are cut (a query matches on 8 words at most).
    SEARCH_MAX_LENGTH = env_int("SEARCH_MAX_LENGTH", 200)
    # Longest post accepted, in characters; at most 1000 (the column's width).
    POST_MAX_LENGTH = min(env_int("POST_MAX_LENGTH", 280), 1000)
    # How many of a user's latest posts a new follow copies into the follower's timeline.
    TIMELINE_BACKFILL = env_int("TIMELINE_BACKFILL", 1000)
    # Authors with more followers than this are merged into home pages when read,
    # not copied into each follower's timeline when they post (models.TimelineEntry).
    TIMELINE_FANOUT_LIMIT = env_int("TIMELINE_FANOUT_LIMIT", 1000)
    # Timeline rows deleted per statement; more are left to a background job (microblog.jobs).
    TIMELINE_DELETE_BATCH = env_int("TIMELINE_DELETE_BATCH", 1000)
    # Background jobs (microblog.jobs), run beside the mail workers or by `flask jobs run`.
    JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 60)
    JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 8)
    JOB_POLL_INTERVAL = float(os.environ.get("JOB_POLL_INTERVAL", 5))
    LAST_SEEN_INTERVAL = 60  # seconds between two writes of User.last_seen
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    # None: Secure exactly when PREFERRED_URL_SCHEME is https (create_app decides).
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", None)
    REMEMBER_COOKIE_SECURE = env_bool("REMEMBER_COOKIE_SECURE", None)
    BOOTSTRAP_SERVE_LOCAL = True

    # Languages (microblog.i18n): the first is the default. Catalogs in microblog/translations/.
    LANGUAGES = ("en", "ru")
    BABEL_DEFAULT_LOCALE = "en"
    BABEL_DEFAULT_TIMEZONE = "UTC"

    # Request bodies: the largest accepted (413 beyond), the largest form field
    # held in memory, and the most fields or parts one form may have.
    MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 1024 * 1024)
    MAX_FORM_MEMORY_SIZE = env_int("MAX_FORM_MEMORY_SIZE", 64 * 1024)
    MAX_FORM_PARTS = env_int("MAX_FORM_PARTS", 100)

    # Logging: stdout (containers, and always under gunicorn, whose workers
    # would rotate one file each) or a rotating file under instance/logs/.
    LOG_TO_STDOUT = env_bool("LOG_TO_STDOUT")
    # Error reports to ADMINS: one per (route, exception type) per window, the
    # repeats counted into the next one; at most ERROR_REPORTS_PER_HOUR in all.
    ERROR_REPORT_WINDOW = env_int("ERROR_REPORT_WINDOW", 600)
    ERROR_REPORTS_PER_HOUR = env_int("ERROR_REPORTS_PER_HOUR", 20)
