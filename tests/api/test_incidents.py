"""POST /api/v1/incidents and /batch: routing, validation, idempotency (also under real
concurrency), and GET /api/v1/incidents/{id}."""

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, select, text

from geo.crs import from_wgs84
from gridgov.extensions import db
from gridgov.models import Area, Assignment, Incident, IncidentEvent, User
from gridgov.spatial import from_db
from tests.helpers import configure, map_locked

WORKER_MICROGRID = "330212001001001001"


@pytest.fixture(scope="module")
def spot(app):
    """A WGS-84 point inside the demo grid_worker's micro-grid."""
    with app.app_context():
        boundary = db.session.scalar(select(Area.boundary).where(Area.code == WORKER_MICROGRID))
        db.session.remove()
    point = from_db(boundary).representative_point()
    return point.x, point.y


def report(spot, **overrides):
    body = {
        "client_id": str(uuid.uuid4()),
        "category": "env_garbage",
        "description": "小区门口暴露垃圾",
        "location": {"lon": spot[0], "lat": spot[1], "accuracy_m": 8},
        "occurred_at": "2026-11-27T09:15:00+08:00",
    }
    body.update(overrides)
    return body


@pytest.fixture
def post(client, auth):
    def send(body, user="grid_worker", url="/api/v1/incidents"):
        return client.post(url, json=body, headers=auth(user))

    return send


def test_report_is_routed_stored_and_timed(post, spot, db_session):
    response = post(report(spot))
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "reported"
    assert body["routing"]["method"] == "covered"
    assert body["routing"]["microgrid"]["code"] == WORKER_MICROGRID
    assert body["routing"]["town"]["code"] == WORKER_MICROGRID[:9]
    assert body["category"] == {"code": "env_garbage", "name": "暴露垃圾"}
    assert body["priority"] == "normal"  # the category's default
    assert body["deadline"] is not None and body["overdue"] is False
    assert body["location"]["input"] == {
        "lon": spot[0],
        "lat": spot[1],
        "crs": "wgs84",
        "accuracy_m": 8,
    }
    assert body["ref"] == f"GG{body['id']:08d}"
    assert response.headers["ETag"] == f'"{body["id"]}-1"'
    events = db_session.scalars(
        select(IncidentEvent).where(IncidentEvent.incident_id == body["id"])
    ).all()
    assert [(e.action, e.to_status) for e in events] == [("report", "reported")]


