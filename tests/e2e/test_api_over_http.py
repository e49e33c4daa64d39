"""Every endpoint, called over HTTP against gunicorn, its answer read to the end and parsed.

The suite's other tiers call the app through Flask's test client inside a transaction; this
one sees what a phone or a browser sees: the WSGI server, the app context torn down after
each view, streamed bodies sent after the view returned, real commits.
"""

import csv
import io
import json
import math
import uuid
from datetime import UTC, datetime, timedelta

import mapbox_vector_tile
import pytest
from PIL import Image

from gridgov import create_app
from gridgov.extensions import db
from gridgov.services import open311_clients
from gridgov.services.exports import COLUMNS
from tests.helpers import BULK_INCIDENTS_SQL

FIRST_TOWN_MICROGRID = "330212001001001001"  # grid_worker's, in town_supervisor's town
EXPORT_ROWS = 2600  # more than two server-side cursor batches (1,000 rows each)


def iso(moment: datetime) -> str:
    return moment.isoformat()


@pytest.fixture(scope="module")
def spot(e2e_sql) -> dict:
    """A point inside FIRST_TOWN_MICROGRID."""
    [(lon, lat)] = e2e_sql(
        "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(boundary) AS p FROM area"
        " WHERE code = :code) AS s",
        {"code": FIRST_TOWN_MICROGRID},
    )
    return {"lon": lon, "lat": lat}


