"""Vector tiles: scoping, incident points and aggregates, geometry validity, caching, errors.

Tiles are decoded with mapbox-vector-tile; expected sets are built from the fixtures by hand,
never with the tile code under test.
"""

import math
import re
from datetime import UTC, datetime, timedelta

import mapbox_vector_tile
import pytest
import shapely
from shapely.geometry import shape
from sqlalchemy import event, text

from gridgov.extensions import db
from gridgov.spatial import point_sql
from tests.factories import make_incident

TOWN_A = "330212001"  # town_supervisor's town
TOWN_B = "330212002"
G1 = "330212001001001"  # grid_head's grid
G2 = "330212001001002"
G3 = "330212001002001"
MG1 = "330212001001001001"  # grid_worker's micro-grid, in G1
MG2 = "330212001001002001"  # in G2
MG3 = "330212001002001001"  # in G3
MG_B = "330212002001001001"  # town B
GB = "330212002001001"
MVT = "application/vnd.mapbox-vector-tile"


# --------------------------------------------------------------------------- helpers


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The (x, y) of the tile at zoom z holding a WGS-84 point (slippy-map scheme)."""
    n = 2**z
    rad = math.radians(lat)
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.log(math.tan(rad) + 1 / math.cos(rad)) / math.pi) / 2 * n)
    return x, y


def lonlat_of(x: float, y: float, z: int) -> tuple[float, float]:
    """The WGS-84 point at fractional tile coordinates (x, y) of zoom z."""
    n = 2**z
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))
    return x / n * 360 - 180, lat


def label_point(session, code: str) -> tuple[float, float]:
    """A point inside the area (ST_PointOnSurface), as lon/lat."""
    return session.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM"
            " (SELECT ST_PointOnSurface(boundary) AS p FROM area WHERE code = :code) s"
        ),
        {"code": code},
    ).one()


def district_tiles(session, z: int) -> list[tuple[int, int]]:
    """Every tile of zoom z that the district's bounding box touches."""
    west, south, east, north = session.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM"
            " (SELECT ST_Extent(boundary) AS e FROM area WHERE level = 'district') s"
        )
    ).one()
    x0, y0 = tile_of(west, north, z)
    x1, y1 = tile_of(east, south, z)
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def get_tile(client, headers, layer, z, x, y, query="", **extra_headers):
    suffix = f"?{query}" if query else ""
    return client.get(
        f"/tiles/{layer}/{z}/{x}/{y}.mvt{suffix}", headers={**headers, **extra_headers}
    )


def features(response, layer) -> list[dict]:
    """The decoded features of `layer` (none for a 204)."""
    if response.status_code == 204:
        assert response.data == b""
        return []
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == MVT
    decoded = mapbox_vector_tile.decode(response.data)
    assert set(decoded) == {layer}
    return decoded[layer]["features"]


def codes(response, layer) -> set[str]:
    return {f["properties"]["code"] for f in features(response, layer)}


# --------------------------------------------------------------------------- area layers


def test_town_supervisor_sees_only_their_towns_grids(client, auth, db_session):
    z = 12
    x, y = tile_of(*label_point(db_session, G1), z)
    everyone = codes(get_tile(client, auth("admin"), "grids", z, x, y), "grids")
    mine = codes(get_tile(client, auth("town_supervisor"), "grids", z, x, y), "grids")
    assert G1 in mine
    assert mine == {code for code in everyone if code.startswith(TOWN_A)}
    assert everyone - mine, "the tile should also hold other towns' grids"


def test_another_towns_tile_is_empty_for_a_town_supervisor(client, auth, db_session):
    # The grid whose label point lies farthest from town A: its z14 tile holds no town-A grid.
    far = db_session.execute(
        text(
            "SELECT g.code FROM area g, area t WHERE g.level = 'grid' AND t.code = :town"
            " ORDER BY ST_Distance(ST_PointOnSurface(g.boundary), t.boundary) DESC LIMIT 1"
        ),
        {"town": TOWN_A},
    ).scalar()
    z = 14
    x, y = tile_of(*label_point(db_session, far), z)
    assert far in codes(get_tile(client, auth("admin"), "grids", z, x, y), "grids")
    for layer in ("grids", "microgrids"):
        response = get_tile(client, auth("town_supervisor"), layer, z, x, y)
        assert response.status_code == 204
        assert response.headers["X-Tile-Empty"] == "no_features"


