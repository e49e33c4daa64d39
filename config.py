"""Configuration: the defaults of each profile and the environment variables over them.

GRIDGOV_ENV picks the profile: development (default), test or production. `load_config()`
reads the environment when the app is built (never on import), so a value that cannot be
parsed fails `create_app` with its variable named; gridgov/settings.py then checks every
value and builds the one Settings object the app reads. The defaults live here and nowhere else.
"""

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent


class ConfigError(RuntimeError):
    """A setting that cannot be used; the message names its variable."""


def normalize_database_url(url: str) -> str:
    """Normalise a postgres:// or postgresql:// URL to SQLAlchemy's postgresql+psycopg://."""
    return re.sub(
        r"^(postgres|postgresql)://", "postgresql+psycopg://", url.strip(), count=1, flags=re.I
    )


class Config:
    ENV_NAME = "development"
    SECRET_KEY = "dev-only-secret-change-me-not-for-production!"
    # None: wsgi.py starts the private cluster (gridgov_tools/embedded_pg.py) and names it.
    SQLALCHEMY_DATABASE_URI = None
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5}
    INSTANCE_DIR = PROJECT_ROOT / "instance"
    EMBEDDED_DB_NAME = "gridgov"
    MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
    # The ceiling over the per-endpoint limits (JSON 1 MiB, photos, change sets 64 MiB).
    MAX_CONTENT_LENGTH = 64 * 1024 * 1024
    # Body limits (gridgov/api/http_policy.py): ordinary requests, boundary change sets.
    MAX_JSON_BYTES = 1024 * 1024
    MAX_CHANGESET_BYTES = 64 * 1024 * 1024
    # Reverse proxies in front of the app that add X-Forwarded-For/-Proto/-Host/-Port: the
    # client's address is read that many hops back (rate limits, logs, audit). 0 trusts none:
    # without a proxy, a forged X-Forwarded-For must not pick the address a limit counts.
    PROXY_HOPS = 0
    # Browser origins allowed to call the API, comma separated; empty: none ('*' is refused).
    CORS_ORIGINS = ""
    # Log level; the format (GRIDGOV_LOG_FORMAT) is read by gridgov/logging_setup.py, since
    # gunicorn's master needs it before any app exists.
    LOG_LEVEL = "INFO"

    # Photos: the largest upload accepted, and where files are stored (by content hash).
    PHOTO_MAX_BYTES = 8 * 1024 * 1024
    UPLOAD_DIR = None  # None: INSTANCE_DIR / "uploads"

    # Tokens (flask-jwt-extended): short-lived access tokens, longer refresh tokens.
    ACCESS_TOKEN_MINUTES = 15
    REFRESH_TOKEN_DAYS = 14
    # A refresh token sent again this soon after its rotation, whose successor is still unused,
    # is a phone retrying after a lost answer, not a stolen copy (gridgov/services/tokens.py).
    REFRESH_RETRY_SECONDS = 60
    # How long a worker reuses a user's active flag and token generation: a revoked access
    # token (logout, new password or role, deactivation) is refused everywhere within this.
    TOKEN_CHECK_CACHE_SECONDS = 5.0

    # Login rate limits (flask-limiter syntax). With the default memory:// store each gunicorn
    # worker counts on its own (the effective limit is workers × the limit); set
    # GRIDGOV_RATELIMIT_STORAGE_URI=redis://host:6379 to share the counts between processes.
    RATELIMIT_STORAGE_URI = "memory://"
    # Off: Retry-After is added to 429 answers only (gridgov/api/errors.py).
    RATELIMIT_HEADERS_ENABLED = False
    LOGIN_RATE_LIMIT_PER_IP = "20/minute"
    LOGIN_RATE_LIMIT_PER_USERNAME = "10/minute"
    # Open311's public reads (no token) per client address.
    OPEN311_READ_RATE_LIMIT = "120/minute"
    # What Open311's discovery document says about whom to ask and how keys are issued.
    OPEN311_CONTACT = "区社会治理中心 (the district's social governance centre)"
    OPEN311_KEY_SERVICE = (
        "api_keys are issued by the operator of this service"
        " (`flask open311 add-client NAME`); reading needs no key."
    )

    # OpenAPI document and docs page (assets served by the app, see gridgov/api/docs.py).
    API_TITLE = "gridgov"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "docs"
    OPENAPI_SWAGGER_UI_URL = "/api/v1/docs/assets/"
    API_SPEC_OPTIONS = {
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearerAuth": []}],
    }

    # Routing: a point outside every micro-grid goes to the nearest one within this distance.
    ROUTING_NEAREST_MAX_M = 200.0

    # Possible duplicates suggested on submission: same category, this close, this recent.
    DUPLICATE_RADIUS_M = 100.0
    DUPLICATE_WINDOW_HOURS = 72.0

    # Patrols: how far in the past a patrol, its track points and its end may be dated when
    # they reach the server; indicators count only what arrived within this (services/stats.py).
    PATROL_MAX_BACKDATE_HOURS = 24.0

    # Working calendar for time limits: working hours, and the local override of the holidays
    # and adjusted working days the chinesecalendar package has (gridgov/services/calendar.py).
    WORK_CALENDAR_FILE = PROJECT_ROOT / "gridgov" / "data" / "work_calendar.json"
    # /readyz and the escalation job warn this many days before a year the calendar lacks.
    CALENDAR_WARN_DAYS = 60
    # The day coverage is checked for (a datetime.date; tests pin it). None: today, China time.
    CALENDAR_TODAY = None

    # Boundary change sets: snapping and tolerances of the topology checks, in metres.
    BOUNDARY_SNAP_M = 0.05
    BOUNDARY_OVERLAP_M2 = 1.0
    BOUNDARY_GAP_M2 = 1.0
    BOUNDARY_PARENT_M = 1.0
    BOUNDARY_MAX_VERTICES = 20_000
    # How long intake waits for a boundary change holding the map before answering 503
    # map_busy (with Retry-After) rather than tying up the worker.
    MAP_LOCK_WAIT_MS = 3000

    # Paging of list endpoints.
    PAGE_SIZE_DEFAULT = 50
    PAGE_SIZE_MAX = 500

    # Notifications (`flask notifications deliver`, gridgov/services/delivery.py): URL prefixes
    # a device may point at (comma separated; empty: none is accepted), since the
    # deliverer posts wherever a device says; how long a claimed delivery is held before
    # another deliverer may retry it; the HTTP timeout; the retry backoff (doubling from the
    # base up to the maximum) and the attempts before a delivery is given up; the idle poll.
    PUSH_GATEWAYS = ""
    # Web Push (VAPID, RFC 8292): the application server's private key (base64url, raw or DER,
    # e.g. from `vapid --gen`) and the contact it signs with (mailto: or https:). Without a
    # key, webpush devices are refused.
    VAPID_PRIVATE_KEY = ""
    VAPID_SUBJECT = ""
    DELIVERY_LEASE_SECONDS = 60
    DELIVERY_TIMEOUT_SECONDS = 10.0
    DELIVERY_BACKOFF_SECONDS = 10.0
    DELIVERY_BACKOFF_MAX_SECONDS = 3600.0
    DELIVERY_MAX_ATTEMPTS = 20
    DELIVERY_POLL_SECONDS = 2.0

    # Supervisor map (/map): an optional MapLibre basemap style URL; empty means a plain
    # background. Its origin is added to the page's Content-Security-Policy.
    MAP_BASEMAP_STYLE_URL = ""


