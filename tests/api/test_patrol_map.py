"""GET /patrols/map: a day's tracks in an area and its micro-grids not patrolled that week."""

from datetime import UTC, datetime, timedelta

from tests.api.test_patrols import area_shape, finish, fixes, started, track

GRID = "330212001001001"  # the demo worker's grid: three micro-grids
CHINA = timedelta(hours=8)


def _map(client, headers, area=GRID, **query):
    return client.get("/api/v1/patrols/map", query_string={"area": area, **query}, headers=headers)


def test_a_days_track_and_the_microgrids_the_week_left_unpatrolled(client, auth):
    worker = auth("grid_worker")
    first = area_shape(client, worker, f"{GRID}001").representative_point()
    second = area_shape(client, worker, f"{GRID}002").representative_point()
    # Not before the demo worker's assignment began (when the test database was loaded).
    begun = datetime.now(UTC)
    patrol = started(client, worker, client_id="map-1", started_at=begun)
    walked = fixes([(first.x, first.y), (second.x, second.y)], begun + timedelta(minutes=1))
    assert track(client, worker, patrol["id"], walked).status_code == 200
    assert finish(client, worker, patrol["id"]).status_code == 200

    today = (datetime.now(UTC) + CHINA).date()
    body = _map(client, auth("town_supervisor"), day=today.isoformat()).get_json()
    assert body["day"] == today.isoformat() and body["week"]["to"] == today.isoformat()
    [line] = [f for f in body["tracks"]["features"] if f["properties"]["patrol_id"] == patrol["id"]]
    assert line["geometry"]["type"] == "LineString" and line["properties"]["points"] == 2
    assert line["properties"]["worker"] == "专职网格员"
    assert body["microgrids"] == 3
    left = {f["properties"]["code"] for f in body["unpatrolled"]["features"]}
    assert f"{GRID}001" not in left and f"{GRID}002" not in left and left <= {f"{GRID}003"}

    # Another day shows no track; the week before that patrol leaves everything unpatrolled.
    week_before = (today - timedelta(days=7)).isoformat()
    earlier = _map(client, auth("town_supervisor"), day=week_before).get_json()
    assert earlier["tracks"]["features"] == []
    assert len(earlier["unpatrolled"]["features"]) == 3


def test_the_patrol_map_stays_in_the_callers_scope(client, auth):
    assert _map(client, auth("town_supervisor"), area="330212002").status_code == 403
    assert _map(client, auth("town_supervisor"), area="330212001999").status_code == 404
    assert _map(client, auth("town_supervisor"), day="2026-02-30").status_code == 422
