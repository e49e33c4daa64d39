"""Operations: readiness, request ids, the access log and the JSON log format."""

import io
import json
import logging
import re
import sys
from datetime import date

import pytest
from alembic.script import ScriptDirectory
from flask import Blueprint
from sqlalchemy import text

from gridgov import create_app
from gridgov.extensions import db
from gridgov.logging_setup import (
    JsonFormatter,
    TextFormatter,
    accept_request_id,
    configure_logging,
    make_formatter,
)
from gridgov.services.calendar import load_calendar
from tests.helpers import bearer, configure

HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def head(app):
    """The head revision of migrations/."""
    (only,) = ScriptDirectory(str(app.config["MIGRATIONS_DIR"])).get_heads()
    return only


# --- readiness ----------------------------------------------------------------------------------


@pytest.fixture
def calendar_today(app, monkeypatch):
    """calendar_today(day): /readyz checks the calendar's coverage as on that day."""
    return lambda day: configure(monkeypatch, app, CALENDAR_TODAY=day)


@pytest.fixture(scope="module")
def last_covered(app):
    """The last year the configured calendar covers."""
    return max(load_calendar(app.config["WORK_CALENDAR_FILE"]).covered_years)


def test_readyz_is_200_at_the_migration_head_without_a_token(
    client, head, caplog, calendar_today, last_covered
):
    calendar_today(date(last_covered, 6, 1))
    caplog.set_level(logging.INFO)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "database": "ok",
        "revision": head,
        "warnings": [],
    }
    # Probed every few seconds: alembic's "Context impl …" lines stay out of the log.
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []


def test_readyz_is_503_when_the_database_is_at_another_revision(client, db_session, head):
    db_session.execute(text("UPDATE alembic_version SET version_num = '0123456789ab'"))
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "not_ready"
    assert body["details"]["current"] == "0123456789ab"
    assert body["details"]["head"] == head
    assert body["details"]["request_id"] == response.headers["X-Request-ID"]
    # Liveness does not care about the revision.
    assert client.get("/healthz").status_code == 200


def test_readyz_is_503_on_a_database_never_migrated(client, db_session, head):
    db_session.execute(text("DELETE FROM alembic_version"))
    body = client.get("/readyz").get_json()
    assert body["error"] == "not_ready"
    assert body["details"]["current"] is None
    assert body["details"]["head"] == head


def test_readyz_is_503_when_the_calendar_does_not_cover_this_year(
    client, head, calendar_today, last_covered
):
    year = last_covered + 1
    calendar_today(date(year, 1, 1))
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "not_ready"
    assert body["message"].startswith(f"The working calendar does not cover {year}: deadlines")
    assert body["details"]["uncovered_year"] == year
    assert body["details"]["database"] == "ok"
    assert body["details"]["revision"] == head
    assert client.get("/healthz").status_code == 200


def test_readyz_warns_before_a_year_the_calendar_does_not_cover(
    app, client, head, calendar_today, last_covered, caplog, monkeypatch
):
    coming = last_covered + 1
    calendar_today(date(last_covered, 12, 3))
    caplog.set_level(logging.INFO, logger="gridgov.api.health")
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready" and body["revision"] == head
    (warning,) = body["warnings"]
    assert warning.startswith(f"The working calendar does not cover {coming}: from {coming}-01-01")
    (record,) = [r for r in caplog.records if r.name == "gridgov.api.health"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"readyz: {warning}"
    # Probed every few seconds: the same warning is logged once a day per process.
    assert client.get("/readyz").get_json()["warnings"] == [warning]
    assert len([r for r in caplog.records if r.name == "gridgov.api.health"]) == 1
    # Further from the year's end than GRIDGOV_CALENDAR_WARN_DAYS: nothing to say yet.
    configure(monkeypatch, app, CALENDAR_WARN_DAYS=28)
    assert client.get("/readyz").get_json()["warnings"] == []


# --- request ids --------------------------------------------------------------------------------


def test_a_request_id_is_generated_when_none_is_sent(client):
    response = client.get("/healthz")
    assert HEX32.match(response.headers["X-Request-ID"])
    assert response.headers["X-Request-ID"] != client.get("/healthz").headers["X-Request-ID"]


def test_a_sane_request_id_is_echoed_errors_included(client):
    sent = "phone-42.sync_7"
    assert client.get("/healthz", headers={"X-Request-ID": sent}).headers["X-Request-ID"] == sent
    not_found = client.get("/no/such/page", headers={"X-Request-ID": sent})
    assert not_found.status_code == 404
    assert not_found.headers["X-Request-ID"] == sent
    unauthorized = client.get("/api/v1/me", headers={"X-Request-ID": sent})
    assert unauthorized.status_code == 401
    assert unauthorized.headers["X-Request-ID"] == sent


@pytest.mark.parametrize(
    "sent",
    ["x" * 65, "has space", "semi;colon", "new\\nline", "网格", "<script>"],
)
def test_an_insane_request_id_is_replaced(client, sent):
    response = client.get("/healthz", headers={"X-Request-ID": sent})
    assert HEX32.match(response.headers["X-Request-ID"])


def test_accept_request_id_bounds():
    assert accept_request_id("a" * 64) == "a" * 64
    assert HEX32.match(accept_request_id("a" * 65))
    assert HEX32.match(accept_request_id(""))
    assert HEX32.match(accept_request_id(None))


@pytest.fixture(scope="module")
def failing_client(app, demo_users):
    """A second app on the test database with a route that fails unexpectedly."""
    failing = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})
    failing.config["PROPAGATE_EXCEPTIONS"] = False
    bp = Blueprint("ops_failing", __name__)

    @bp.get("/_test/ops-boom")
    def boom():
        raise RuntimeError("boom")

    failing.register_blueprint(bp)
    client = failing.test_client()
    client.environ_base.update(
        HTTP_AUTHORIZATION=bearer(failing, demo_users["admin"])["Authorization"]
    )
    yield client
    with failing.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def json_log(caplog):
    """Lines written by a JSON handler on the root logger while the test runs."""
    caplog.set_level(logging.INFO)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def test_a_5xx_envelope_carries_the_request_id(failing_client, json_log):
    response = failing_client.get("/_test/ops-boom", headers={"X-Request-ID": "trace-500"})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "trace-500"
    assert response.get_json()["details"] == {"request_id": "trace-500"}
    # The traceback line and the access line carry the same id, one JSON object per line.
    error, access = json_log()
    assert error["logger"] == "gridgov.api.errors"
    assert error["level"] == "ERROR"
    assert error["request_id"] == "trace-500"
    assert "RuntimeError: boom" in error["exc"]
    assert access["logger"] == "gridgov.access"
    assert access["level"] == "WARNING"
    assert access["status"] == 500
    assert access["request_id"] == "trace-500"


