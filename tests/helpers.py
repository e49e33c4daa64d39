"""Small helpers shared by tests."""

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask_jwt_extended import create_access_token
from shapely import MultiPolygon, Point
from sqlalchemy import Connection, create_engine, text

from gridgov.services.boundaries import MAP_LOCK_KEY


def bearer(app, user) -> dict[str, str]:
    """Authorization header with a fresh access token for `user`."""
    with app.app_context():
        token = create_access_token(identity=str(user.id), additional_claims={"role": user.role})
    return {"Authorization": f"Bearer {token}"}


def point_outside(district: MultiPolygon, metres: float) -> Point:
    """A point `metres` outside the district's outer edge, off its westernmost vertex."""
    ring = district.geoms[0].exterior
    x, y = min(ring.coords, key=lambda xy: xy[0])
    metres_per_degree_lon = 111_320 * math.cos(math.radians(y))
    return Point(x - metres / metres_per_degree_lon, y)


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
