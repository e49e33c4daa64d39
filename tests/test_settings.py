"""The settings object: built once by create_app, a bad value refused there with its name."""

import subprocess
import sys

import pytest

from config import ConfigError, load_config
from gridgov import create_app
from gridgov.settings import build_settings, settings
from tests.helpers import TEST_SETTINGS, configure

UNUSED_DATABASE_URL = "postgresql+psycopg://nobody@127.0.0.1:9/unused"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("GRIDGOV_PAGE_SIZE_MAX", "many", "must be an integer"),
        ("GRIDGOV_PAGE_SIZE_MAX", "10", "must be an integer >= 50"),  # below the default
        ("GRIDGOV_PATROL_MAX_BACKDATE_HOURS", "0", "must be a number > 0"),
        ("GRIDGOV_ROUTING_NEAREST_MAX_M", "-1", "must be a number >= 0"),
        ("GRIDGOV_DUPLICATE_WINDOW_HOURS", "nan", "must be a number >= 0"),
        ("GRIDGOV_CORS_ORIGINS", "https://a.example,*", "'*' is not allowed"),
        ("GRIDGOV_LOG_LEVEL", "chatty", "must be a logging level"),
        ("GRIDGOV_WORK_CALENDAR", "/nonexistent/calendar.json", "not a usable working calendar"),
        ("GRIDGOV_ENV", "staging", "GRIDGOV_ENV must be one of"),
    ],
)
def test_a_bad_setting_stops_create_app_and_is_named(monkeypatch, variable, value, says):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=says) as raised:
        create_app({"SQLALCHEMY_DATABASE_URI": UNUSED_DATABASE_URL})
    assert variable in str(raised.value)


def test_a_rate_limit_that_does_not_parse_is_named():
    config = {**load_config("test"), "LOGIN_RATE_LIMIT_PER_IP": "lots"}
    with pytest.raises(ConfigError, match="GRIDGOV_LOGIN_RATE_LIMIT_PER_IP must be a rate limit"):
        build_settings(config)


def test_a_calendar_in_another_time_zone_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "calendar.json"
    path.write_text(
        '{"timezone_offset_hours": 9, "working_hours": [["09:00", "17:00"]],'
        ' "holidays": {}, "adjusted_working_days": {}}'
    )
    monkeypatch.setenv("GRIDGOV_WORK_CALENDAR", str(path))
    with pytest.raises(ConfigError, match=r"GRIDGOV_WORK_CALENDAR.*China time"):
        create_app({"SQLALCHEMY_DATABASE_URI": UNUSED_DATABASE_URL})


def test_production_needs_its_secret_and_database(monkeypatch):
    monkeypatch.setenv("GRIDGOV_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match="production needs SECRET_KEY, DATABASE_URL"):
        load_config()


def test_the_app_needs_a_database_url(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        create_app({"SQLALCHEMY_DATABASE_URI": None})


def test_environment_values_are_typed_and_empty_ones_ignored():
    config = load_config(
        "test",
        environ={
            "GRIDGOV_MAP_LOCK_WAIT_MS": "250",
            "GRIDGOV_DUPLICATE_RADIUS_M": "12.5",
            "GRIDGOV_PAGE_SIZE_DEFAULT": "",
            "DATABASE_URL": "postgres://u@db/gg",
        },
    )
    built = build_settings(config)
    assert built.intake.map_lock_wait_ms == 250
    assert built.intake.duplicate_radius_m == 12.5
    assert built.paging.default == 50
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db/gg"


def test_the_test_profile_keeps_its_own_values_over_the_environment():
    shell = {"SECRET_KEY": "from-the-shell", "GRIDGOV_TOKEN_CHECK_CACHE_SECONDS": "9"}
    config = load_config("test", environ=shell)
    assert config["SECRET_KEY"] == "test-secret-key-of-at-least-32-bytes!!"
    assert config["TOKEN_CHECK_CACHE_SECONDS"] == 0.0
    assert load_config("development", environ={"SECRET_KEY": "k"})["SECRET_KEY"] == "k"


def test_the_app_reads_one_settings_object(app):
    with app.app_context():
        assert settings() is settings(app)
        assert settings().intake.calendar is settings().calendar
        assert settings().time_zone is settings().calendar.tz is TEST_SETTINGS.time_zone


def test_page_size_default_and_maximum_are_settings(app, client, auth, monkeypatch):
    configure(monkeypatch, app, PAGE_SIZE_DEFAULT=2, PAGE_SIZE_MAX=3)
    headers = auth("admin")
    assert len(client.get("/api/v1/areas?level=town", headers=headers).get_json()["items"]) == 2
    assert (
        len(client.get("/api/v1/areas?level=town&limit=3", headers=headers).get_json()["items"])
        == 3
    )
    refused = client.get("/api/v1/areas?level=town&limit=4", headers=headers)
    assert refused.status_code == 422
    assert refused.get_json()["errors"] == {"query": {"limit": ["Must be between 1 and 3."]}}


def test_create_app_never_imports_the_operator_tools():
    script = (
        "import sys; from gridgov import create_app;"
        f" create_app({{'SQLALCHEMY_DATABASE_URI': {UNUSED_DATABASE_URL!r}}});"
        " print(sorted(m for m in sys.modules if m.startswith('gridgov_tools')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
