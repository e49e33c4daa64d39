"""Liveness (/healthz) and readiness (/readyz) of the service and its database.

/healthz: the process is up and the database answers (503 `database_unavailable` otherwise).
/readyz: additionally, the database's Alembic revision is the head of migrations/, so a
worker is only sent traffic once the schema it was built for is in place (503 `not_ready`
with the current and head revisions while a migration is pending or the code is older), and
the working calendar covers the current year (503 `not_ready` with `details.uncovered_year`
otherwise: every deadline counted now is wrong). Within GRIDGOV_CALENDAR_WARN_DAYS of a year
the calendar lacks it stays 200 with the reason in `warnings`, logged at WARNING once a day per
process (it is probed every few seconds).
Revisions are strings; several heads (branches) are joined with "," in sorted order.
"""

import logging
from datetime import date
from functools import lru_cache

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, has_request_context, jsonify
from sqlalchemy import text

from gridgov.api.errors import error_response
from gridgov.extensions import db
from gridgov.settings import settings

blp = Blueprint("health", __name__)
log = logging.getLogger(__name__)
_last_warned: dict[str, date] = {}  # warning text -> the day it was last logged


class _QuietInRequests(logging.Filter):
    """Drop alembic's INFO chatter ("Context impl …") when /readyz builds a MigrationContext.

    Outside a request (`flask db upgrade`) alembic's lines pass as before.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not has_request_context()


logging.getLogger("alembic.runtime.migration").addFilter(_QuietInRequests())


@blp.get("/healthz")
def healthz():
    """200 when the database answers, 503 otherwise (the error envelope)."""
    db.session.execute(text("SELECT 1"))
    return jsonify(status="ok", database="ok")


@blp.get("/readyz")
def readyz():
    """200 when the database is at the head revision and the calendar covers this year, else 503."""
    context = MigrationContext.configure(connection=db.session.connection())
    current = _joined(context.get_current_heads())
    head = _joined(migration_heads(str(settings().migrations_dir)))
    if current != head:
        return error_response(
            503,
            error="not_ready",
            message="The database is not at the migration head; run `flask db upgrade`.",
            details={"database": "ok", "current": current, "head": head},
        )
    coverage = settings().calendar_coverage()
    if coverage.error:
        return error_response(
            503,
            error="not_ready",
            message=coverage.error,
            details={
                "database": "ok",
                "revision": current,
                "uncovered_year": coverage.uncovered_year,
            },
        )
    for warning in coverage.warnings:
        if _last_warned.get(warning) != coverage.today:
            _last_warned[warning] = coverage.today
            log.warning("readyz: %s", warning)
    return jsonify(
        status="ready", database="ok", revision=current, warnings=list(coverage.warnings)
    )


@lru_cache(maxsize=4)
def migration_heads(migrations_dir: str) -> tuple[str, ...]:
    """The head revision(s) of the Alembic scripts in `migrations_dir` (read once)."""
    return tuple(ScriptDirectory(migrations_dir).get_heads())


def _joined(revisions) -> str | None:
    return ",".join(sorted(revisions)) or None