def test_a_4xx_envelope_has_no_request_id_in_details(client):
    assert client.get("/no/such/page").get_json()["details"] == {}


# --- access log ---------------------------------------------------------------------------------


def test_one_access_line_per_request_with_the_request_fields(client, auth, demo_users, caplog):
    caplog.set_level(logging.DEBUG, logger="gridgov.access")
    response = client.get(
        "/api/v1/categories?lang=zh",
        headers={**auth("grid_worker"), "X-Request-ID": "access-1"},
    )
    assert response.status_code == 200
    (record,) = [r for r in caplog.records if r.name == "gridgov.access"]
    assert record.levelno == logging.INFO
    assert record.request_id == "access-1"
    assert record.method == "GET"
    assert record.path == "/api/v1/categories"  # never the query string
    assert record.status == 200
    assert record.duration_ms >= 0
    assert record.user_id == str(demo_users["grid_worker"].id)
    assert record.remote_addr == "127.0.0.1"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert list(entry) == [
        "ts",
        "level",
        "logger",
        "message",
        "request_id",
        "method",
        "path",
        "status",
        "duration_ms",
        "user_id",
        "remote_addr",
    ]
    assert entry["level"] == "INFO"
    assert entry["logger"] == "gridgov.access"
    assert entry["message"].startswith("GET /api/v1/categories 200 ")
    assert entry["ts"].endswith("+00:00")


def test_unauthenticated_requests_are_logged_without_a_user(client, caplog):
    caplog.set_level(logging.INFO, logger="gridgov.access")
    client.get("/api/v1/me")
    (record,) = [r for r in caplog.records if r.name == "gridgov.access"]
    assert record.status == 401
    assert record.user_id is None
    assert "user_id" not in json.loads(JsonFormatter().format(record))


def test_probes_are_logged_at_debug_only(client, caplog):
    caplog.set_level(logging.INFO, logger="gridgov.access")
    client.get("/healthz")
    client.get("/readyz")
    assert [r for r in caplog.records if r.name == "gridgov.access"] == []
    caplog.set_level(logging.DEBUG, logger="gridgov.access")
    client.get("/healthz")
    (record,) = [r for r in caplog.records if r.name == "gridgov.access"]
    assert record.levelno == logging.DEBUG


# --- formats ------------------------------------------------------------------------------------


def _record(message="hello %s", args=("网格",), **extra):
    record = logging.LogRecord("gridgov.test", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_json_formatter_writes_one_object_per_line():
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        record = _record(exc_info=sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "hello 网格"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "gridgov.test"
    assert "ValueError: line one\nline two" in entry["exc"]
    assert "request_id" not in entry  # outside a request


def test_text_formatter_appends_the_request_id():
    assert TextFormatter().format(_record(request_id="r-1")).endswith("hello 网格 [r-1]")
    assert TextFormatter().format(_record()).endswith("hello 网格")


def test_log_format_is_json_or_text():
    assert isinstance(make_formatter("json"), JsonFormatter)
    assert isinstance(make_formatter("text"), TextFormatter)
    with pytest.raises(RuntimeError, match="GRIDGOV_LOG_FORMAT"):
        make_formatter("xml")


def test_configure_logging_installs_one_handler_and_switches_its_format(monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(logging, "captureWarnings", lambda capture: None)
    monkeypatch.setattr(root, "level", root.level)
    configure_logging("json", "INFO")
    configure_logging("json", "INFO")
    (handler,) = root.handlers
    assert isinstance(handler.formatter, JsonFormatter)
    configure_logging("text", "DEBUG")
    (handler,) = root.handlers
    assert isinstance(handler.formatter, TextFormatter)
    assert root.level == logging.DEBUG


def test_production_logs_json_by_default(monkeypatch):
    from gridgov.logging_setup import default_log_format

    monkeypatch.delenv("GRIDGOV_LOG_FORMAT", raising=False)
    assert default_log_format("production") == "json"
    assert default_log_format("development") == "text"
    assert default_log_format("test") == "text"
    monkeypatch.setenv("GRIDGOV_LOG_FORMAT", "json")
    assert default_log_format("development") == "json"