class DevelopmentConfig(Config):
    # A push gateway adapter on the developer's machine.
    PUSH_GATEWAYS = "http://127.0.0.1:,http://localhost:"


class TestConfig(Config):
    ENV_NAME = "test"
    TESTING = True
    # Tests log in and read Open311 many times from one address; rate-limit tests lower these.
    LOGIN_RATE_LIMIT_PER_IP = "100000/minute"
    LOGIN_RATE_LIMIT_PER_USERNAME = "100000/minute"
    OPEN311_READ_RATE_LIMIT = "100000/minute"
    # Revocations are asserted right after they happen; the cache has a test of its own.
    TOKEN_CHECK_CACHE_SECONDS = 0.0
    SECRET_KEY = "test-secret-key-of-at-least-32-bytes!!"
    # The tests' push receivers listen on the loopback.
    PUSH_GATEWAYS = "http://127.0.0.1:"


class ProductionConfig(Config):
    ENV_NAME = "production"
    SECRET_KEY = None


PROFILES = {"development": DevelopmentConfig, "test": TestConfig, "production": ProductionConfig}

# The environment variable over each setting, and how its text is read. An empty variable
# counts as unset. Settings not listed here are fixed per profile.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "SECRET_KEY": ("SECRET_KEY", str),
    "SQLALCHEMY_DATABASE_URI": ("DATABASE_URL", normalize_database_url),
    "INSTANCE_DIR": ("GRIDGOV_INSTANCE_DIR", Path),
    "EMBEDDED_DB_NAME": ("GRIDGOV_EMBEDDED_DB", str),
    "MAX_CONTENT_LENGTH": ("GRIDGOV_MAX_CONTENT_LENGTH", int),
    "MAX_JSON_BYTES": ("GRIDGOV_MAX_JSON_BYTES", int),
    "MAX_CHANGESET_BYTES": ("GRIDGOV_MAX_CHANGESET_BYTES", int),
    "PROXY_HOPS": ("GRIDGOV_PROXY_HOPS", int),
    "CORS_ORIGINS": ("GRIDGOV_CORS_ORIGINS", str),
    "LOG_LEVEL": ("GRIDGOV_LOG_LEVEL", str.upper),
    "PHOTO_MAX_BYTES": ("GRIDGOV_PHOTO_MAX_BYTES", int),
    "UPLOAD_DIR": ("GRIDGOV_UPLOAD_DIR", Path),
    "ACCESS_TOKEN_MINUTES": ("GRIDGOV_ACCESS_TOKEN_MINUTES", int),
    "REFRESH_TOKEN_DAYS": ("GRIDGOV_REFRESH_TOKEN_DAYS", int),
    "REFRESH_RETRY_SECONDS": ("GRIDGOV_REFRESH_RETRY_SECONDS", int),
    "TOKEN_CHECK_CACHE_SECONDS": ("GRIDGOV_TOKEN_CHECK_CACHE_SECONDS", float),
    "RATELIMIT_STORAGE_URI": ("GRIDGOV_RATELIMIT_STORAGE_URI", str),
    "LOGIN_RATE_LIMIT_PER_IP": ("GRIDGOV_LOGIN_RATE_LIMIT_PER_IP", str),
    "LOGIN_RATE_LIMIT_PER_USERNAME": ("GRIDGOV_LOGIN_RATE_LIMIT_PER_USERNAME", str),
    "OPEN311_READ_RATE_LIMIT": ("GRIDGOV_OPEN311_READ_RATE_LIMIT", str),
    "ROUTING_NEAREST_MAX_M": ("GRIDGOV_ROUTING_NEAREST_MAX_M", float),
    "DUPLICATE_RADIUS_M": ("GRIDGOV_DUPLICATE_RADIUS_M", float),
    "DUPLICATE_WINDOW_HOURS": ("GRIDGOV_DUPLICATE_WINDOW_HOURS", float),
    "PATROL_MAX_BACKDATE_HOURS": ("GRIDGOV_PATROL_MAX_BACKDATE_HOURS", float),
    "WORK_CALENDAR_FILE": ("GRIDGOV_WORK_CALENDAR", Path),
    "CALENDAR_WARN_DAYS": ("GRIDGOV_CALENDAR_WARN_DAYS", int),
    "BOUNDARY_SNAP_M": ("GRIDGOV_BOUNDARY_SNAP_M", float),
    "BOUNDARY_OVERLAP_M2": ("GRIDGOV_BOUNDARY_OVERLAP_M2", float),
    "BOUNDARY_GAP_M2": ("GRIDGOV_BOUNDARY_GAP_M2", float),
    "BOUNDARY_PARENT_M": ("GRIDGOV_BOUNDARY_PARENT_M", float),
    "BOUNDARY_MAX_VERTICES": ("GRIDGOV_BOUNDARY_MAX_VERTICES", int),
    "MAP_LOCK_WAIT_MS": ("GRIDGOV_MAP_LOCK_WAIT_MS", int),
    "PAGE_SIZE_DEFAULT": ("GRIDGOV_PAGE_SIZE_DEFAULT", int),
    "PAGE_SIZE_MAX": ("GRIDGOV_PAGE_SIZE_MAX", int),
    "MAP_BASEMAP_STYLE_URL": ("MAP_BASEMAP_STYLE_URL", str),
    "PUSH_GATEWAYS": ("GRIDGOV_PUSH_GATEWAYS", str),
    "VAPID_PRIVATE_KEY": ("GRIDGOV_VAPID_PRIVATE_KEY", str),
    "VAPID_SUBJECT": ("GRIDGOV_VAPID_SUBJECT", str),
    "DELIVERY_LEASE_SECONDS": ("GRIDGOV_DELIVERY_LEASE_SECONDS", int),
    "DELIVERY_TIMEOUT_SECONDS": ("GRIDGOV_DELIVERY_TIMEOUT_SECONDS", float),
    "DELIVERY_BACKOFF_SECONDS": ("GRIDGOV_DELIVERY_BACKOFF_SECONDS", float),
    "DELIVERY_BACKOFF_MAX_SECONDS": ("GRIDGOV_DELIVERY_BACKOFF_MAX_SECONDS", float),
    "DELIVERY_MAX_ATTEMPTS": ("GRIDGOV_DELIVERY_MAX_ATTEMPTS", int),
    "DELIVERY_POLL_SECONDS": ("GRIDGOV_DELIVERY_POLL_SECONDS", float),
}
_KINDS = {int: "an integer", float: "a number"}


