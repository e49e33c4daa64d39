"""Backup and restore (README): the test database, dumped and restored into a fresh cluster.

Runs the core of scripts/backup-restore-check (gridgov_tools/backup_check.py). Without pg_dump,
pg_restore, createdb or psql this fails; it never skips.
"""

from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory

from gridgov_tools import backup_check, embedded_pg
from gridgov_tools.backup_check import BackupCheckError, CheckResult, Snapshot

PROBE_TABLE = "backup_check_probe"


@pytest.fixture
def source_url(app):
    """The session's test database, with a probe table that is dropped again afterwards."""
    url = embedded_pg.libpq_url(app.config["SQLALCHEMY_DATABASE_URI"])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {PROBE_TABLE} (id int)")
    yield url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {PROBE_TABLE}")


def test_a_dump_restores_into_a_fresh_cluster_with_the_same_figures(app, source_url, monkeypatch):
    real_run = backup_check._run

    def run_writing_meanwhile(args):
        if Path(str(args[0])).name == "pg_dump":
            # A write that lands after the figures were counted but before pg_dump starts:
            # the dump shares the counting transaction's snapshot, so it must not contain it.
            with psycopg.connect(source_url, autocommit=True) as conn:
                conn.execute(f"INSERT INTO {PROBE_TABLE} VALUES (1)")
        real_run(args)

    monkeypatch.setattr(backup_check, "_run", run_writing_meanwhile)
    result = backup_check.run_check(source_url)

    assert result.ok, result.report()
    (head,) = ScriptDirectory(str(app.config["MIGRATIONS_DIR"])).get_heads()
    assert result.source.revision == result.restored.revision == head
    assert result.restored.row_counts["public.area"] == 645  # the small demo district
    assert result.restored.row_counts["public.app_user"] > 0
    assert result.restored.row_counts[f"public.{PROBE_TABLE}"] == 0
    assert result.restored.geometry_md5["public.area.boundary"]
    assert set(result.restored.row_counts) >= {"public.incident", "public.area_revision"}
    assert result.dump_bytes > 0
    assert "backup-restore check: OK" in result.report()


def test_differences_are_reported():
    source = Snapshot(
        revision="0004", row_counts={"public.area": 3}, geometry_md5={"public.area.boundary": "a"}
    )
    restored = Snapshot(
        revision="0003", row_counts={"public.area": 2}, geometry_md5={"public.area.boundary": "b"}
    )
    result = CheckResult(source=source, restored=restored, dump_bytes=1)
    assert not result.ok
    assert result.mismatches() == [
        "alembic revision: 0004 != 0003",
        "rows of public.area: 3 != 2",
        "geometry md5 of public.area.boundary: a != b",
    ]
    assert "backup-restore check: FAILED" in result.report()


def test_missing_client_programs_are_an_error_not_a_skip(monkeypatch):
    monkeypatch.setattr(backup_check.embedded_pg, "find_pg_bindir", lambda: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BackupCheckError, match="pg_dump, pg_restore, createdb, psql not found"):
        backup_check.pg_tools()


def test_passwords_are_not_printed():
    assert embedded_pg.redact("postgresql://app:s3cret@db:5432/gridgov") == (
        "postgresql://app:***@db:5432/gridgov"
    )
