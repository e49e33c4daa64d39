"""Small helpers shared by tests."""

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shapely import MultiPolygon, Point
from sqlalchemy import Connection, create_engine, text

from config import load_config
from gridgov.api.security import access_token_for
from gridgov.services.boundaries import MAP_LOCK_KEY
from gridgov.settings import SETTINGS_KEY, build_settings

# The test profile's settings, for code called without an app (services, geo).
TEST_SETTINGS = build_settings(load_config("test"))
TOLERANCES = TEST_SETTINGS.tolerances


def configure(monkeypatch, app, **config) -> None:
    """Change config keys of `app` for one test, and the settings built from them."""
    for key, value in config.items():
        monkeypatch.setitem(app.config, key, value)
    monkeypatch.setitem(app.extensions, SETTINGS_KEY, build_settings(app.config))


def bearer(app, user) -> dict[str, str]:
    """Authorization header with a fresh access token for `user`."""
    with app.app_context():
        token = access_token_for(user)
    return {"Authorization": f"Bearer {token}"}


def point_outside(district: MultiPolygon, metres: float) -> Point:
    """A point `metres` outside the district's outer edge, off its westernmost vertex."""
    ring = district.geoms[0].exterior
    x, y = min(ring.coords, key=lambda xy: xy[0])
    metres_per_degree_lon = 111_320 * math.cos(math.radians(y))
    return Point(x - metres / metres_per_degree_lon, y)


# `count` cases in one micro-grid, in one statement (client ids start with `prefix`); every
# tenth is closed, every hundredth starts with a spreadsheet formula.
BULK_INCIDENTS_SQL = text(
    """
    INSERT INTO incident (client_id, reporter_id, content_hash, category_id, priority,
        description, status, occurred_at, location, input_lon, input_lat, input_crs,
        routing_method, routing_candidates, microgrid_id, grid_id, community_id, town_id,
        district_id, handling_level, closed_at, resolved_level)
    SELECT CAST(:prefix AS text) || '-' || mg.code || '-' || n, :reporter,
        md5(n::text) || md5(mg.code),
        (SELECT id FROM category WHERE code = 'fire_corridor'), 'normal',
        CASE WHEN n % 100 = 1 THEN '=HYPERLINK("http://example.invalid","点我")'
             ELSE '第' || n || '号：' || :description || chr(10) || '第二行' END,
        CASE WHEN n % 10 = 0 THEN 'closed' ELSE 'reported' END,
        now(), ST_PointOnSurface(mg.boundary), ST_X(ST_PointOnSurface(mg.boundary)),
        ST_Y(ST_PointOnSurface(mg.boundary)), 'wgs84', 'covered', 1, mg.id, grid.id,
        community.id, town.id, town.parent_id, 'grid',
        CASE WHEN n % 10 = 0 THEN now() END, CASE WHEN n % 10 = 0 THEN 'grid' END
    FROM generate_series(1, :count) AS n, area mg
    JOIN area grid ON grid.id = mg.parent_id
    JOIN area community ON community.id = grid.parent_id
    JOIN area town ON town.id = community.parent_id
    WHERE mg.code = :microgrid
    """
)


@contextmanager
def map_locked(app, *, at_most: float = 10.0) -> Iterator[Connection]:
    """The exclusive map lock, held on a connection of its own as a boundary change holds it,
    until the block ends, or for `at_most` seconds: then its connection is terminated, so a
    request that waits without limit makes the test fail instead of hang."""
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.connect() as connection:
            pid = connection.execute(
                text(
                    "SELECT pg_backend_pid(), set_config('lock_timeout', '10s', true),"
                    " pg_advisory_xact_lock(:key)"
                ),
                {"key": MAP_LOCK_KEY},
            ).scalar()
            watchdog = threading.Timer(at_most, _terminate, (engine, pid))
            watchdog.start()
            try:
                yield connection
            finally:
                watchdog.cancel()
                connection.rollback()
    finally:
        engine.dispose()


def _terminate(engine, pid: int) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def run_at_once(task: Callable, copies: int = 4) -> list:
    """Run `task()` in `copies` threads released together; their results, or the first failure."""
    barrier = threading.Barrier(copies)
    results, failures = [], []

    def run():
        try:
            barrier.wait(timeout=10)
            results.append(task())
        except Exception as exc:  # re-raised below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    if failures:
        raise failures[0]
    return results