def test_admin_and_district_supervisor_see_every_grid(client, auth, db_session):
    all_grids = set(db_session.scalars(text("SELECT code FROM area WHERE level = 'grid'")).all())
    for user in ("admin", "district_supervisor"):
        seen: set[str] = set()
        for x, y in district_tiles(db_session, 11):
            seen |= codes(get_tile(client, auth(user), "grids", 11, x, y), "grids")
        assert seen == all_grids


def test_worker_sees_their_micro_grid_and_its_grid(client, auth, db_session):
    z = 13
    x, y = tile_of(*label_point(db_session, MG1), z)
    assert codes(get_tile(client, auth("grid_worker"), "microgrids", z, x, y), "microgrids") == {
        MG1
    }
    assert codes(get_tile(client, auth("grid_worker"), "grids", z, x, y), "grids") == {G1}
    # The grid head (assigned to G1) sees G1 and every micro-grid under it in that tile.
    head = codes(get_tile(client, auth("grid_head"), "microgrids", z, x, y), "microgrids")
    assert MG1 in head and all(code.startswith(G1) for code in head)


@pytest.mark.parametrize("layer, z", [("grids", 11), ("grids", 13), ("microgrids", 13)])
def test_simplified_geometries_are_valid_polygons(client, auth, db_session, layer, z):
    x, y = tile_of(*label_point(db_session, G1), z)
    found = features(get_tile(client, auth("admin"), layer, z, x, y), layer)
    assert found
    for feature in found:
        geometry = shape(feature["geometry"])
        assert geometry.geom_type in ("Polygon", "MultiPolygon")
        assert geometry.is_valid, shapely.is_valid_reason(geometry)
        assert geometry.area > 0
        assert set(feature["properties"]) == {"code", "name"}


# --------------------------------------------------------------------------- incidents


@pytest.fixture
def z15_cases(db_session, demo_users):
    """Incidents placed inside one z15 tile (and one just outside it), in towns A and B."""
    z = 15
    x, y = tile_of(*label_point(db_session, MG1), z)
    reporter = demo_users["admin"]
    now = datetime.now(UTC)

    def at(fx, fy, microgrid, **columns):
        lon, lat = lonlat_of(x + fx, y + fy, z)
        return make_incident(
            db_session,
            reporter=reporter,
            microgrid_code=microgrid,
            location=point_sql(lon, lat),
            **columns,
        )

    cases = {
        "overdue": at(0.2, 0.2, MG1, deadline=now - timedelta(hours=1)),
        "in_time": at(0.4, 0.3, MG1, status="in_progress", deadline=now + timedelta(hours=3)),
        "no_clock": at(0.6, 0.7, MG1, status="accepted", category_code="fire_ebike"),
        "closed": at(0.5, 0.5, MG1, status="closed"),
        "town_b": at(0.8, 0.8, MG_B),
        "next_tile": at(1.3, 0.5, MG1),
    }
    return (z, x, y), cases


def incident_props(response) -> dict[int, dict]:
    found = features(response, "incidents")
    for feature in found:
        assert feature["geometry"]["type"] == "Point"
        assert feature["id"] == feature["properties"]["id"]
    return {f["properties"]["id"]: f["properties"] for f in found}


