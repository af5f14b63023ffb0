"""Settings for pricetracker: one module, driven by the environment.

Every variable is read through :mod:`pricetracker.env`, which refuses malformed values with a
message naming the variable. The defaults make ``manage.py serve`` work on a laptop (SQLite,
ORM broker, console email, DEBUG on); production sets ``DEBUG=0`` and then must give a
``SECRET_KEY`` and gets the secure settings switched on. The README lists every variable.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import environ
from django.core.exceptions import ImproperlyConfigured

from pricetracker.env import (
    env_bool,
    env_choice,
    env_http_url,
    env_http_url_map,
    env_int,
    env_list,
    env_str,
    mailer_from_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# Runtime files (the SQLite database, the development secret, collected static files).
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", True)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        if not DEBUG and len(key) < 50:
            raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters long when DEBUG is off.")
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. With DEBUG off the app refuses to start without it: "
            "set SECRET_KEY to a long random value, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(64))'`."
        )
    # Development only: a random key kept beside the SQLite file, so sessions and tokens survive
    # restarts without a secret ever being written into the repository.
    path = DATA_DIR / "dev-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "axes",
    "pricetracker",
    "accounts",
    "scraping",
    "fakestore",
    "tracking",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out admin login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "pricetracker.urls"
WSGI_APPLICATION = "pricetracker.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "pricetracker" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------

SQLITE_OPTIONS = {
    # Web and workers write to the same file. Measured (docs/decisions.md, "SQLite: WAL + IMMEDIATE
    # transactions"): WAL + a busy timeout +
    # IMMEDIATE transactions gave zero "database is locked" errors where the defaults gave hundreds.
    # IMMEDIATE takes the write lock at BEGIN, so a transaction never has to upgrade a read lock
    # (the upgrade is what fails instantly, busy timeout or not).
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    "transaction_mode": "IMMEDIATE",
    "timeout": env_int("SQLITE_BUSY_TIMEOUT_SECONDS", 30, minimum=1, maximum=600),
}


# Values of several types, as in Django's own annotation of DATABASES (django-stubs).
def _database() -> dict[str, Any]:
    url = env_str("DATABASE_URL")
    if url is None:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "db.sqlite3"),
            "OPTIONS": dict(SQLITE_OPTIONS),
            # Persistent connections: without them every django-q2 task, and the pusher on every
            # poll, reopens the file and re-runs the PRAGMAs (BENCHMARKS.md: the pusher went from 3.1 to
            # 1.4 ms a scrape).
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60, minimum=0),
            "CONN_HEALTH_CHECKS": True,
            # A file, not :memory:, so subprocess workers in end-to-end tests share it; one per
            # test process so two test runs on one machine never share a database.
            "TEST": {"NAME": str(DATA_DIR / f"test-db-{os.getpid()}.sqlite3")},
        }
    try:
        config = environ.Env.db_url_config(url)
    except Exception as exc:  # django-environ raises several types for a bad URL
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    engine = config.get("ENGINE", "")
    if engine == "django.db.backends.sqlite3":
        config["OPTIONS"] = {**SQLITE_OPTIONS, **config.get("OPTIONS", {})}
        config.setdefault("CONN_MAX_AGE", env_int("DB_CONN_MAX_AGE", 60, minimum=0))
        config["CONN_HEALTH_CHECKS"] = True
    elif "postgresql" in engine:
        config["ENGINE"] = "django.db.backends.postgresql"
        # Persistent connections with health checks; no psycopg pool (django-q2 issue 209).
        config["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60, minimum=0)
        config["CONN_HEALTH_CHECKS"] = True
    else:
        raise ImproperlyConfigured(f"DATABASE_URL engine {engine!r} is not supported: use sqlite:// or postgres://.")
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (shared by all processes: django-q2 cluster stats and DRF throttles need that) ------

_cache_url = env_str("CACHE_URL")
if _cache_url:
    try:
        CACHES = {"default": environ.Env.cache_url_config(_cache_url)}
    except Exception as exc:
        raise ImproperlyConfigured(f"CACHE_URL is not a valid cache URL: {exc}") from None
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "cache_table",
        }
    }

# --- Auth ---------------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT_SECONDS", 3600, minimum=60)
ACCOUNTS_REQUIRE_EMAIL_VERIFICATION = env_bool("ACCOUNTS_REQUIRE_EMAIL_VERIFICATION", True)
EMAIL_CONFIRMATION_TIMEOUT = env_int("EMAIL_CONFIRMATION_TIMEOUT_SECONDS", 3 * 24 * 3600, minimum=60)


def _mail_limits(name: str, default: str) -> list[tuple[int, int]]:
    """``"3/hour,5/day"`` -> ``[(3, 3600), (5, 86400)]``: at most that many per fixed window."""
    periods = {"hour": 3600, "day": 86400}
    limits = []
    for item in env_list(name, default.split(",")):
        count, _, period = item.partition("/")
        if not count.isdigit() or int(count) < 1 or period not in periods:
            raise ImproperlyConfigured(f"{name}: {item!r} is not a limit such as '3/hour' or '5/day'.")
        limits.append((int(count), periods[period]))
    return limits


# Anyone can type a stranger's address (issue 11): confirmation links per target address however
# many accounts ask, password resets per address (silently: the answer must not tell), and
# notification address changes per account. Beyond them: 429 with the wait (accounts.services).
ACCOUNTS_CONFIRMATION_EMAIL_LIMITS = _mail_limits("THROTTLE_CONFIRMATION_EMAIL", "3/hour,5/day")
ACCOUNTS_PASSWORD_RESET_EMAIL_LIMITS = _mail_limits("THROTTLE_PASSWORD_RESET_EMAIL", "3/hour,10/day")
ACCOUNTS_EMAIL_CHANGE_LIMITS = _mail_limits("THROTTLE_EMAIL_CHANGE", "5/hour,20/day")

# The admin login is locked per username + client address after repeated wrong passwords
# (django-axes; the API's token endpoint has its own throttle and is never locked by axes).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before any password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ONLY_ADMIN_SITE = True
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=100)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ADMIN_LOGIN_COOLOFF_MINUTES", 15, minimum=1, maximum=24 * 60))
AXES_COOLOFF_MESSAGE = (
    "Too many failed sign-ins for this account from your address. "
    f"Try again in {int(AXES_COOLOFF_TIME.total_seconds() // 60)} minutes."
)
AXES_RESET_ON_SUCCESS = True
# The admin form sends "username", the API "email"; both lower-cased, so case changes count together.
AXES_USERNAME_CALLABLE = "accounts.lockout.login_username"
# The same client address as the DRF throttles (NUM_PROXIES), not a forgeable X-Forwarded-For.
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.client_ip"
# Quiet start-up; failures and lockouts are still logged (username and address masked by axes).
AXES_VERBOSE = False
# Where links in emails point (confirmation, password reset, product pages of the API).
SITE_URL = env_http_url("SITE_URL", "http://127.0.0.1:8000")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Admin pages show times to the second with their time zone ("2026-03-02 10:15:42 UTC"): telling
# runs and workers apart needs more than Django's "March 2, 2026, 10:15 a.m." (pricetracker/formats).
FORMAT_MODULE_PATH = ["pricetracker.formats"]

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
# WhiteNoise warns at start-up when the folder is missing (before the first collectstatic).
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# In development WhiteNoise serves straight from the apps, so no collectstatic is needed.
WHITENOISE_USE_FINDERS = DEBUG

# Requests bodies are small JSON documents; refuse anything larger early.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 256 * 1024, minimum=1024)

# --- Security (on by default when DEBUG is off; each relaxable for a TLS-terminating proxy) ---

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    # Only behind a proxy that sets this header itself and strips it from clients.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Health and metrics probes come over plain HTTP from inside the host.
SECURE_REDIRECT_EXEMPT = [r"^api/health/$", r"^metrics$"]
X_FRAME_OPTIONS = "DENY"

# --- Email (Django 6.1 MAILERS; docs/decisions.md, "Django 6.1 MAILERS vs EMAIL_URL") --------

# Console in development; in production the default is a local MTA on port 25, so that
# `check --deploy` is clean and nothing is silently dropped.
EMAIL_URL = env_str("EMAIL_URL", "consolemail://" if DEBUG else "smtp://localhost:25")
MAILERS = {"default": mailer_from_url(EMAIL_URL)}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "pricetracker <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- REST framework, JWT, OpenAPI ----------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
    # DRF's defaults are AllowAny and no pagination; both are wrong for this API.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "pricetracker.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_PARSER_CLASSES": ["pricetracker.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "pricetracker.schema.AutoSchema",
    "EXCEPTION_HANDLER": "pricetracker.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "register": env_str("THROTTLE_REGISTER", "10/hour"),
        "token": env_str("THROTTLE_TOKEN", "20/min"),
        "password_reset": env_str("THROTTLE_PASSWORD_RESET", "5/hour"),
        "password_change": env_str("THROTTLE_PASSWORD_CHANGE", "10/hour"),
        "email_confirm": env_str("THROTTLE_EMAIL_CONFIRM", "30/hour"),
        "test_email": env_str("THROTTLE_TEST_EMAIL", "5/hour"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Throttles identify clients by address. DRF's default (None) takes a client-sent
    # X-Forwarded-For as the address, so a forged header per request escaped every throttle.
    # 0: REMOTE_ADDR; behind N reverse proxies that append to X-Forwarded-For, set N.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0, minimum=0, maximum=10),
}


def _jwt_signing_key() -> str:
    key = env_str("JWT_SIGNING_KEY")
    if key:
        if len(key.encode()) < 32:
            raise ImproperlyConfigured("JWT_SIGNING_KEY must be at least 32 bytes.")
        return key
    # Separate from SECRET_KEY (docs/decisions.md, "simplejwt: signing key") but derived from it, so
    # one secret suffices.
    return hashlib.sha256(b"pricetracker.jwt:" + SECRET_KEY.encode()).hexdigest()


SIMPLE_JWT = {
    # Access tokens stay valid after logout until they expire: keep them short.
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 10, minimum=1, maximum=1440)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 14, minimum=1, maximum=365)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": _jwt_signing_key(),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "TOKEN_REFRESH_SERIALIZER": "accounts.serializers.AtomicTokenRefreshSerializer",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "pricetracker API",
    "DESCRIPTION": "Track Amazon prices on every marketplace, keep the history, get alerts when your rules fire.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI assets from the sidecar package: the docs work offline, no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Scraping defaults (seed the DB-held store policy and user limits on first use) --------

AMAZON_BASE_URL = env_http_url("AMAZON_BASE_URL", "https://www.amazon.com")
# Per marketplace, the same as AMAZON_BASE_URL ("amazon.de=http://127.0.0.1:9001/amazon.de,..."):
# tests and the demo point marketplaces at a fake store. A Store row's base URL (admin) wins.
STORE_BASE_URLS = env_http_url_map("STORE_BASE_URLS")
# Short links (a.co, amzn.to, ...) are resolved when a tracker is created: at most 5 hops, each
# checked against the Amazon hosts before it is requested, within this total deadline.
SHORT_LINK_TIMEOUT_SECONDS = env_int("SHORT_LINK_TIMEOUT_SECONDS", 5, minimum=1, maximum=30)
# How long a resolved short link is remembered (the shared cache).
SHORT_LINK_CACHE_SECONDS = env_int("SHORT_LINK_CACHE_SECONDS", 7 * 24 * 3600, minimum=0)
# Tests only: "a.co=http://127.0.0.1:9002,..." sends requests for these hosts to a local server,
# while every hop is still checked against the real Amazon host names.
SHORT_LINK_BASE_URLS = env_http_url_map("SHORT_LINK_BASE_URLS")
SCRAPE_PROXY_URL = env_str("SCRAPE_PROXY_URL")
SCRAPE_MIN_INTERVAL_MINUTES = env_int("SCRAPE_MIN_INTERVAL_MINUTES", 60, minimum=1)
SCRAPE_DEFAULT_INTERVAL_MINUTES = env_int("SCRAPE_DEFAULT_INTERVAL_MINUTES", 360, minimum=1)
SCRAPE_RATE_PER_MINUTE = env_int("SCRAPE_RATE_PER_MINUTE", 20, minimum=1)
SCRAPE_CONNECT_TIMEOUT_SECONDS = env_int("SCRAPE_CONNECT_TIMEOUT_SECONDS", 10, minimum=1, maximum=120)
SCRAPE_READ_TIMEOUT_SECONDS = env_int("SCRAPE_READ_TIMEOUT_SECONDS", 20, minimum=1, maximum=300)
# Wall-clock cap on one fetch (headers + body), so a slow-drip server cannot hold a worker;
# must stay below Q_TIMEOUT.
# (default: 40 s, or less when Q_TIMEOUT is short; checked against Q_TIMEOUT below)
_scrape_total_timeout = env_int("SCRAPE_TOTAL_TIMEOUT_SECONDS", 0, minimum=0, maximum=600)
SCRAPE_MAX_BYTES = env_int("SCRAPE_MAX_BYTES", 8 * 1024 * 1024, minimum=64 * 1024)
USER_MAX_TRACKERS = env_int("USER_MAX_TRACKERS", 100, minimum=0)
USER_MANUAL_SCRAPES_PER_HOUR = env_int("USER_MANUAL_SCRAPES_PER_HOUR", 10, minimum=0)
USER_MAX_RULES_PER_TRACKER = env_int("USER_MAX_RULES_PER_TRACKER", 10, minimum=0)

# --- django-q2 (configured on purpose; docs/decisions.md, "django-q2: ...", and the README) ---

Q_WORKERS = env_int("Q_WORKERS", 4, minimum=1, maximum=64)
Q_TIMEOUT = env_int("Q_TIMEOUT", 90, minimum=10)
# A fetch must end well before django-q2 kills the task, or the run would be lost every time.
if _scrape_total_timeout and _scrape_total_timeout > Q_TIMEOUT - 2:
    raise ImproperlyConfigured(
        f"SCRAPE_TOTAL_TIMEOUT_SECONDS={_scrape_total_timeout} must be at least 2 s below Q_TIMEOUT={Q_TIMEOUT}."
    )
SCRAPE_TOTAL_TIMEOUT_SECONDS = _scrape_total_timeout or max(3, min(40, Q_TIMEOUT // 2))
Q_REDIS_URL = env_str("Q_REDIS_URL")


class QClusterConfig(TypedDict):
    """The django-q2 options set below, typed so that code reading ``settings.Q_CLUSTER["timeout"]``
    gets an int rather than an object."""

    name: str
    workers: int
    timeout: int
    retry: int
    queue_limit: int
    max_attempts: int
    ack_failures: bool
    catch_up: bool
    save_limit: int
    save_limit_per: str
    recycle: int
    max_rss: int
    label: str
    cpu_affinity: int
    scheduler: bool
    sync: bool
    poll: float
    redis: NotRequired[str]  # the broker: Redis when Q_REDIS_URL is set,
    orm: NotRequired[str]  # else the database


Q_CLUSTER: QClusterConfig = {
    "name": env_str("Q_CLUSTER_NAME", "pricetracker"),
    "workers": Q_WORKERS,
    # A task running longer than this is killed. A scrape takes at most its wait for a request slot
    # (tracking.services.scrape.max_slot_wait) plus SCRAPE_TOTAL_TIMEOUT_SECONDS for the fetch.
    "timeout": Q_TIMEOUT,
    # ORM broker: a task not acknowledged within `retry` seconds is delivered again. Kept above
    # 3 x timeout so a slow task is never handed to a second worker while it still runs.
    "retry": Q_TIMEOUT * 3 + 30,
    # Prefetching more than one task per worker caused double delivery (docs/decisions.md,
    # "django-q2: ORM broker is at-least-once").
    "queue_limit": Q_WORKERS,
    # Bounded retries; expected scrape failures are recorded as runs and return normally.
    "max_attempts": 3,
    "ack_failures": True,
    # A one-minute dispatcher must not replay every missed minute after downtime.
    "catch_up": False,
    # Successful results kept per task function (scrapes are not saved at all: see enqueue_scrape);
    # pruning per function keeps the dispatcher's last run, which the health check reads.
    "save_limit": env_int("Q_SAVE_LIMIT", 250, minimum=0),
    "save_limit_per": "func",
    "recycle": 500,
    "max_rss": env_int("Q_MAX_RSS_KB", 400_000, minimum=50_000),
    "label": "Task queue",
    "cpu_affinity": 0,
    "scheduler": env_bool("Q_SCHEDULER", True),
    "sync": env_bool("Q_SYNC", False),
    "poll": 0.5,
}
if Q_REDIS_URL:
    if not Q_REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured("Q_REDIS_URL must start with redis://, rediss:// or unix://.")
    Q_CLUSTER["redis"] = Q_REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Logging (plain or JSON lines; never secrets) -----------------------------------------

LOG_FORMAT = env_choice("LOG_FORMAT", "plain", {"plain", "json"})
LOG_LEVEL = env_choice("LOG_LEVEL", "info", {"debug", "info", "warning", "error"}).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "pricetracker.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
        "django-q": {"level": "WARNING"},
    },
}

# --- Operations: health and metrics (pricetracker/health.py, pricetracker/metrics.py) ------

# Without a django-q2 cluster heartbeat (or a finished dispatcher run) for this long, /api/health/
# answers 503 when the cluster is required; only "degraded" otherwise (a laptop running just web).
HEALTH_REQUIRE_CLUSTER = env_bool("HEALTH_REQUIRE_CLUSTER", not DEBUG)
HEALTH_CLUSTER_MAX_SILENCE_MINUTES = env_int("HEALTH_CLUSTER_MAX_SILENCE_MINUTES", 5, minimum=1, maximum=1440)
# A store (with enabled trackers) is "degraded" when at least HEALTH_STORE_MIN_RUNS scrapes finished
# in the last hour and HEALTH_STORE_MAX_FAILURE_PERCENT or more of them failed (FAILED or BLOCKED),
# or when every attempt has failed for HEALTH_STORE_MAX_FAILING_MINUTES (at most 12 h: runs are
# read back 24 h).
HEALTH_STORE_MIN_RUNS = env_int("HEALTH_STORE_MIN_RUNS", 10, minimum=1)
HEALTH_STORE_MAX_FAILURE_PERCENT = env_int("HEALTH_STORE_MAX_FAILURE_PERCENT", 50, minimum=1, maximum=100)
HEALTH_STORE_MAX_FAILING_MINUTES = env_int("HEALTH_STORE_MAX_FAILING_MINUTES", 60, minimum=1, maximum=720)
# /metrics answers a bearer token (constant-time compare) or a client in these networks.
METRICS_TOKEN = env_str("METRICS_TOKEN")
if METRICS_TOKEN is not None and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters long.")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.1/32", "::1/128"])
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_network!r} is not an IP network.") from None
# Outermost, so the latency histogram covers the whole middleware stack.
MIDDLEWARE.insert(0, "pricetracker.metrics.RequestLatencyMiddleware")