def test_replay_returns_200_and_the_same_body(post, spot, db_session):
    body = report(spot)
    first = post(body)
    second = post(body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.get_json() == first.get_json()
    count = db_session.scalar(
        select(func.count()).select_from(Incident).where(Incident.client_id == body["client_id"])
    )
    assert count == 1


def test_same_client_id_with_other_content_is_409(post, spot):
    body = report(spot)
    assert post(body).status_code == 201
    response = post({**body, "description": "something else"})
    assert response.status_code == 409
    assert response.get_json()["error"] == "client_id_conflict"


def test_client_ids_are_per_reporter(post, spot):
    body = report(spot)
    first = post(body, user="grid_worker").get_json()
    second = post(body, user="grid_head").get_json()
    assert first["id"] != second["id"]


def test_resolved_on_site_enters_at_resolved_awaiting_verification(post, spot):
    body = post(report(spot, resolved_on_site=True)).get_json()
    assert body["status"] == "resolved"
    assert body["resolved_on_site"] is True
    assert body["deadline"] is not None


def test_gcj02_location_is_stored_as_its_wgs84_truth(post, spot):
    gcj_lon, gcj_lat = from_wgs84(*spot, "gcj02")
    body = post(report(spot, location={"lon": gcj_lon, "lat": gcj_lat, "crs": "gcj02"})).get_json()
    assert abs(body["location"]["lon"] - spot[0]) < 1e-7
    assert abs(body["location"]["lat"] - spot[1]) < 1e-7
    assert body["location"]["input"]["crs"] == "gcj02"
    assert body["location"]["input"]["lon"] == gcj_lon
    assert body["routing"]["microgrid"]["code"] == WORKER_MICROGRID


def test_report_far_outside_is_accepted_unrouted(post, spot):
    response = post(report(spot, location={"lon": 120.2, "lat": 30.25}))  # Hangzhou
    assert response.status_code == 201
    routing = response.get_json()["routing"]
    assert routing["method"] == "unrouted"
    assert routing["grid"] is None
    assert routing["district"]["code"] == "330212"


@pytest.mark.parametrize(
    "overrides, status, error",
    [
        ({"category": "no_such_thing"}, 422, "unknown_category"),
        ({"location": {"lon": 29.82, "lat": 121.55}}, 422, "swapped_coordinates"),
        ({"location": {"lon": 181, "lat": 29.8}}, 422, "out_of_range"),
        ({"location": {"lon": "121.5", "lat": 29.8}}, 422, "not_a_number"),
        ({"location": {"lon": None, "lat": 29.8}}, 422, "validation_failed"),
        ({"location": {"lon": 121.5, "lat": 29.8, "crs": "epsg3857"}}, 422, "validation_failed"),
        ({"location": {"lat": 29.8}}, 422, "validation_failed"),
        ({"location": None}, 422, "validation_failed"),
        ({"description": ""}, 422, "validation_failed"),
        ({"description": "   "}, 422, "validation_failed"),
        ({"description": "x" * 2001}, 422, "validation_failed"),
        ({"client_id": "has spaces"}, 422, "validation_failed"),
        ({"client_id": "x" * 65}, 422, "validation_failed"),
        ({"occurred_at": "2026-11-27T09:15:00"}, 422, "validation_failed"),
        ({"occurred_at": "2999-01-01T00:00:00+08:00"}, 422, "occurred_in_future"),
        ({"priority": "whenever"}, 422, "validation_failed"),
        ({"photos": ["../../etc/passwd"]}, 422, "validation_failed"),
        ({"unexpected": 1}, 422, "validation_failed"),
    ],
)
def test_bad_reports_are_refused_with_a_stable_code(post, spot, overrides, status, error):
    response = post(report(spot, **overrides))
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"] == error


def test_non_json_body_is_refused(client, auth):
    response = client.post(
        "/api/v1/incidents",
        data="lon=1",
        headers={**auth("grid_worker"), "Content-Type": "text/plain"},
    )
    assert response.status_code in (415, 422)
    assert response.get_json()["error"] in ("unsupported_media_type", "validation_failed")


def test_batch_answers_each_item_and_keeps_the_good_ones(post, spot, db_session):
    replayed = report(spot)
    assert post(replayed).status_code == 201
    items = [
        report(spot),
        replayed,
        {**replayed, "description": "changed"},
        report(spot, location={"lon": 29.82, "lat": 121.55}),
        report(spot, category="nope"),
        "not an object",
        report(spot),
    ]
    response = post({"items": items}, url="/api/v1/incidents/batch")
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == [201, 200, 409, 422, 422, 422, 201]
    assert results[2]["error"] == "client_id_conflict"
    assert results[4]["error"] == "unknown_category"
    stored = db_session.scalars(
        select(Incident.client_id).where(
            Incident.client_id.in_([items[0]["client_id"], items[6]["client_id"]])
        )
    ).all()
    assert len(stored) == 2


def _stored(session, client_ids):
    return session.scalar(
        select(func.count()).select_from(Incident).where(Incident.client_id.in_(client_ids))
    )


def test_report_waits_for_a_boundary_change_only_so_long(post, spot, app, db_session, monkeypatch):
    configure(monkeypatch, app, MAP_LOCK_WAIT_MS=300)
    body = report(spot)
    with map_locked(app):
        started = time.monotonic()
        busy = post(body)
        waited = time.monotonic() - started
    assert busy.status_code == 503, busy.get_json()
    assert busy.get_json()["error"] == "map_busy"
    assert busy.get_json()["details"]["retry_after"] == 5
    assert busy.headers["Retry-After"] == "5"
    assert 0.3 <= waited < 2.0
    db_session.rollback()  # the request's teardown does this when its app context ends
    assert _stored(db_session, [body["client_id"]]) == 0
    assert post(body).status_code == 201  # the map is free again
    # The bound was for the map lock only: the rest of the transaction has its own setting.
    assert db_session.execute(text("SHOW lock_timeout")).scalar() == "0"


def test_batch_waits_for_the_map_once(post, spot, app, db_session, monkeypatch):
    configure(monkeypatch, app, MAP_LOCK_WAIT_MS=1000)
    swapped = report(spot, location={"lon": 29.82, "lat": 121.55})  # refused as it is parsed
    items = [report(spot), report(spot), swapped, report(spot)]
    with map_locked(app):
        started = time.monotonic()
        response = post({"items": items}, url="/api/v1/incidents/batch")
        waited = time.monotonic() - started
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == [503, 503, 422, 503]
    assert [r["error"] for r in results] == [
        "map_busy",
        "map_busy",
        "swapped_coordinates",  # its field message's code, as on POST /incidents
        "map_busy",
    ]
    assert [r["client_id"] for r in results] == [item["client_id"] for item in items]
    assert 1.0 <= waited < 1.9  # one wait, not three
    assert _stored(db_session, [item["client_id"] for item in items]) == 0


def test_batch_size_is_limited(post, spot):
    response = post({"items": [report(spot) for _ in range(101)]}, url="/api/v1/incidents/batch")
    assert response.status_code == 422
    assert response.get_json()["error"] == "batch_too_large"
    assert post({"items": []}, url="/api/v1/incidents/batch").status_code == 422


def test_get_incident_is_scoped(post, spot, client, auth, db_session, demo_users):
    incident_id = post(report(spot)).get_json()["id"]
    url = f"/api/v1/incidents/{incident_id}"
    for user in ("grid_worker", "grid_head", "town_supervisor", "district_supervisor", "admin"):
        assert client.get(url, headers=auth(user)).status_code == 200, user
    # A supervisor of another town and a worker elsewhere see nothing, as for a made-up id.
    other_town = db_session.scalar(select(Area).where(Area.code == "330212002"))
    stranger = User(username="other_sup", role="supervisor", password_hash="x")
    db_session.add(stranger)
    db_session.flush()
    db_session.add(
        Assignment(
            user_id=stranger.id, area_id=other_town.id, duty="supervisor", active_from=func.now()
        )
    )
    db_session.flush()
    from tests.helpers import bearer

    hidden = client.get(url, headers=bearer(client.application, stranger))
    missing = client.get("/api/v1/incidents/999999999", headers=auth("admin"))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.get_json()["error"] == missing.get_json()["error"] == "incident_not_found"


def test_concurrent_identical_submissions_make_one_incident(app, demo_users, spot):
    """Eight phones' worth of retries at the same instant, each on its own connection."""
    from tests.helpers import bearer

    headers = bearer(app, demo_users["grid_worker"])
    body = report(spot)
    barrier = threading.Barrier(8)
    answers = []

    def submit():
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/v1/incidents", json=body, headers=headers)
        answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200] * 7 + [201]
        assert len({payload["id"] for _, payload in answers}) == 1
        engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.connect() as conn:
            count = conn.execute(
                text("SELECT count(*) FROM incident WHERE client_id = :c"), {"c": body["client_id"]}
            ).scalar()
        assert count == 1
    finally:
        with create_engine(app.config["SQLALCHEMY_DATABASE_URI"]).begin() as conn:
            ids = "SELECT id FROM incident WHERE client_id = :c"
            conn.execute(
                text(f"DELETE FROM incident_event WHERE incident_id IN ({ids})"),
                {"c": body["client_id"]},
            )
            conn.execute(
                text("DELETE FROM incident WHERE client_id = :c"), {"c": body["client_id"]}
            )


