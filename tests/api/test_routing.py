"""GET /api/v1/route: inside, shared edges, outer edge, the enclave hole, outside, CRS input."""

import pytest
import shapely
from shapely import Point
from sqlalchemy import select

from geo.crs import distance_m, from_wgs84
from gridgov.models import Area
from gridgov.schemas.routing import RoutingSchema
from gridgov.spatial import from_db
from tests.helpers import configure, point_outside

DISTRICT = "330212"


@pytest.fixture(scope="module")
def microgrids(app):
    """Shapely boundaries of the demo micro-grids by code (from the database)."""
    from gridgov.extensions import db

    with app.app_context():
        rows = db.session.execute(
            select(Area.code, Area.boundary).where(Area.level == "microgrid")
        ).all()
        db.session.remove()
    return {code: from_db(boundary) for code, boundary in rows}


@pytest.fixture(scope="module")
def district(app):
    from gridgov.extensions import db

    with app.app_context():
        boundary = db.session.scalar(select(Area.boundary).where(Area.code == DISTRICT))
        db.session.remove()
    return from_db(boundary)


@pytest.fixture
def route(client, auth):
    def call(lon, lat, crs=None):
        query = f"/api/v1/route?lon={lon!r}&lat={lat!r}" + (f"&crs={crs}" if crs else "")
        return client.get(query, headers=auth("grid_worker"))

    return call


def covering(microgrids, point: Point) -> list[str]:
    return sorted(code for code, geom in microgrids.items() if geom.covers(point))


def shared_vertex(microgrids) -> tuple[Point, list[str]]:
    """A vertex that lies on two or more micro-grids (identical coordinates in both)."""
    seen: dict[tuple[float, float], str] = {}
    for code, geom in sorted(microgrids.items()):
        for xy in shapely.get_coordinates(geom):
            key = (float(xy[0]), float(xy[1]))
            if key in seen and seen[key] != code:
                point = Point(key)
                return point, covering(microgrids, point)
            seen[key] = code
    raise AssertionError("the demo district has no shared vertex")


def test_point_inside_a_microgrid(route, microgrids):
    code, geom = sorted(microgrids.items())[10]
    point = geom.representative_point()
    body = route(point.x, point.y).get_json()
    assert body["method"] == "covered"
    assert body["distance_m"] == 0
    assert body["candidates"] == 1
    assert body["tie_break"] is None
    assert body["microgrid"]["code"] == code
    # the parent chain extends code by code
    assert body["grid"]["code"] == code[:15]
    assert body["community"]["code"] == code[:12]
    assert body["town"]["code"] == code[:9]
    assert body["district"]["code"] == DISTRICT
    assert body["point"] == {"lon": point.x, "lat": point.y}
    # The body is built by hand (the hot path): it must be exactly what RoutingSchema documents.
    assert body == RoutingSchema().dump(body)
    assert set(body) == set(RoutingSchema().fields)
    assert set(body["microgrid"]) == {"code", "name"}


def test_shared_edge_goes_to_the_lowest_code_and_says_so(route, microgrids):
    point, codes = shared_vertex(microgrids)
    assert len(codes) >= 2
    body = route(point.x, point.y).get_json()
    assert body["method"] == "covered"
    assert body["candidates"] == len(codes)
    assert body["microgrid"]["code"] == codes[0]
    assert body["tie_break"] == "lowest_code"


def test_every_shared_vertex_tie_is_deterministic(route, microgrids):
    point, codes = shared_vertex(microgrids)
    answers = {route(point.x, point.y).get_json()["microgrid"]["code"] for _ in range(5)}
    assert answers == {codes[0]}


def test_point_on_the_outer_edge_is_covered(route, district, microgrids):
    x, y = district.geoms[0].exterior.coords[0]
    body = route(x, y).get_json()
    assert body["method"] == "covered"
    assert body["microgrid"]["code"] == covering(microgrids, Point(x, y))[0]


def test_point_in_the_enclave_hole_is_unrouted_in_the_district_queue(route, district):
    hole = shapely.Polygon(district.geoms[0].interiors[0])
    centre = hole.centroid
    assert not district.covers(centre)
    body = route(centre.x, centre.y).get_json()
    assert body["method"] == "unrouted"
    assert body["microgrid"] is None and body["grid"] is None and body["town"] is None
    assert body["district"]["code"] == DISTRICT


def test_point_just_outside_goes_to_the_nearest_microgrid(route, district, microgrids):
    point = point_outside(district, 60)
    body = route(point.x, point.y).get_json()
    assert body["method"] == "nearest"
    assert 30 < body["distance_m"] <= 61
    nearest = min(microgrids, key=lambda code: (microgrids[code].distance(point), code))
    assert body["microgrid"]["code"] == nearest


def test_point_far_outside_is_unrouted(route, district):
    point = point_outside(district, 5_000)
    body = route(point.x, point.y).get_json()
    assert body["method"] == "unrouted"
    assert body["grid"] is None


def test_nearest_distance_limit_is_configurable(app, route, district, monkeypatch):
    point = point_outside(district, 60)
    configure(monkeypatch, app, ROUTING_NEAREST_MAX_M=10)
    assert route(point.x, point.y).get_json()["method"] == "unrouted"


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_shifted_input_near_an_edge_routes_like_its_wgs84_truth(route, microgrids, crs):
    vertex, codes = shared_vertex(microgrids)
    # 3 m from the shared vertex, into each neighbour in turn: the far side of an edge.
    for code in codes:
        inside = microgrids[code].representative_point()
        step = 3 / 111_000 / vertex.distance(inside)
        truth = Point(
            vertex.x + (inside.x - vertex.x) * step, vertex.y + (inside.y - vertex.y) * step
        )
        expected = covering(microgrids, truth)
        assert expected, "the 3 m point must lie inside some micro-grid"
        shifted_lon, shifted_lat = from_wgs84(truth.x, truth.y, crs)
        body = route(shifted_lon, shifted_lat, crs).get_json()
        assert body["microgrid"]["code"] == expected[0]
        assert abs(body["point"]["lon"] - truth.x) < 1e-7
        assert abs(body["point"]["lat"] - truth.y) < 1e-7
        # Read as WGS-84 the same numbers would be hundreds of metres off.
        assert distance_m(shifted_lon, shifted_lat, truth.x, truth.y) > 300


def test_cgcs2000_is_taken_as_wgs84(route, microgrids):
    code, geom = sorted(microgrids.items())[0]
    point = geom.representative_point()
    body = route(point.x, point.y, "cgcs2000").get_json()
    assert body["microgrid"]["code"] == code
    assert body["point"] == {"lon": point.x, "lat": point.y}


@pytest.mark.parametrize(
    "query, error",
    [
        ("lon=abc&lat=29.8", "validation_failed"),
        ("lon=nan&lat=29.8", "validation_failed"),
        ("lon=inf&lat=29.8", "validation_failed"),
        ("lon=121.5", "validation_failed"),
        ("lon=200&lat=29.8", "out_of_range"),
        ("lon=121.5&lat=-91", "out_of_range"),
        ("lon=29.82&lat=121.55", "swapped_coordinates"),
        ("lon=30.1&lat=80.5", "swapped_coordinates"),
        ("lon=121.5&lat=29.8&crs=mercator", "validation_failed"),
    ],
)
def test_bad_points_are_422_with_a_stable_code(client, auth, query, error):
    response = client.get(f"/api/v1/route?{query}", headers=auth("grid_worker"))
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == error
    assert body["errors"]["query"]


def test_route_needs_a_token(client):
    assert client.get("/api/v1/route?lon=121.5&lat=29.8").status_code == 401
