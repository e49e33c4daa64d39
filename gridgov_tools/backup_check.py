"""Prove a backup restores: dump a gridgov database, restore it into a fresh cluster, compare.

The steps are the ones README's "Backup and restore" section gives an operator:

1. `pg_dump -Fc` of the source database, taken inside a REPEATABLE READ transaction whose
   snapshot pg_dump shares (`--snapshot`), so the figures counted on the source describe
   exactly what is in the dump even while the service keeps writing.
2. A fresh temporary PostgreSQL cluster (gridgov_tools.embedded_pg.EmbeddedCluster in a temporary
   instance directory; as root it runs as the postgres user), `createdb`,
   `CREATE EXTENSION postgis`, `pg_restore --no-owner --exit-on-error`.
3. The same figures on the restored database: rows of every table, an md5 over the geometry
   of every PostGIS column (the md5 of each row's `ST_AsEWKB` in primary-key order, hashed
   again, so it scales to any number of boundaries), and the Alembic revision.

Both sides must agree on every figure. The temporary cluster and the dump are removed at the
end (`--keep-dump PATH` keeps the dump). Standard library + psycopg; no Flask.

CLI (scripts/backup-restore-check)::

    python -m gridgov_tools.backup_check [--database-url URL] [--keep-dump PATH]

Without --database-url it checks DATABASE_URL, else the private cluster's gridgov database.
Exit status 0 when everything matches, 1 when something differs, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from gridgov_tools import embedded_pg

TOOLS = ("pg_dump", "pg_restore", "createdb", "psql")
RESTORED_DB = "gridgov_restored"


class BackupCheckError(RuntimeError):
    """The check could not run (missing tools, unreachable database, failed dump/restore)."""


@dataclass(frozen=True)
class Snapshot:
    """What a database holds, in figures that must survive a dump and restore."""

    revision: str | None
    row_counts: dict[str, int]
    geometry_md5: dict[str, str | None]


@dataclass
class CheckResult:
    """Both snapshots, the dump's size and how long each step took."""

    source: Snapshot
    restored: Snapshot
    dump_bytes: int
    seconds: dict[str, float] = field(default_factory=dict)

    def mismatches(self) -> list[str]:
        """Human-readable differences between source and restored (empty when they agree)."""
        out = []
        if self.source.revision != self.restored.revision:
            out.append(f"alembic revision: {self.source.revision} != {self.restored.revision}")
        for name in sorted(set(self.source.row_counts) | set(self.restored.row_counts)):
            a, b = self.source.row_counts.get(name), self.restored.row_counts.get(name)
            if a != b:
                out.append(f"rows of {name}: {a} != {b}")
        for name in sorted(set(self.source.geometry_md5) | set(self.restored.geometry_md5)):
            a, b = self.source.geometry_md5.get(name), self.restored.geometry_md5.get(name)
            if a != b:
                out.append(f"geometry md5 of {name}: {a} != {b}")
        return out

    @property
    def ok(self) -> bool:
        """True when every figure agrees."""
        return not self.mismatches()

    def report(self) -> str:
        """The figures side by side, then OK or the differences."""
        lines = [f"{'table':<32} {'source':>10} {'restored':>10}"]
        for name in sorted(self.source.row_counts):
            restored = self.restored.row_counts.get(name)
            mark = "" if restored == self.source.row_counts[name] else "   <-- differs"
            lines.append(f"{name:<32} {self.source.row_counts[name]:>10} {restored!s:>10}{mark}")
        for name, digest in sorted(self.source.geometry_md5.items()):
            same = digest == self.restored.geometry_md5.get(name)
            lines.append(f"md5 {name:<40} {digest}  {'same' if same else 'DIFFERS'}")
        same_revision = self.source.revision == self.restored.revision
        lines.append(
            f"alembic revision: {self.source.revision} (restored:"
            f" {self.restored.revision}, {'same' if same_revision else 'DIFFERS'})"
        )
        timing = ", ".join(f"{step} {secs:.1f} s" for step, secs in self.seconds.items())
        lines.append(f"dump: {self.dump_bytes} bytes; {timing}")
        problems = self.mismatches()
        lines.append("backup-restore check: OK" if not problems else "backup-restore check: FAILED")
        lines.extend(f"  {problem}" for problem in problems)
        return "\n".join(lines)


