"""Lookup connections (gridgov/lookups.py): the pool GET /route uses outside the test's
transaction, against the committed demo district.

The rest of the suite binds lookups to the test's connection (tests/conftest.py); these tests
use the real pool, so they read only what the session fixture committed.
"""

import time

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from gridgov import create_app
from gridgov.extensions import db, lookups
from gridgov.models import Area
from gridgov.services import routing as routing_service
from gridgov.spatial import from_db
from tests.helpers import bearer, point_outside

SETTINGS = text("SELECT current_setting('plan_cache_mode'), pg_backend_pid()")
SESSION_STATE = text("SELECT state FROM pg_stat_activity WHERE pid = :pid")
BACKEND_PID = text("SELECT pg_backend_pid()")
# For this session only: the pooled fixture disposes of the pool afterwards.
SHORT_TIMEOUT = text("SELECT set_config('statement_timeout', '100', false)")
SLEEP = text("SELECT pg_sleep(2)")
MAX_NEAREST_M = 200.0


@pytest.fixture
def pooled(app):
    """An app context whose lookups run on the real pool (disposed afterwards)."""
    with app.app_context():
        yield app
        engine = app.extensions["gridgov_lookups"]["engine"]
        if engine is not None:
            engine.dispose()
            app.extensions["gridgov_lookups"]["engine"] = None


@pytest.fixture(scope="module")
def sample_points(app):
    """A covered point, a point just outside the district, one far outside (WGS-84)."""
    with app.app_context():
        microgrid = from_db(
            db.session.scalar(select(Area.boundary).where(Area.level == "microgrid"))
        )
        district = from_db(db.session.scalar(select(Area.boundary).where(Area.level == "district")))
        db.session.remove()
    inside = microgrid.representative_point()
    near, far = point_outside(district, 60), point_outside(district, 5_000)
    return [(inside.x, inside.y), (near.x, near.y), (far.x, far.y)]


def route(connection, point):
    lon, lat = point
    return routing_service.route_point(connection, lon=lon, lat=lat, max_nearest_m=MAX_NEAREST_M)


def test_lookup_connections_are_autocommit_with_generic_plans(pooled):
    plan_cache_mode, pid = lookups.run(
        lambda connection: connection.execute(SETTINGS, {}).fetchone()
    )
    assert plan_cache_mode == "force_generic_plan"
    # Back in the pool, nothing is rolled back on return: a connection that had opened a
    # transaction for the query would sit "idle in transaction", holding its snapshot.
    with db.engine.connect() as other:
        assert other.execute(SESSION_STATE, {"pid": pid}).scalar() == "idle"


def test_pooled_lookup_routes_like_the_session(pooled, sample_points):
    for point in sample_points:
        by_lookup = lookups.run(route, point=point)
        by_session = route(db.session, point)
        assert by_lookup == by_session
    methods = [lookups.run(route, point=point).method for point in sample_points]
    assert methods == ["covered", "nearest", "unrouted"]


def test_a_dead_lookup_connection_is_replaced_and_the_lookup_retried(pooled, sample_points):
    pid = lookups.run(lambda connection: connection.execute(BACKEND_PID, {}).fetchone()[0])
    # As after a database restart: the pooled connection's server process is gone.
    with db.engine.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        # A bound on the wait, not a speed check: a loaded machine can take many seconds to
        # reap the backend.
        deadline = time.monotonic() + 60
        while other.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar():
            assert time.monotonic() < deadline, "the backend did not exit"
            time.sleep(0.05)
    assert lookups.run(route, point=sample_points[0]).method == "covered"
    new_pid = lookups.run(lambda connection: connection.execute(BACKEND_PID, {}).fetchone()[0])
    assert new_pid != pid


def test_a_failing_statement_on_a_live_connection_is_not_retried(pooled):
    # Only a lost connection earns a second try: a timeout would just time out again.
    lookups.run(lambda connection: connection.execute(SHORT_TIMEOUT, {}).fetchone())
    calls = []

    def slow(connection):
        calls.append(connection)
        return connection.execute(SLEEP, {}).fetchone()

    with pytest.raises(OperationalError) as raised:
        lookups.run(slow)
    assert isinstance(raised.value.orig, psycopg.errors.QueryCanceled)
    assert len(calls) == 1
    assert lookups.run(lambda connection: connection.execute(BACKEND_PID, {}).fetchone()[0])


def test_route_is_503_with_retry_after_when_the_database_is_unreachable(demo_users):
    # Nothing listens on port 9 (discard) here: connecting is refused at once.
    unreachable = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://x@127.0.0.1:9/none"}
    )
    response = unreachable.test_client().get(
        "/api/v1/route?lon=121.55&lat=29.83", headers=bearer(unreachable, demo_users["grid_worker"])
    )
    assert response.status_code == 503
    assert response.get_json()["error"] == "database_unavailable"
    assert int(response.headers["Retry-After"]) > 0
