"""The app's settings: one frozen object, built and checked once by create_app.

config.py holds the defaults and the environment variables over them; `build_settings` turns
that mapping into typed values (durations as timedelta, the calendar loaded, origins split)
and refuses a value it cannot use with a ConfigError naming its variable, so a bad setting
stops the app from starting instead of failing a request. The api, web and cli read
`settings()`; services take the values they need as arguments and never see this module.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from pathlib import Path
from typing import Any

import limits
from flask import Flask, current_app
from py_vapid import Vapid, VapidException

from config import ConfigError, variable
from geo.topology import Tolerances
from gridgov.services.calendar import (
    CHINA_TZ,
    Coverage,
    WorkCalendar,
    check_coverage,
    load_calendar,
)
from gridgov.services.incidents import IntakeSettings

SETTINGS_KEY = "gridgov.settings"


@dataclass(frozen=True)
class Tokens:
    access: timedelta
    refresh: timedelta
    # A refresh token sent again within this of its rotation is a retry (services/tokens.py).
    refresh_retry: timedelta
    check_cache_seconds: float


@dataclass(frozen=True)
class RateLimits:
    """flask-limiter limit strings."""

    login_per_ip: str
    login_per_username: str
    open311_read: str


@dataclass(frozen=True)
class BodyLimits:
    """Largest request bodies in bytes; `ceiling` (MAX_CONTENT_LENGTH) caps them all."""

    ceiling: int | None
    json: int
    changeset: int
    photo: int


@dataclass(frozen=True)
class Paging:
    default: int
    max: int


@dataclass(frozen=True)
class Open311:
    contact: str
    key_service: str


@dataclass(frozen=True)
class Delivery:
    """How `flask notifications deliver` pushes (gridgov/services/delivery.py)."""

    gateways: tuple[str, ...]
    lease: timedelta
    timeout_seconds: float
    backoff: timedelta
    backoff_max: timedelta
    max_attempts: int
    poll_seconds: float
    # Web Push: the VAPID private key (empty: webpush devices are refused) and its subject.
    vapid_private_key: str
    vapid_subject: str


@dataclass(frozen=True)
class Settings:
    env_name: str
    time_zone: timezone
    calendar: WorkCalendar
    calendar_warn_days: int
    # The day calendar coverage is checked for (tests pin it); None: today, China time.
    calendar_today: date | None
    routing_nearest_max_m: float
    intake: IntakeSettings
    tolerances: Tolerances
    patrol_max_backdate: timedelta
    tokens: Tokens
    rate_limits: RateLimits
    bodies: BodyLimits
    upload_dir: Path
    paging: Paging
    open311: Open311
    cors_origins: tuple[str, ...]
    proxy_hops: int
    log_level: str
    migrations_dir: Path
    map_basemap_style_url: str
    delivery: Delivery

    def calendar_coverage(self) -> Coverage:
        """The calendar's coverage of this year (and the next, near its end)."""
        return check_coverage(
            self.calendar, warn_days=self.calendar_warn_days, today=self.calendar_today
        )


def settings(app: Flask | None = None) -> Settings:
    """The settings of `app`, or of the current app."""
    return (app or current_app).extensions[SETTINGS_KEY]


def install_settings(app: Flask) -> Settings:
    """Build the settings from `app.config` and keep them on the app."""
    built = build_settings(app.config)
    app.extensions[SETTINGS_KEY] = built
    return built