# --------------------------------------------------------------------------- tools


def pg_tools() -> dict[str, Path]:
    """Paths of pg_dump, pg_restore, createdb and psql (the local server's version first)."""
    found: dict[str, Path] = {}
    bindir = embedded_pg.find_pg_bindir()
    for tool in TOOLS:
        if bindir is not None and (bindir / tool).is_file():
            found[tool] = bindir / tool
        elif which := shutil.which(tool):
            found[tool] = Path(which)
    missing = [tool for tool in TOOLS if tool not in found]
    if missing:
        raise BackupCheckError(
            f"{', '.join(missing)} not found; install the PostgreSQL client programs:\n"
            f"    {embedded_pg.install_command()}"
        )
    return found


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


def _run(args: Sequence[str | Path]) -> None:
    proc = subprocess.run(
        [str(a) for a in args], env=_env(), capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise BackupCheckError(
            f"{Path(str(args[0])).name} failed (exit {proc.returncode}): {detail}"
        )


# --------------------------------------------------------------------------- figures


def snapshot(conn: psycopg.Connection) -> Snapshot:
    """Row counts of every table, geometry checksums and the Alembic revision of `conn`."""
    tables = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_type = 'BASE TABLE'"
        " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        " AND table_schema NOT LIKE 'pg\\_%'"
        " ORDER BY 1, 2"
    ).fetchall()
    counts = {}
    for schema, table in tables:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        counts[f"{schema}.{table}"] = conn.execute(query).fetchone()[0]
    revision = None
    if ("public", "alembic_version") in tables:
        rows = conn.execute("SELECT version_num FROM alembic_version ORDER BY 1").fetchall()
        revision = ",".join(row[0] for row in rows) or None
    return Snapshot(revision=revision, row_counts=counts, geometry_md5=_geometry_md5(conn))


def _geometry_md5(conn: psycopg.Connection) -> dict[str, str | None]:
    columns = conn.execute(
        "SELECT f_table_schema, f_table_name, f_geometry_column FROM geometry_columns"
        " WHERE f_table_schema NOT IN ('pg_catalog', 'information_schema')"
        " ORDER BY 1, 2, 3"
    ).fetchall()
    digests = {}
    for schema, table, column in columns:
        order = _primary_key(conn, schema, table) or [column]
        query = sql.SQL(
            "SELECT md5(string_agg(md5(ST_AsEWKB({col})), '' ORDER BY {order})) FROM {tbl}"
        ).format(
            col=sql.Identifier(column),
            order=sql.SQL(", ").join(sql.Identifier(c) for c in order),
            tbl=sql.Identifier(schema, table),
        )
        digests[f"{schema}.{table}.{column}"] = conn.execute(query).fetchone()[0]
    return digests


def _primary_key(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = %s::regclass AND i.indisprimary"
        " ORDER BY array_position(i.indkey, a.attnum)",
        (sql.Identifier(schema, table).as_string(conn),),
    ).fetchall()
    return [row[0] for row in rows]


# --------------------------------------------------------------------------- steps


def dump(tools: dict[str, Path], source_url: str, path: Path) -> Snapshot:
    """pg_dump -Fc `source_url` to `path`; return the source's figures at the dump's snapshot."""
    url = embedded_pg.libpq_url(source_url)
    try:
        conn = psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as error:
        raise BackupCheckError(f"cannot connect to the source database: {error}") from error
    with conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot_id = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        source = snapshot(conn)
        _run([tools["pg_dump"], "-Fc", f"--snapshot={snapshot_id}", "-f", path, "-d", url])
        conn.rollback()
    return source