def variable(key: str) -> str:
    """The name to show for config key `key`: its environment variable, else the key."""
    return ENVIRONMENT[key][0] if key in ENVIRONMENT else key


def profile_values(profile: type[Config]) -> dict[str, Any]:
    """A profile's settings as a dict (upper-case attributes, inherited ones included)."""
    return {name: getattr(profile, name) for name in dir(profile) if name.isupper()}


def load_config(name: str | None = None, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The settings of GRIDGOV_ENV's profile (or `name`) with the environment over them."""
    name = name or environ.get("GRIDGOV_ENV") or "development"
    if name not in PROFILES:
        raise ConfigError(f"GRIDGOV_ENV must be one of {sorted(PROFILES)}, not {name!r}")
    profile = PROFILES[name]
    values = profile_values(profile)
    # What the test profile sets itself, the environment does not change: tests assert on it
    # (a shell's SECRET_KEY or rate limits must not leak into the suite or its servers).
    pinned = vars(TestConfig) if profile is TestConfig else {}
    for key, (var, parse) in ENVIRONMENT.items():
        raw = environ.get(var, "")
        if not raw or key in pinned:
            continue
        try:
            values[key] = parse(raw)
        except ValueError:
            raise ConfigError(f"{var} must be {_KINDS.get(parse, 'valid')}, not {raw!r}") from None
    if name == "production":
        missing = [variable(k) for k in ("SECRET_KEY", "SQLALCHEMY_DATABASE_URI") if not values[k]]
        if missing:
            raise ConfigError(f"production needs {', '.join(missing)} in the environment")
    return values
