"""Small helpers shared by tests."""

import math

from shapely import MultiPolygon, Point

from gridgov.api.security import access_token_for


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