@pytest.fixture(scope="module")
def report(spot):
    """report(client_id, **fields) → an intake body at `spot`."""

    def build(client_id: str, **extra) -> dict:
        return {
            "client_id": client_id,
            "category": "fire_corridor",
            "description": "楼道堆放杂物 e2e",
            "location": {**spot, "crs": "wgs84"},
            **extra,
        }

    return build


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def _multipart(field: str, filename: str, content_type: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"'
            f"\r\nContent-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


@pytest.fixture(scope="module")
def worker(as_user):
    return as_user("grid_worker")


@pytest.fixture(scope="module")
def supervisor(as_user):
    return as_user("town_supervisor")


@pytest.fixture(scope="module")
def admin(as_user):
    return as_user("admin")


@pytest.fixture(scope="module")
def incident(worker, report):
    answer = worker.post("/api/v1/incidents", json=report(f"e2e-{uuid.uuid4().hex[:12]}"))
    assert answer.status == 201, answer
    return answer.json()


def test_health_readiness_docs_and_pages(anonymous):
    assert anonymous.get("/healthz").json() == {"status": "ok", "database": "ok"}
    assert anonymous.get("/readyz").json()["status"] == "ready"
    spec = anonymous.get("/api/v1/openapi.json")
    assert spec.status == 200 and spec.json()["info"]["title"] == "gridgov"
    docs = anonymous.get("/api/v1/docs")
    assert docs.status == 200 and b"swagger" in docs.body.lower()
    assert anonymous.get("/api/v1/docs/assets/swagger-ui.css").status == 200
    assert anonymous.get("/api/v1/docs/page/swagger-init.js").status == 200
    page = anonymous.get("/map")
    assert page.status == 200 and "网格".encode() in page.body
    assert anonymous.get("/map/static/map.js").status == 200
    editor = anonymous.get("/admin/boundaries")
    assert editor.status == 200 and "边界编辑".encode() in editor.body
    bench = anonymous.get("/workbench")
    assert bench.status == 200 and "案件工作台".encode() in bench.body
    assert anonymous.get("/map/static/workbench.js").status == 200


def test_auth_me_refresh_logout(anonymous):
    client = anonymous.login("grid_head")
    me = client.get("/api/v1/me")
    assert (me.status, me.json()["username"]) == (200, "grid_head")
    refreshed = anonymous.post(
        "/api/v1/auth/refresh", headers={"Authorization": f"Bearer {client.refresh_token}"}
    )
    assert refreshed.status == 200, refreshed
    logout = client.post(
        "/api/v1/auth/logout", json={"refresh_token": refreshed.json()["refresh_token"]}
    )
    assert logout.status == 204, logout
    bad = anonymous.post("/api/v1/auth/login", json={"username": "grid_head", "password": "nope"})
    assert (bad.status, bad.error) == (401, "invalid_credentials")


def test_areas_categories_and_routing(supervisor, spot):
    towns = supervisor.get("/api/v1/areas", params={"level": "town"})
    assert towns.status == 200 and towns.json()["items"]
    area = supervisor.get("/api/v1/areas/330212001", params={"format": "geojson"})
    assert area.json()["properties"]["code"] == "330212001"
    history = supervisor.get("/api/v1/areas/330212001/history")
    assert history.status == 200 and history.json()["items"]
    workers = supervisor.get(f"/api/v1/areas/{FIRST_TOWN_MICROGRID}/workers")
    assert workers.status == 200
    categories = supervisor.get("/api/v1/categories").json()["items"]
    assert "fire_corridor" in {c["code"] for c in categories}
    route = supervisor.get("/api/v1/route", params={**spot, "crs": "wgs84"})
    assert route.status == 200 and route.json()["microgrid"]["code"] == FIRST_TOWN_MICROGRID


def test_intake_replay_conflict_and_batch(worker, incident, report):
    replay = worker.post("/api/v1/incidents", json=report(incident["client_id"]))
    assert (replay.status, replay.json()["id"]) == (200, incident["id"])
    conflict = worker.post(
        "/api/v1/incidents", json=report(incident["client_id"], description="另一件事")
    )
    assert (conflict.status, conflict.error) == (409, "client_id_conflict")
    batch = worker.post(
        "/api/v1/incidents/batch",
        json={"items": [report(f"e2e-b-{uuid.uuid4().hex[:10]}"), {"client_id": "x"}]},
    )
    assert batch.status == 200, batch
    assert [r["status"] for r in batch.json()["results"]] == [201, 422]


def test_reading_incidents_tasks_and_timeline(supervisor, worker, incident):
    listed = supervisor.get("/api/v1/incidents", params={"area": "330212001"})
    assert incident["id"] in {i["id"] for i in listed.json()["items"]}
    as_geojson = supervisor.get("/api/v1/incidents", params={"format": "geojson"})
    assert as_geojson.json()["type"] == "FeatureCollection"
    one = supervisor.get(f"/api/v1/incidents/{incident['id']}")
    assert one.status == 200 and one.headers["ETag"]
    timeline = supervisor.get(f"/api/v1/incidents/{incident['id']}/timeline")
    assert timeline.json()["items"][0]["action"] == "report"
    duplicates = supervisor.get(f"/api/v1/incidents/{incident['id']}/duplicates")
    assert duplicates.status == 200 and isinstance(duplicates.json()["items"], list)
    assert worker.get("/api/v1/me/tasks").status == 200
    queue = supervisor.get("/api/v1/incidents", params={"sort": "deadline", "limit": 5})
    assert queue.status == 200
    counts = supervisor.get("/api/v1/incidents/counts", params={"area": "330212001"})
    assert counts.json()["by_status"].get("reported", 0) >= 1
    assert one.json()["allowed_actions"][0]["action"] == "accept"


def test_the_closed_loop_with_if_match(supervisor, worker, as_user, incident):
    etag = supervisor.get(f"/api/v1/incidents/{incident['id']}").headers["ETag"]
    accepted = supervisor.post(
        f"/api/v1/incidents/{incident['id']}/actions",
        json={"action": "accept"},
        headers={"If-Match": etag},
    )
    assert accepted.status == 200, accepted
    stale = supervisor.post(
        f"/api/v1/incidents/{incident['id']}/actions",
        json={"action": "comment", "note": "旧版本"},
        headers={"If-Match": etag},
    )
    assert (stale.status, stale.error) == (412, "version_mismatch")


def test_photos(worker, incident):
    body, content_type = _multipart("file", "p.png", "image/png", _png())
    uploaded = worker.post("/api/v1/photos", body=body, headers={"Content-Type": content_type})
    assert uploaded.status == 201, uploaded
    photo = worker.get(f"/api/v1/photos/{uploaded.json()['id']}")
    assert photo.status == 200 and photo.body.startswith(b"\x89PNG")


def test_patrols(worker, supervisor, spot):
    # Not earlier: supervisors read the patrols of people on duty in their area when the patrol
    # started, and the demo's assignments began when this run loaded it.
    started_at = datetime.now(UTC)
    patrol = worker.post(
        "/api/v1/patrols",
        json={"client_id": f"e2e-{uuid.uuid4().hex[:10]}", "started_at": iso(started_at)},
    )
    assert patrol.status == 201, patrol
    patrol_id = patrol.json()["id"]
    points = [
        {**spot, "lat": spot["lat"] + i * 0.0002, "t": iso(started_at + timedelta(seconds=i))}
        for i in range(5)
    ]
    track = worker.post(f"/api/v1/patrols/{patrol_id}/track", json={"points": points})
    assert (track.status, track.json()["accepted"]) == (200, 5)
    finished = worker.post(f"/api/v1/patrols/{patrol_id}/finish", json={})
    assert finished.status == 200 and finished.json()["length_m"] > 0
    assert worker.get(f"/api/v1/patrols/{patrol_id}").status == 200
    listed = supervisor.get("/api/v1/patrols", params={"user": worker.user["id"]})
    assert patrol_id in {p["id"] for p in listed.json()["items"]}
    walked = supervisor.get("/api/v1/patrols/map", params={"area": "330212001"})
    assert patrol_id in {f["properties"]["patrol_id"] for f in walked.json()["tracks"]["features"]}


def test_an_admin_adds_and_changes_a_category(admin, worker):
    code = f"e2e_{uuid.uuid4().hex[:8]}"
    limits = {"accept": {"amount": 2, "unit": "working_hours"}}
    body = {"code": code, "name": "测试类别", "group": "测试", "time_limits": limits}
    created = admin.post("/api/v1/categories", json=body)
    assert created.status == 201, created
    assert worker.post("/api/v1/categories", json=body).status == 403
    changed = admin.request("PATCH", f"/api/v1/categories/{code}", json={"active": False})
    assert (changed.status, changed.json()["active"]) == (200, False)
    listed = worker.get("/api/v1/categories").json()["items"]
    assert code not in {c["code"] for c in listed}


def test_people_and_assignments(admin, supervisor):
    username = f"e2e_{uuid.uuid4().hex[:8]}"
    created = admin.post(
        "/api/v1/users",
        json={"username": username, "password": "e2e-long-password-1", "role": "worker"},
    )
    assert created.status == 201, created
    user_id = created.json()["id"]
    assigned = admin.post(
        "/api/v1/assignments",
        json={"user": user_id, "area": FIRST_TOWN_MICROGRID, "duty": "part_time"},
    )
    assert assigned.status == 201, assigned
    assert supervisor.get("/api/v1/assignments", params={"user": user_id}).status == 200
    ended = admin.request("DELETE", f"/api/v1/assignments/{assigned.json()['id']}")
    assert ended.status == 200, ended
    assert supervisor.get("/api/v1/users").status == 200
    assert admin.get(f"/api/v1/users/{user_id}").json()["username"] == username
    patched = admin.request("PATCH", f"/api/v1/users/{user_id}", json={"is_active": False})
    assert (patched.status, patched.json()["is_active"]) == (200, False)
    assert admin.get("/api/v1/audit").status == 200


def test_notifications_and_devices(supervisor, worker, report):
    case = worker.post("/api/v1/incidents", json=report(f"e2e-{uuid.uuid4().hex[:12]}")).json()
    supervisor.post(f"/api/v1/incidents/{case['id']}/actions", json={"action": "accept"})
    dispatched = supervisor.post(
        f"/api/v1/incidents/{case['id']}/actions",
        json={"action": "dispatch", "assignee": worker.user["id"]},
    )
    assert dispatched.status == 200, dispatched
    listed = worker.get("/api/v1/me/notifications", params={"unread": "true"})
    [note] = [n for n in listed.json()["items"] if n["incident"] == case["id"]]
    assert note["kind"] == "dispatched"
    marked = worker.post("/api/v1/me/notifications/read", json={"ids": [note["id"]]})
    assert marked.json() == {"marked": 1}
    device = worker.post(
        "/api/v1/me/devices", json={"kind": "webhook", "url": "http://127.0.0.1:9/push"}
    )
    assert device.status == 201, device
    removed = worker.request("DELETE", f"/api/v1/me/devices/{device.json()['id']}")
    assert removed.status == 204, removed


def test_boundary_change_set_dry_run(admin):
    area = admin.get(f"/api/v1/areas/{FIRST_TOWN_MICROGRID}", params={"format": "geojson"}).json()
    area["properties"] = {
        **area["properties"],
        "name": "改名预演",
        "parent": FIRST_TOWN_MICROGRID[:-3],
    }
    answer = admin.post(
        "/api/v1/boundaries/changes",
        params={"dry_run": "true"},
        json={"type": "FeatureCollection", "features": [area]},
    )
    assert answer.status == 200, answer
    assert (answer.json()["valid"], answer.json()["applied"]) == (True, False)


def test_boundary_edits_and_revert(admin):
    # Far from the first town the other tests report in; the split is reverted at the end.
    grid = "330212105001001"
    m1, m2 = f"{grid}001", f"{grid}002"
    shape = admin.get(f"/api/v1/areas/{m1}", params={"format": "geojson"}).json()["geometry"]
    ring = shape["coordinates"][0][0]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    middle = (min(lons) + max(lons)) / 2
    line = {
        "type": "LineString",
        "coordinates": [[middle, min(lats) - 0.001], [middle, max(lats) + 0.001]],
    }
    dry_runs = {
        "merge": {"codes": [m1, m2]},
        "move-edge": {"codes": [m1, m2], "line": line},
        "redraw": {"code": m1, "geometry": shape},
        "create": {"parent": grid, "geometry": shape, "name": "新微网格"},
        "retire": {"code": m1},
    }
    for operation, body in dry_runs.items():
        answer = admin.post(f"/api/v1/boundaries/edits/{operation}", json=body)
        assert answer.status in (200, 422), (operation, answer)
        assert answer.json().get("applied") in (False, None), (operation, answer)
    split = admin.post(
        "/api/v1/boundaries/edits/split",
        params={"dry_run": "false"},
        json={"code": m1, "line": line},
    )
    assert split.status == 200 and split.json()["applied"], split
    revert = admin.post(
        f"/api/v1/boundaries/changes/{split.json()['changeset']}/revert",
        params={"dry_run": "false"},
    )
    assert revert.status == 200 and revert.json()["applied"], revert
    back = admin.get(f"/api/v1/areas/{m1}", params={"format": "geojson"}).json()["geometry"]
    assert back == shape
    history = admin.get("/api/v1/boundaries/changes", params={"limit": 2}).json()["items"]
    assert [c["id"] for c in history] == [revert.json()["changeset"], split.json()["changeset"]]
    assert history[1]["reverted_by"] == history[0]["id"]
    detail = admin.get(f"/api/v1/boundaries/changes/{split.json()['changeset']}").json()
    assert {f["properties"]["code"] for f in detail["features"]["features"]} >= {m1}
    # Scheduled for next month, then cancelled: the map never changes.
    later = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    pending = admin.post(
        "/api/v1/boundaries/edits/merge",
        params={"dry_run": "false"},
        json={"codes": [m1, m2], "effective_from": later},
    )
    assert pending.status == 200 and pending.json()["status"] == "pending", pending
    cancel = admin.post(f"/api/v1/boundaries/changes/{pending.json()['changeset']}/cancel")
    assert cancel.status == 200 and cancel.json()["status"] == "cancelled", cancel


def test_stats_and_tiles(supervisor, spot):
    indicators = supervisor.get("/api/v1/stats/indicators", params={"area": "330212001"})
    assert indicators.status == 200, indicators
    ranking = supervisor.get("/api/v1/stats/ranking", params={"level": "grid", "format": "csv"})
    assert ranking.status == 200 and ranking.body.startswith(b"\xef\xbb\xbf")
    x, y = _tile_of(spot["lon"], spot["lat"], 14)
    tile = supervisor.get(f"/tiles/microgrids/14/{x}/{y}.mvt")
    assert tile.status == 200
    assert mapbox_vector_tile.decode(tile.body)["microgrids"]["features"]


def test_open311(anonymous, e2e_database, spot):
    app = create_app({"SQLALCHEMY_DATABASE_URI": e2e_database})
    with app.app_context():
        api_key = open311_clients.create_client(db.session, name="e2e 热线").api_key
        db.session.commit()
        db.engine.dispose()
    assert anonymous.get("/open311/v2/discovery.json").status == 200
    services = anonymous.get("/open311/v2/services.json").json()
    code = services[0]["service_code"]
    assert anonymous.get(f"/open311/v2/services/{code}.xml").status == 200
    form = f"api_key={api_key}&service_code={code}&lat={spot['lat']}&long={spot['lon']}"
    created = anonymous.post(
        "/open311/v2/requests.json",
        body=(form + "&description=路灯不亮").encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert created.status == 201, created
    request_id = created.json()[0]["service_request_id"]
    assert anonymous.get("/open311/v2/requests.json").status == 200
    one = anonymous.get(f"/open311/v2/requests/{request_id}.json")
    assert one.json()[0]["service_request_id"] == request_id


@pytest.fixture(scope="module")
def many_incidents(e2e_sql, worker):
    e2e_sql(
        BULK_INCIDENTS_SQL,
        {
            "reporter": worker.user["id"],
            "microgrid": FIRST_TOWN_MICROGRID,
            "count": EXPORT_ROWS,
            "description": '导出测试，"引号"和逗号,换行',
            "prefix": f"e2e-export-{uuid.uuid4().hex[:6]}",
        },
    )
    town_count = (
        "SELECT count(*) FROM incident i JOIN area t ON t.id = i.town_id WHERE t.code = :town"
    )
    return e2e_sql(town_count, {"town": "330212001"})[0][0]


def test_csv_export_streams_every_row_to_the_end(supervisor, many_incidents):
    answer = supervisor.get("/api/v1/exports/incidents.csv")  # IncompleteRead if cut short
    assert answer.status == 200, answer
    assert answer.headers["Content-Type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(answer.body.decode("utf-8-sig"), newline=""))
    rows = list(reader)
    assert tuple(reader.fieldnames) == COLUMNS
    assert len(rows) == many_incidents >= EXPORT_ROWS
    assert len({row["id"] for row in rows}) == len(rows)


def test_geojson_export_is_complete_json(supervisor, many_incidents):
    answer = supervisor.get("/api/v1/exports/incidents.geojson", params={"area": "330212001"})
    assert answer.status == 200, answer
    collection = json.loads(answer.body)
    assert collection["type"] == "FeatureCollection"
    assert len(collection["features"]) == many_incidents


def test_export_of_an_unknown_area_is_an_envelope_not_a_broken_download(supervisor):
    answer = supervisor.get("/api/v1/exports/incidents.csv", params={"area": "330212999"})
    assert (answer.status, answer.error) == (404, "area_not_found")