def build_settings(config: Mapping[str, Any]) -> Settings:
    """Typed, checked settings from a config mapping; ConfigError names the first bad one."""
    number = _Reader(config)
    calendar = _calendar(config["WORK_CALENDAR_FILE"])
    nearest = number.real("ROUTING_NEAREST_MAX_M", minimum=0)
    page_default = number.integer("PAGE_SIZE_DEFAULT", minimum=1)
    upload_dir = config["UPLOAD_DIR"] or Path(config["INSTANCE_DIR"]) / "uploads"
    return Settings(
        env_name=config["ENV_NAME"],
        time_zone=CHINA_TZ,
        calendar=calendar,
        calendar_warn_days=number.integer("CALENDAR_WARN_DAYS", minimum=0),
        calendar_today=config.get("CALENDAR_TODAY"),
        routing_nearest_max_m=nearest,
        intake=IntakeSettings(
            max_nearest_m=nearest,
            calendar=calendar,
            duplicate_radius_m=number.real("DUPLICATE_RADIUS_M", minimum=0),
            duplicate_window=timedelta(hours=number.real("DUPLICATE_WINDOW_HOURS", minimum=0)),
            map_lock_wait_ms=number.integer("MAP_LOCK_WAIT_MS", minimum=0),
        ),
        tolerances=Tolerances(
            snap_m=number.real("BOUNDARY_SNAP_M", minimum=0),
            overlap_m2=number.real("BOUNDARY_OVERLAP_M2", minimum=0),
            gap_m2=number.real("BOUNDARY_GAP_M2", minimum=0),
            parent_m=number.real("BOUNDARY_PARENT_M", minimum=0),
            max_vertices=number.integer("BOUNDARY_MAX_VERTICES", minimum=4),
        ),
        patrol_max_backdate=timedelta(
            hours=number.real("PATROL_MAX_BACKDATE_HOURS", minimum=0, above=True)
        ),
        tokens=Tokens(
            access=timedelta(minutes=number.integer("ACCESS_TOKEN_MINUTES", minimum=1)),
            refresh=timedelta(days=number.integer("REFRESH_TOKEN_DAYS", minimum=1)),
            refresh_retry=timedelta(seconds=number.integer("REFRESH_RETRY_SECONDS", minimum=0)),
            check_cache_seconds=number.real("TOKEN_CHECK_CACHE_SECONDS", minimum=0),
        ),
        rate_limits=RateLimits(
            login_per_ip=_rate_limit(config, "LOGIN_RATE_LIMIT_PER_IP"),
            login_per_username=_rate_limit(config, "LOGIN_RATE_LIMIT_PER_USERNAME"),
            open311_read=_rate_limit(config, "OPEN311_READ_RATE_LIMIT"),
        ),
        bodies=BodyLimits(
            ceiling=None
            if config.get("MAX_CONTENT_LENGTH") is None
            else number.integer("MAX_CONTENT_LENGTH", minimum=1),
            json=number.integer("MAX_JSON_BYTES", minimum=1),
            changeset=number.integer("MAX_CHANGESET_BYTES", minimum=1),
            photo=number.integer("PHOTO_MAX_BYTES", minimum=1),
        ),
        upload_dir=Path(upload_dir),
        paging=Paging(
            default=page_default, max=number.integer("PAGE_SIZE_MAX", minimum=page_default)
        ),
        open311=Open311(
            contact=config["OPEN311_CONTACT"], key_service=config["OPEN311_KEY_SERVICE"]
        ),
        cors_origins=cors_origins(config["CORS_ORIGINS"]),
        proxy_hops=number.integer("PROXY_HOPS", minimum=0),
        log_level=_log_level(config["LOG_LEVEL"]),
        migrations_dir=Path(config["MIGRATIONS_DIR"]),
        map_basemap_style_url=config["MAP_BASEMAP_STYLE_URL"] or "",
        delivery=Delivery(
            gateways=push_gateways(config["PUSH_GATEWAYS"]),
            lease=timedelta(seconds=number.integer("DELIVERY_LEASE_SECONDS", minimum=1)),
            timeout_seconds=number.real("DELIVERY_TIMEOUT_SECONDS", minimum=0, above=True),
            backoff=timedelta(seconds=number.real("DELIVERY_BACKOFF_SECONDS", minimum=0)),
            backoff_max=timedelta(seconds=number.real("DELIVERY_BACKOFF_MAX_SECONDS", minimum=0)),
            max_attempts=number.integer("DELIVERY_MAX_ATTEMPTS", minimum=1),
            poll_seconds=number.real("DELIVERY_POLL_SECONDS", minimum=0, above=True),
            **_vapid(config["VAPID_PRIVATE_KEY"], config["VAPID_SUBJECT"]),
        ),
    )


def cors_origins(setting: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The allowed origins from a comma separated setting (or a list), without blanks."""
    items = setting.split(",") if isinstance(setting, str) else setting
    origins = tuple(item.strip().rstrip("/") for item in items if item.strip())
    if "*" in origins:
        raise ConfigError(f"{variable('CORS_ORIGINS')} lists origins; '*' is not allowed")
    return origins


def push_gateways(setting: str) -> tuple[str, ...]:
    """The allowed webhook URL prefixes from a comma separated setting; each http(s)."""
    prefixes = tuple(item.strip() for item in setting.split(",") if item.strip())
    for prefix in prefixes:
        scheme, _, rest = prefix.partition("://")
        if scheme not in ("http", "https") or not rest:
            raise ConfigError(
                f"{variable('PUSH_GATEWAYS')} lists http(s) URL prefixes, not {prefix!r}"
            )
    return prefixes


def _vapid(key: str, subject: str) -> dict[str, str]:
    if key:
        try:
            vapid = Vapid.from_string(private_key=key)
        except Exception:  # py_vapid raises whatever its decoders raise
            raise ConfigError(
                f"{variable('VAPID_PRIVATE_KEY')} must be a VAPID private key (base64url, raw"
                " or DER, as `vapid --gen` writes)"
            ) from None
        try:  # the library's own rules for the subject, checked by signing once
            vapid.sign({"sub": subject, "aud": "https://push.example.org"})
        except VapidException:
            raise ConfigError(
                f"{variable('VAPID_SUBJECT')} must be a mailto: address or an https:// origin"
                f" when {variable('VAPID_PRIVATE_KEY')} is set, not {subject!r}"
            ) from None
    return {"vapid_private_key": key, "vapid_subject": subject}


class _Reader:
    """Numbers from the config, checked against a lower bound."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    def integer(self, key: str, *, minimum: int) -> int:
        """The integer setting `key`, at least `minimum`."""
        value = self.config[key]
        if type(value) is not int or value < minimum:
            raise ConfigError(f"{variable(key)} must be an integer >= {minimum}, not {value!r}")
        return value

    def real(self, key: str, *, minimum: float, above: bool = False) -> float:
        """The number setting `key`, at least `minimum` (above it when `above`)."""
        value = self.config[key]
        bad = not isinstance(value, int | float) or isinstance(value, bool) or value != value
        if bad or value < minimum or (above and value == minimum):
            bound = f"> {minimum}" if above else f">= {minimum}"
            raise ConfigError(f"{variable(key)} must be a number {bound}, not {value!r}")
        return float(value)


def _rate_limit(config: Mapping[str, Any], key: str) -> str:
    value = config[key]
    try:
        limits.parse_many(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{variable(key)} must be a rate limit such as '20/minute', not {value!r}"
        ) from None
    return value


def _log_level(value: str) -> str:
    if not isinstance(logging.getLevelName(value), int):
        raise ConfigError(f"{variable('LOG_LEVEL')} must be a logging level, not {value!r}")
    return value


def _calendar(path: Path) -> WorkCalendar:
    try:
        return load_calendar(Path(path))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"{variable('WORK_CALENDAR_FILE')} ({path}) is not a usable working calendar:"
            f" {type(error).__name__}: {error}"
        ) from None