def restore(tools: dict[str, Path], dump_path: Path, cluster: embedded_pg.EmbeddedCluster) -> str:
    """Restore `dump_path` into a new database on the running `cluster`; return its URL."""
    where = ["-h", "127.0.0.1", "-p", str(cluster.port), "-U", embedded_pg.PG_USER]
    _run([tools["createdb"], *where, RESTORED_DB])
    create_postgis = ["-v", "ON_ERROR_STOP=1", "-q", "-c", "CREATE EXTENSION postgis"]
    _run([tools["psql"], *where, "-d", RESTORED_DB, *create_postgis])
    _run(
        [tools["pg_restore"], *where, "--no-owner", "--exit-on-error", "-d", RESTORED_DB, dump_path]
    )
    return cluster.url(RESTORED_DB)


def run_check(
    source_url: str,
    *,
    keep_dump: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> CheckResult:
    """Dump `source_url`, restore it into a fresh temporary cluster, and compare the figures."""
    tools = pg_tools()
    embedded_pg.ensure_binaries()
    seconds: dict[str, float] = {}
    workdir = Path(tempfile.mkdtemp(prefix="gridgov-restore-check-"))
    # The postgres user (when running as root) must reach the cluster inside it.
    workdir.chmod(0o755)
    cluster = embedded_pg.EmbeddedCluster(workdir / "instance")
    try:
        dump_path = keep_dump or workdir / "gridgov.dump"
        started = time.monotonic()
        log("dumping the source database (pg_dump -Fc)")
        source = dump(tools, source_url, dump_path)
        seconds["dump"] = time.monotonic() - started

        started = time.monotonic()
        log(f"starting a fresh temporary cluster in {workdir}")
        cluster.start()
        seconds["fresh cluster"] = time.monotonic() - started

        started = time.monotonic()
        log("restoring (createdb, CREATE EXTENSION postgis, pg_restore --no-owner)")
        url = restore(tools, dump_path, cluster)
        seconds["restore"] = time.monotonic() - started

        started = time.monotonic()
        with psycopg.connect(embedded_pg.libpq_url(url), connect_timeout=10) as conn:
            restored = snapshot(conn)
        seconds["compare"] = time.monotonic() - started
        return CheckResult(
            source=source,
            restored=restored,
            dump_bytes=dump_path.stat().st_size,
            seconds=seconds,
        )
    finally:
        _remove_cluster(cluster, workdir)


def _remove_cluster(cluster: embedded_pg.EmbeddedCluster, workdir: Path) -> None:
    base_dir = cluster.base_dir
    try:
        cluster.stop()
    finally:
        if base_dir != cluster.pg_dir:  # relocated under /var/lib/gridgov: remove it too
            shutil.rmtree(base_dir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- CLI


def _source_url(given: str | None) -> tuple[str, embedded_pg.EmbeddedCluster | None]:
    """The URL to check and, when we started the private cluster for it, that cluster."""
    url = given or os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url, None
    instance = Path(os.environ.get("GRIDGOV_INSTANCE_DIR", embedded_pg.DEFAULT_INSTANCE_DIR))
    dbname = os.environ.get("GRIDGOV_EMBEDDED_DB", embedded_pg.DEFAULT_DBNAME)
    cluster = embedded_pg.EmbeddedCluster(instance)
    embedded_pg.ensure_binaries()
    started = cluster.start()
    return cluster.url(dbname), cluster if started else None


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="scripts/backup-restore-check",
        description="Dump a gridgov database with pg_dump -Fc, restore it into a fresh"
        " temporary cluster and compare row counts, geometry checksums and the revision.",
    )
    parser.add_argument(
        "--database-url",
        help="source database (default: DATABASE_URL, else the private cluster's gridgov database)",
    )
    parser.add_argument("--keep-dump", type=Path, help="write the dump here and keep it")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"backup-restore-check: {message}", file=sys.stderr, flush=True)

    started_cluster = None
    try:
        url, started_cluster = _source_url(args.database_url)
        log(f"source: {embedded_pg.redact(embedded_pg.libpq_url(url))}")
        result = run_check(url, keep_dump=args.keep_dump, log=log)
    except (BackupCheckError, embedded_pg.EmbeddedPgError) as error:
        print(f"backup-restore-check: error: {error}", file=sys.stderr)
        return 2
    finally:
        if started_cluster is not None:
            started_cluster.stop()
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
