"""Tests for the private PostgreSQL + PostGIS cluster (gridgov_tools.embedded_pg).

These need PostgreSQL and PostGIS installed; if they are missing the tests fail (not skip).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from config import normalize_database_url
from gridgov_tools import embedded_pg
from gridgov_tools.embedded_pg import (
    EmbeddedCluster,
    database_url_from_env_or_embedded,
    socket_dir_for,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/gg", "postgresql+psycopg://u:p@db:5432/gg"),
        ("postgresql://u@db/gg?sslmode=require", "postgresql+psycopg://u@db/gg?sslmode=require"),
        ("POSTGRESQL://db/gg", "postgresql+psycopg://db/gg"),
        ("postgresql+psycopg://db/gg", "postgresql+psycopg://db/gg"),
        ("postgresql+psycopg2://db/gg", "postgresql+psycopg2://db/gg"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_normalize_database_url(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_socket_dir_falls_back_to_tcp_only_for_long_paths() -> None:
    assert socket_dir_for(Path("/tmp/short"), 54321) == "/tmp/short"
    assert socket_dir_for(Path("/tmp/" + "x" * 120), 54321) == ""


@pytest.fixture
def instance_dir():
    # mkdtemp creates mode 0700; open it up so that, as root, the postgres user can traverse it.
    path = Path(tempfile.mkdtemp(prefix="gg-embedded-pg-", dir="/tmp"))
    path.chmod(0o755)
    clusters: list[EmbeddedCluster] = []
    yield path, clusters
    for cluster in clusters:
        try:
            cluster.stop()
        finally:
            if cluster.base_dir != cluster.pg_dir:
                shutil.rmtree(cluster.base_dir, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)


def test_cluster_lifecycle(instance_dir, monkeypatch) -> None:
    path, clusters = instance_dir
    cluster = EmbeddedCluster(path / "instance")
    clusters.append(cluster)

    t0 = time.monotonic()
    assert cluster.start() is True
    first = time.monotonic() - t0
    assert cluster.is_running()
    assert cluster.data_dir == path / "instance" / "pg" / "data"
    port = int((cluster.pg_dir / "port").read_text())
    assert cluster.url("gg_test") == f"postgresql+psycopg://postgres@127.0.0.1:{port}/gg_test"

    t0 = time.monotonic()
    assert EmbeddedCluster(path / "instance").start() is False  # reused, not started twice
    assert time.monotonic() - t0 < first

    assert cluster.ensure_database("gg_test") is True
    assert cluster.ensure_database("gg_test") is False
    with cluster.connect("gg_test") as conn:
        version = conn.execute("SELECT postgis_version()").fetchone()[0]
        assert version.split()[0].startswith("3.")
        settings = conn.execute(
            "SELECT current_setting('listen_addresses'), current_setting('max_connections')"
        ).fetchone()
        assert settings == ("127.0.0.1", "200")

    monkeypatch.delenv("DATABASE_URL", raising=False)
    url, found = database_url_from_env_or_embedded(path / "instance", "gg_test")
    assert url == cluster.url("gg_test")
    assert found is not None and found.pg_dir == cluster.pg_dir

    monkeypatch.setenv("DATABASE_URL", f"postgres://postgres@127.0.0.1:{port}/gg_test")
    assert database_url_from_env_or_embedded(path / "other", "ignored") == (
        cluster.url("gg_test"),
        None,
    )
    assert not (path / "other").exists()

    cluster.drop_database("gg_test")
    with cluster.connect() as conn:
        assert (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = 'gg_test'").fetchone() is None
        )

    assert cluster.stop() is True
    assert not cluster.is_running()
    assert cluster.stop() is False


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="root-only behaviour")
def test_root_falls_back_when_postgres_cannot_traverse(instance_dir) -> None:
    path, clusters = instance_dir
    private = path / "private"
    private.mkdir(mode=0o700)  # like a checkout under /root
    cluster = EmbeddedCluster(private / "checkout" / "instance")
    clusters.append(cluster)

    assert cluster.start() is True
    expected = cluster.fallback_dir()
    assert expected.parent == embedded_pg.FALLBACK_ROOT
    assert cluster.base_dir == expected
    assert (cluster.pg_dir / "LOCATION").read_text().splitlines()[0] == str(expected)
    assert cluster.data_dir == expected / "data"
    assert (private.stat().st_mode & 0o777) == 0o700  # not chmod-ed
    # A fresh object (the next run) finds the same cluster through LOCATION.
    again = EmbeddedCluster(private / "checkout" / "instance")
    assert again.data_dir == expected / "data"
    assert again.start() is False
    assert cluster.stop() is True
