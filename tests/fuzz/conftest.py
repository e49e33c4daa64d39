"""Fixtures of the fuzz and probe tests: the database must come out exactly as it went in.

Every fuzzing or probing test runs inside `db_session` (tests/conftest.py): the app's engine is
one connection in an outer transaction, and requests made through the WSGI app in the same
thread use it, so whatever the fuzzer creates, edits or applies (users, incidents, boundary
change sets…) is rolled back at the end of each test. `database_unchanged` proves it: it takes
a fingerprint of every table before the module's first test and compares after its last one,
over a connection of its own.
"""

import pytest
from sqlalchemy import text

from gridgov.extensions import db
from tests.helpers import configure

# PostGIS's own table and Alembic's bookkeeping are not ours to compare.
SKIPPED_TABLES = {"spatial_ref_sys", "alembic_version"}
ROWS_DIGEST = (
    "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') "
    'FROM "{table}" t'
)


def database_fingerprint(app) -> dict[str, tuple[int, str]]:
    """(row count, md5 of all rows) of every table of the public schema."""
    with app.app_context(), db.engine.connect() as connection:
        tables = connection.scalars(
            text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' "
                "ORDER BY table_name"
            )
        ).all()
        fingerprint = {}
        for table in tables:
            if table in SKIPPED_TABLES:
                continue
            row = connection.execute(text(ROWS_DIGEST.format(table=table))).one()
            fingerprint[table] = (row[0], row[1])
    return fingerprint


@pytest.fixture(scope="module", autouse=True)
def database_unchanged(app):
    """Fail the module when any table differs after its tests (nothing may leak out)."""
    before = database_fingerprint(app)
    yield before
    after = database_fingerprint(app)
    changed = {
        table: (before.get(table), after.get(table))
        for table in before.keys() | after.keys()
        if before.get(table) != after.get(table)
    }
    assert not changed, f"the fuzz/probe tests left changes behind: {changed}"


@pytest.fixture(autouse=True)
def upload_dir(app, tmp_path, monkeypatch):
    """Photos the fuzzer uploads go to a throw-away folder (files are not in the transaction)."""
    path = tmp_path / "uploads"
    configure(monkeypatch, app, UPLOAD_DIR=path)
    return path
