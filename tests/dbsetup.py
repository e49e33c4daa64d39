"""Creating and dropping the throw-away databases the test suite runs in."""

import os
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from config import normalize_database_url
from gridgov_tools import embedded_pg

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def server_url() -> tuple[str, "embedded_pg.EmbeddedCluster | None", bool]:
    """URL of a maintenance database on the server tests use, the cluster, and if we started it.

    DATABASE_URL set: that server. Otherwise the project's private cluster, started if needed.
    Without PostgreSQL/PostGIS this raises: the suite must fail, never skip.
    """
    if os.environ.get("DATABASE_URL"):
        return normalize_database_url(os.environ["DATABASE_URL"]), None, False
    embedded_pg.ensure_binaries()
    instance = Path(os.environ.get("GRIDGOV_INSTANCE_DIR", PROJECT_ROOT / "instance"))
    cluster = embedded_pg.EmbeddedCluster(instance)
    started = cluster.start()
    return cluster.url("postgres"), cluster, started


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(base_url: str, name: str) -> str:
    """The same server as base_url, another database."""
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def recreate_database(base_url: str, name: str) -> str:
    """Drop `name` if it exists, create it empty with PostGIS, and return its URL."""
    drop_database(base_url, name)
    with psycopg.connect(_libpq(base_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = database_url(base_url, name)
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return url


def drop_database(base_url: str, name: str) -> None:
    """Drop a database, ending its connections first."""
    with psycopg.connect(_libpq(base_url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
