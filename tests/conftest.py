"""Test fixtures: one database per run built by the real migrations, each test rolled back.

The database lives on DATABASE_URL's server when it is set, else on the project's private
PostGIS cluster. No PostGIS means the run fails: nothing here skips.
"""

import os

os.environ["GRIDGOV_ENV"] = "test"

import flask_migrate
import pytest
from sqlalchemy import select

from geo.demo_district import generate_district
from gridgov import create_app
from gridgov.extensions import db, lookups
from gridgov.models import User
from gridgov.services import demo as demo_service
from tests import dbsetup
from tests.helpers import bearer

TEST_DB = f"gridgov_test_{os.getpid()}"


@pytest.fixture(scope="session")
def server():
    """(maintenance URL, cluster) of the PostgreSQL server under test."""
    url, cluster, started = dbsetup.server_url()
    yield url, cluster
    if started:
        cluster.stop()


@pytest.fixture(scope="session")
def app(server):
    """The app on a fresh test database, migrated to head, with the small demo district."""
    base_url, _ = server
    url = dbsetup.recreate_database(base_url, TEST_DB)
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        flask_migrate.upgrade()
        demo_service.load_demo(db.session, areas=generate_district(seed=2024, size="small"))
        db.session.commit()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    dbsetup.drop_database(base_url, TEST_DB)


@pytest.fixture
def db_session(app):
    """A session whose work, commits included, is rolled back after the test.

    The app's engine is swapped for one connection inside an outer transaction; the session
    joins it with savepoints, so app code that commits only releases a savepoint. Lookups
    (gridgov/lookups.py) run on the same connection, so they see the test's data.
    """
    with app.app_context():
        engines = db.engines
        engine = engines[None]
        connection = engine.connect()
        transaction = connection.begin()
        engines[None] = connection
        lookups.bind(app, connection.connection.driver_connection)
        try:
            yield db.session
        finally:
            lookups.bind(app, None)
            db.session.remove()
            transaction.rollback()
            connection.close()
            engines[None] = engine


@pytest.fixture
def client(app, db_session):
    """A test client whose requests share the rolled-back connection."""
    return app.test_client()


@pytest.fixture(scope="session")
def demo_users(app):
    """Demo users by username (detached rows: read ids and roles only)."""
    with app.app_context():
        users = db.session.scalars(select(User)).all()
        db.session.expunge_all()
    return {user.username: user for user in users}


@pytest.fixture(scope="session")
def auth(app, demo_users):
    """auth("town_supervisor") → headers carrying that demo user's access token."""
    cache: dict[str, dict[str, str]] = {}

    def headers(username: str) -> dict[str, str]:
        if username not in cache:
            cache[username] = bearer(app, demo_users[username])
        return cache[username]

    return headers
