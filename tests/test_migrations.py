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
