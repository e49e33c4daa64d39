"""The migration chain builds the schema from an empty database and matches the models."""

import os

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, inspect, text

from gridgov import create_app
from gridgov.extensions import db
from tests import dbsetup


@pytest.fixture
def empty_database(server):
    base_url, _ = server
    name = f"gridgov_migration_check_{os.getpid()}"
    url = dbsetup.recreate_database(base_url, name)
    with create_engine(url).connect() as conn:  # truly empty: not even PostGIS
        conn.execute(text("DROP EXTENSION postgis"))
        conn.commit()
    yield url
    dbsetup.drop_database(base_url, name)


def _differences(engine, metadata):
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_object": alembic_helpers.include_object,
                "compare_type": True,
            },
        )
        return compare_metadata(context, metadata)


def test_upgrade_from_empty_then_autogenerate_finds_nothing(empty_database):
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database})
    with app.app_context():
        flask_migrate.upgrade()
        assert (
            "postgis"
            in db.session.execute(text("SELECT extname FROM pg_extension")).scalars().all()
        )
        assert _differences(db.engine, db.metadata) == []
        db.engine.dispose()


def test_downgrade_to_base_and_up_again(empty_database):
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database})
    with app.app_context():
        flask_migrate.upgrade()
        flask_migrate.downgrade(revision="base")
        tables = set(inspect(db.engine).get_table_names()) - {"spatial_ref_sys", "alembic_version"}
        assert tables == set()
        flask_migrate.upgrade()
        assert _differences(db.engine, db.metadata) == []
        db.engine.dispose()


def test_spatial_index_exists_once(empty_database):
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database})
    with app.app_context():
        flask_migrate.upgrade()
        rows = (
            db.session.execute(
                text(
                    "SELECT indexdef FROM pg_indexes"
                    " WHERE tablename = 'area' AND indexdef ILIKE '%gist%'"
                )
            )
            .scalars()
            .all()
        )
        db.session.remove()
        db.engine.dispose()
    # One index over every boundary (GeoAlchemy2 adds its own unless told not to), and the
    # partial one of the current micro-grids.
    whole = [row for row in rows if " WHERE " not in row]
    partial = [row for row in rows if " WHERE " in row]
    assert len(whole) == 1
    assert len(partial) == 1 and "ix_area_current_microgrid_boundary" in partial[0]


def test_track_points_stored_before_recorded_at_keep_null(empty_database):
    """0009 leaves the old points' recorded_at NULL ("before this rule"); new ones get now()."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database})
    point = "ST_SetSRID(ST_MakePoint(121.55, 29.82), 4326), 121.55, 29.82, 'wgs84'"
    with app.app_context():
        flask_migrate.upgrade(revision="0007_microgrid_gist")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO app_user (id, username, display_name, password_hash, role)"
                    " VALUES (1, 'w', 'w', 'x', 'worker');"
                    " INSERT INTO patrol (id, client_id, worker_id, started_at)"
                    " VALUES (1, 'p', 1, now() - interval '30 days');"
                    " INSERT INTO track_point (patrol_id, t, location, input_lon, input_lat,"
                    f" input_crs) VALUES (1, now() - interval '30 days', {point})"
                )
            )
        flask_migrate.upgrade()
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO track_point (patrol_id, t, location, input_lon, input_lat,"
                    f" input_crs) VALUES (1, now() - interval '29 days', {point})"
                )
            )
            rows = conn.execute(
                text("SELECT recorded_at IS NULL, recorded_at = now() FROM track_point ORDER BY t")
            ).all()
        assert [tuple(row) for row in rows] == [(True, None), (False, True)]
        db.session.remove()
        db.engine.dispose()