def test_report_proposes_the_on_duty_grid_head(post, spot, demo_users):
    body = post(report(spot)).get_json()
    assert body["proposed_handler_id"] == demo_users["grid_head"].id
    assert body["handler_id"] is None  # a proposal; dispatch decides


def test_report_made_on_patrol_links_to_it(post, spot, client, auth):
    patrol = client.post(
        "/api/v1/patrols",
        json={
            "client_id": "p-1",
            "started_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        },
        headers=auth("grid_worker"),
    ).get_json()
    body = post(report(spot, patrol_id=patrol["id"])).get_json()
    assert body["patrol_id"] == patrol["id"]
    other = post(report(spot, patrol_id=patrol["id"]), user="grid_head")
    assert other.status_code == 422
    assert other.get_json()["error"] == "patrol_not_attachable"


def test_report_with_photos_links_them(post, spot, client, auth, app, tmp_path, monkeypatch):
    import io

    from PIL import Image

    configure(monkeypatch, app, UPLOAD_DIR=tmp_path)
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, "JPEG")
    upload = client.post(
        "/api/v1/photos",
        data={"file": (io.BytesIO(buffer.getvalue()), "x.jpg")},
        headers=auth("grid_worker"),
        content_type="multipart/form-data",
    )
    photo_id = upload.get_json()["id"]
    body = post(report(spot, photos=[photo_id])).get_json()
    assert body["photos"] == [photo_id]
    stolen = post(report(spot, photos=[photo_id]), user="grid_head")
    assert stolen.get_json()["error"] == "photo_not_attachable"


def test_categories_list_what_a_phone_can_report(client, auth):
    items = client.get("/api/v1/categories", headers=auth("grid_worker")).get_json()["items"]
    codes = {item["code"] for item in items}
    assert {"env_garbage", "fraud_warning", "fire_ebike"} <= codes
    garbage = next(item for item in items if item["code"] == "env_garbage")
    assert garbage["group"] == "环境卫生"
    assert garbage["time_limits"]["handle"] == {"amount": 4, "unit": "working_hours"}
