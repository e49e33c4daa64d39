"""GET /api/v1/areas and /api/v1/areas/{code} against the small demo district."""

import pytest
from shapely.geometry import Point, shape

DISTRICT = "330212"


@pytest.fixture
def client(client, auth):
    """Any signed-in user may read the area tree."""
    client.environ_base["HTTP_AUTHORIZATION"] = auth("grid_worker")["Authorization"]
    return client


def test_towns_are_listed_in_code_order(client):
    body = client.get("/api/v1/areas?level=town&limit=500").get_json()
    codes = [item["code"] for item in body["items"]]
    assert len(codes) >= 15
    assert codes == sorted(codes)
    assert all(len(c) == 9 and c.startswith(DISTRICT) for c in codes)
    assert {item["parent"] for item in body["items"]} == {DISTRICT}
    assert body["next_cursor"] is None


def test_pages_with_cursor_cover_every_town_once(client):
    seen, cursor = [], None
    while True:
        url = "/api/v1/areas?level=town&limit=7" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url).get_json()
        seen += [item["code"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    everything = client.get("/api/v1/areas?level=town&limit=500").get_json()["items"]
    assert seen == [item["code"] for item in everything]


def test_parent_filter_lists_direct_children_only(client):
    town = client.get("/api/v1/areas?level=town&limit=1").get_json()["items"][0]["code"]
    items = client.get(f"/api/v1/areas?parent={town}&limit=500").get_json()["items"]
    assert items
    assert all(item["parent"] == town and item["level"] == "community" for item in items)


def test_bbox_filter_returns_only_intersecting_areas(client):
    town = client.get("/api/v1/areas?level=town&limit=1&format=geojson").get_json()
    geom = shape(town["features"][0]["geometry"])
    point = geom.representative_point()
    bbox = f"{point.x - 1e-5},{point.y - 1e-5},{point.x + 1e-5},{point.y + 1e-5}"
    body = client.get(f"/api/v1/areas?level=town&bbox={bbox}").get_json()
    assert [i["code"] for i in body["items"]] == [town["features"][0]["properties"]["code"]]


def test_geojson_list_is_a_feature_collection(client):
    response = client.get("/api/v1/areas?level=town&limit=3&format=geojson")
    assert response.status_code == 200
    assert response.mimetype == "application/geo+json"
    body = response.get_json()
    assert body["type"] == "FeatureCollection"
    assert len(body["features"]) == 3
    assert body["next_cursor"]
    for feat in body["features"]:
        assert feat["geometry"]["type"] == "MultiPolygon"
        assert shape(feat["geometry"]).is_valid
        assert set(feat["properties"]) == {"code", "name", "level", "parent"}


def test_accept_header_selects_geojson(client):
    response = client.get(
        "/api/v1/areas?level=town&limit=1", headers={"Accept": "application/geo+json"}
    )
    assert response.get_json()["type"] == "FeatureCollection"


def test_one_area_as_feature_has_a_valid_polygon_inside_its_parent(client):
    towns = client.get("/api/v1/areas?level=town&limit=1").get_json()["items"]
    code = towns[0]["code"]
    feature = client.get(f"/api/v1/areas/{code}?format=geojson").get_json()
    assert feature["type"] == "Feature"
    assert feature["properties"]["code"] == code
    town = shape(feature["geometry"])
    district = shape(client.get(f"/api/v1/areas/{DISTRICT}").get_json()["geometry"])
    assert town.is_valid and town.area > 0
    assert district.buffer(1e-9).covers(town)


def test_one_area_as_plain_json(client):
    body = client.get(f"/api/v1/areas/{DISTRICT}").get_json()
    assert body["code"] == DISTRICT
    assert body["level"] == "district"
    assert body["parent"] is None
    assert body["geometry"]["type"] == "MultiPolygon"
    district = shape(body["geometry"])
    assert district.is_valid
    assert district.distance(Point(121.55, 29.82)) < 0.1


def test_unknown_area_is_404_in_the_envelope(client):
    response = client.get("/api/v1/areas/330212999")
    assert response.status_code == 404
    body = response.get_json()
    assert body["error"] == "area_not_found"
    assert body["code"] == 404
    assert body["status"] == "Not Found"


@pytest.mark.parametrize(
    "query, field",
    [
        ("level=county", "level"),
        ("bbox=1,2,3", "bbox"),
        ("bbox=121,29,200,30", "bbox"),
        ("bbox=122,29,121,30", "bbox"),
        ("bbox=a,b,c,d", "bbox"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("parent=abc", "parent"),
        ("format=kml", "format"),
    ],
)
def test_bad_list_queries_are_422_naming_the_field(client, query, field):
    response = client.get(f"/api/v1/areas?{query}")
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "validation_failed"
    assert field in body["errors"]["query"]


def test_forged_cursor_is_422(client):
    response = client.get("/api/v1/areas?cursor=bm90LWEtY3Vyc29y")
    assert response.status_code == 422
    assert response.get_json()["error"] == "invalid_cursor"