def test_z15_incidents_are_the_open_ones_in_scope(client, auth, z15_cases):
    (z, x, y), cases = z15_cases
    props = incident_props(get_tile(client, auth("town_supervisor"), "incidents", z, x, y))
    assert set(props) == {cases[k].id for k in ("overdue", "in_time", "no_clock")}
    assert props[cases["overdue"].id] == {
        "id": cases["overdue"].id,
        "status": "reported",
        "overdue": True,
        "category": "env_garbage",
        "category_name": "暴露垃圾",
        "priority": "normal",
    }
    assert props[cases["in_time"].id]["status"] == "in_progress"
    assert props[cases["in_time"].id]["overdue"] is False
    assert props[cases["no_clock"].id]["overdue"] is False
    assert props[cases["no_clock"].id]["category"] == "fire_ebike"
    admin = incident_props(get_tile(client, auth("admin"), "incidents", z, x, y))
    assert set(admin) == set(props) | {cases["town_b"].id}
    # A worker sees what lies under their micro-grid (and what they reported: nothing here).
    worker = incident_props(get_tile(client, auth("grid_worker"), "incidents", z, x, y))
    assert set(worker) == set(props)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=closed", {"closed"}),
        ("status=reported,closed", {"overdue", "closed"}),
        ("category=fire_ebike", {"no_clock"}),
        ("overdue=true", {"overdue"}),
        ("overdue=false", {"in_time", "no_clock"}),
    ],
)
def test_incident_filters(client, auth, z15_cases, query, expected):
    (z, x, y), cases = z15_cases
    props = incident_props(get_tile(client, auth("town_supervisor"), "incidents", z, x, y, query))
    assert set(props) == {cases[k].id for k in expected}


@pytest.fixture
def grid_cases(db_session, demo_users):
    """Open and closed incidents in grids G1, G2, G3 (town A) and GB (town B), one unrouted."""
    reporter = demo_users["admin"]
    past = datetime.now(UTC) - timedelta(hours=1)
    for microgrid, status, deadline in [
        (MG1, "reported", past),
        (MG1, "dispatched", None),
        (MG1, "closed", past),
        (MG2, "accepted", None),
        (MG3, "reported", None),
        (MG3, "in_progress", past),
        (MG3, "verified", None),
        (MG3, "rejected", None),
        (MG_B, "reported", past),
    ]:
        make_incident(
            db_session,
            reporter=reporter,
            microgrid_code=microgrid,
            status=status,
            deadline=deadline,
        )
    make_incident(db_session, reporter=reporter)  # unrouted: in no grid


def aggregates(client, headers, db_session, z) -> dict[str, tuple[int, int]]:
    """{code: (count, overdue_count)} over every tile of zoom z; each area appears once."""
    found: dict[str, tuple[int, int]] = {}
    for x, y in district_tiles(db_session, z):
        for feature in features(get_tile(client, headers, "incidents", z, x, y), "incidents"):
            props = feature["properties"]
            assert feature["geometry"]["type"] == "Point"
            assert props["code"] not in found, "an area drawn in two tiles"
            found[props["code"]] = (props["count"], props["overdue_count"])
    return found


def test_z12_counts_open_incidents_per_grid(client, auth, db_session, grid_cases):
    assert aggregates(client, auth("admin"), db_session, 12) == {
        G1: (2, 1),
        G2: (1, 0),
        G3: (3, 1),
        GB: (1, 1),
    }
    assert aggregates(client, auth("town_supervisor"), db_session, 12) == {
        G1: (2, 1),
        G2: (1, 0),
        G3: (3, 1),
    }


def test_low_zoom_counts_per_town(client, auth, db_session, grid_cases):
    assert aggregates(client, auth("admin"), db_session, 10) == {TOWN_A: (6, 2), TOWN_B: (1, 1)}
    only_overdue = {}
    for x, y in district_tiles(db_session, 10):
        response = get_tile(client, auth("admin"), "incidents", 10, x, y, "overdue=true")
        for feature in features(response, "incidents"):
            only_overdue[feature["properties"]["code"]] = feature["properties"]["count"]
    assert only_overdue == {TOWN_A: 2, TOWN_B: 1}


# --------------------------------------------------------------------------- HTTP


