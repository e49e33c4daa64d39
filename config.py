"""Configuration read from the environment.

GRIDGOV_ENV picks the profile: development (default), test or production. Every setting can be
overridden by an environment variable of the same name.
"""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


class Config:
    ENV_NAME = "development"
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-secret-change-me-not-for-production!")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL")
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5}
    INSTANCE_DIR = Path(os.environ.get("GRIDGOV_INSTANCE_DIR", PROJECT_ROOT / "instance"))
    EMBEDDED_DB_NAME = os.environ.get("GRIDGOV_EMBEDDED_DB", "gridgov")
    MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
    # The ceiling over the per-endpoint limits (JSON 1 MiB, photos, change sets 64 MiB).
    MAX_CONTENT_LENGTH = _env_int("GRIDGOV_MAX_CONTENT_LENGTH", 64 * 1024 * 1024)
    # Body limits (gridgov/api/http_policy.py): ordinary requests, boundary change sets.
    MAX_JSON_BYTES = _env_int("GRIDGOV_MAX_JSON_BYTES", 1024 * 1024)
    MAX_CHANGESET_BYTES = _env_int("GRIDGOV_MAX_CHANGESET_BYTES", 64 * 1024 * 1024)
    # Reverse proxies in front of the app that add X-Forwarded-For/-Proto/-Host/-Port: the
    # client's address is read that many hops back (rate limits, logs, audit). 0 trusts none:
    # without a proxy, a forged X-Forwarded-For must not pick the address a limit counts.
    PROXY_HOPS = _env_int("GRIDGOV_PROXY_HOPS", 0)
    # Browser origins allowed to call the API, comma separated; empty: none ('*' is refused).
    CORS_ORIGINS = os.environ.get("GRIDGOV_CORS_ORIGINS", "")
    # Log level; the format (GRIDGOV_LOG_FORMAT) is read by gridgov/logging_setup.py, since
    # gunicorn's master needs it before any app exists.
    LOG_LEVEL = os.environ.get("GRIDGOV_LOG_LEVEL", "INFO").upper()

    # Photos: the largest upload accepted, and where files are stored (by content hash).
    PHOTO_MAX_BYTES = _env_int("GRIDGOV_PHOTO_MAX_BYTES", 8 * 1024 * 1024)
    UPLOAD_DIR = Path(os.environ.get("GRIDGOV_UPLOAD_DIR", INSTANCE_DIR / "uploads"))

    # Tokens (flask-jwt-extended): short-lived access tokens, longer refresh tokens.
    ACCESS_TOKEN_MINUTES = _env_int("GRIDGOV_ACCESS_TOKEN_MINUTES", 15)
    REFRESH_TOKEN_DAYS = _env_int("GRIDGOV_REFRESH_TOKEN_DAYS", 14)
    # A refresh token sent again this soon after its rotation, whose successor is still unused,
    # is a phone retrying after a lost answer, not a stolen copy (gridgov/services/tokens.py).
    REFRESH_RETRY_SECONDS = _env_int("GRIDGOV_REFRESH_RETRY_SECONDS", 60)
    # How long a worker reuses a user's active flag and token generation: a revoked access
    # token (logout, new password or role, deactivation) is refused everywhere within this.
    TOKEN_CHECK_CACHE_SECONDS = _env_float("GRIDGOV_TOKEN_CHECK_CACHE_SECONDS", 5.0)

    # Login rate limits (flask-limiter syntax). With the default memory:// store each gunicorn
    # worker counts on its own (the effective limit is workers × the limit); set
    # GRIDGOV_RATELIMIT_STORAGE_URI=redis://host:6379 to share the counts between processes.
    RATELIMIT_STORAGE_URI = os.environ.get("GRIDGOV_RATELIMIT_STORAGE_URI", "memory://")
    # Off: Retry-After is added to 429 answers only (gridgov/api/errors.py).
    RATELIMIT_HEADERS_ENABLED = False
    LOGIN_RATE_LIMIT_PER_IP = os.environ.get("GRIDGOV_LOGIN_RATE_LIMIT_PER_IP", "20/minute")
    LOGIN_RATE_LIMIT_PER_USERNAME = os.environ.get(
        "GRIDGOV_LOGIN_RATE_LIMIT_PER_USERNAME", "10/minute"
    )
    # Open311's public reads (no token) per client address.
    OPEN311_READ_RATE_LIMIT = os.environ.get("GRIDGOV_OPEN311_READ_RATE_LIMIT", "120/minute")

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
    ROUTING_NEAREST_MAX_M = _env_float("GRIDGOV_ROUTING_NEAREST_MAX_M", 200.0)

    # Possible duplicates suggested on submission: same category, this close, this recent.
    DUPLICATE_RADIUS_M = _env_float("GRIDGOV_DUPLICATE_RADIUS_M", 100.0)
    DUPLICATE_WINDOW_HOURS = _env_float("GRIDGOV_DUPLICATE_WINDOW_HOURS", 72.0)

    # Patrols: how far in the past a patrol, its track points and its end may be dated when
    # they reach the server; indicators count only what arrived within this (services/stats.py).
    PATROL_MAX_BACKDATE_HOURS = _env_float("GRIDGOV_PATROL_MAX_BACKDATE_HOURS", 24.0)

    # Working calendar for time limits: working hours, and the local override of the holidays
    # and adjusted working days the chinesecalendar package has (gridgov/services/calendar.py).
    WORK_CALENDAR_FILE = Path(
        os.environ.get(
            "GRIDGOV_WORK_CALENDAR", PROJECT_ROOT / "gridgov" / "data" / "work_calendar.json"
        )
    )
    # /readyz and the escalation job warn this many days before a year the calendar lacks.
    CALENDAR_WARN_DAYS = _env_int("GRIDGOV_CALENDAR_WARN_DAYS", 60)
    # The day coverage is checked for (a datetime.date; tests pin it). None: today, China time.
    CALENDAR_TODAY = None

    # Boundary change sets: snapping and tolerances of the topology checks, in metres.
    BOUNDARY_SNAP_M = _env_float("GRIDGOV_BOUNDARY_SNAP_M", 0.05)
    BOUNDARY_OVERLAP_M2 = _env_float("GRIDGOV_BOUNDARY_OVERLAP_M2", 1.0)
    BOUNDARY_GAP_M2 = _env_float("GRIDGOV_BOUNDARY_GAP_M2", 1.0)
    BOUNDARY_PARENT_M = _env_float("GRIDGOV_BOUNDARY_PARENT_M", 1.0)
    BOUNDARY_MAX_VERTICES = _env_int("GRIDGOV_BOUNDARY_MAX_VERTICES", 20_000)
    # How long intake waits for a boundary change holding the map before answering 503
    # map_busy (with Retry-After) rather than tying up the worker.
    MAP_LOCK_WAIT_MS = _env_int("GRIDGOV_MAP_LOCK_WAIT_MS", 3000)

    # Paging of list endpoints.
    PAGE_SIZE_DEFAULT = _env_int("GRIDGOV_PAGE_SIZE_DEFAULT", 50)
    PAGE_SIZE_MAX = _env_int("GRIDGOV_PAGE_SIZE_MAX", 500)

    # Supervisor map (/map): an optional MapLibre basemap style URL; empty means a plain
    # background. Its origin is added to the page's Content-Security-Policy.
    MAP_BASEMAP_STYLE_URL = os.environ.get("MAP_BASEMAP_STYLE_URL", "")


class DevelopmentConfig(Config):
    pass


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


class ProductionConfig(Config):
    ENV_NAME = "production"
    SECRET_KEY = os.environ.get("SECRET_KEY")

    @classmethod
    def check(cls) -> None:
        missing = [n for n in ("SECRET_KEY", "DATABASE_URL") if not os.environ.get(n)]
        if missing:
            raise RuntimeError(f"production needs {', '.join(missing)} in the environment")


PROFILES = {"development": DevelopmentConfig, "test": TestConfig, "production": ProductionConfig}


def load_config(name: str | None = None) -> type[Config]:
    """Return the config class for GRIDGOV_ENV (or `name`), checking production's needs."""
    name = name or os.environ.get("GRIDGOV_ENV", "development")
    if name not in PROFILES:
        raise RuntimeError(f"GRIDGOV_ENV must be one of {sorted(PROFILES)}, not {name!r}")
    profile = PROFILES[name]
    if profile is ProductionConfig:
        ProductionConfig.check()
    return profile