def test_headers_and_etag_revalidation_of_an_area_tile(client, auth, db_session):
    z = 13
    x, y = tile_of(*label_point(db_session, G1), z)
    first = get_tile(client, auth("admin"), "grids", z, x, y)
    assert first.status_code == 200
    assert first.headers["Content-Type"] == MVT
    assert first.headers["Cache-Control"] == "private, max-age=600"
    assert first.headers["Vary"] == "Authorization"
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    again = get_tile(client, auth("admin"), "grids", z, x, y, **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    # Another scope, another ETag: a town supervisor's cached tile is no admin's.
    other = get_tile(client, auth("town_supervisor"), "grids", z, x, y, **{"If-None-Match": etag})
    assert other.status_code == 200
    assert other.headers["ETag"] != etag


def test_etag_revalidation_of_an_incident_tile(client, auth, z15_cases):
    (z, x, y), _ = z15_cases
    first = get_tile(client, auth("admin"), "incidents", z, x, y)
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "private, max-age=10"
    etag = first.headers["ETag"]
    assert not etag.startswith("W/")
    again = get_tile(client, auth("admin"), "incidents", z, x, y, **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    filtered = get_tile(
        client, auth("admin"), "incidents", z, x, y, "status=closed", **{"If-None-Match": etag}
    )
    assert filtered.status_code == 200


@pytest.fixture
def statements(app):
    """SQL statements sent while the test runs."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


def test_empty_tiles_outside_the_district_or_below_min_zoom_skip_geometry(
    client, auth, db_session, statements
):
    point = label_point(db_session, G1)
    x, y = tile_of(*point, 14)
    assert get_tile(client, auth("admin"), "grids", 14, x, y).status_code == 200  # warm caches
    far_x, far_y = tile_of(100.0, 30.0, 14)  # far west of the district
    low = {"grids": 10, "microgrids": 12, "incidents": 7}
    statements.clear()
    for layer in ("grids", "microgrids", "incidents"):
        response = get_tile(client, auth("admin"), layer, 14, far_x, far_y)
        assert response.status_code == 204
        assert response.headers["X-Tile-Empty"] == "outside_district"
        assert response.headers["ETag"]
        z = low[layer]
        response = get_tile(client, auth("admin"), layer, z, *tile_of(*point, z))
        assert response.status_code == 204
        assert response.headers["X-Tile-Empty"] == "below_min_zoom"
    assert statements, "the user is still loaded"
    geometry = re.compile(r"ST_|\bboundary\b|\blocation\b", re.IGNORECASE)
    assert not [s for s in statements if geometry.search(s)]


@pytest.mark.parametrize(
    "path, status, error",
    [
        ("/tiles/roads/12/3430/1712.mvt", 404, "layer_not_found"),
        ("/tiles/grids/23/0/0.mvt", 404, "tile_not_found"),
        ("/tiles/grids/12/4096/1712.mvt", 404, "tile_not_found"),
        ("/tiles/grids/2/1/4.mvt", 404, "tile_not_found"),
        ("/tiles/grids/12/-1/1712.mvt", 404, "not_found"),
        ("/tiles/grids/12/x/1712.mvt", 404, "not_found"),
        ("/tiles/incidents/14/13722/6847.mvt?status=lost", 422, "validation_failed"),
        ("/tiles/incidents/14/13722/6847.mvt?overdue=perhaps", 422, "validation_failed"),
        ("/tiles/incidents/14/13722/6847.mvt?category=a%27b", 422, "validation_failed"),
    ],
)
def test_bad_tile_requests(client, auth, path, status, error):
    response = client.get(path, headers=auth("admin"))
    assert response.status_code == status
    body = response.get_json()
    assert body["code"] == status and body["error"] == error


def test_a_token_is_required(client):
    response = client.get("/tiles/grids/12/3430/1712.mvt")
    assert response.status_code == 401
    assert response.get_json()["error"] == "token_missing"


def test_tiles_are_in_the_openapi_document(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/tiles/{layer}/{z}/{x}/{y}.mvt"]["get"]
    assert MVT in operation["responses"]["200"]["content"]
    assert {p["name"] for p in operation["parameters"]} >= {"status", "category", "overdue"}
