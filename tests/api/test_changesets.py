"""The history of change sets (GET /api/v1/boundaries/changes, /changes/{id}) and scheduled change
sets: stored as pending, applied by `flask boundaries apply-due` when due (twice is once), checked
again then, cancelled before; reports arriving around the switch time."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import shapely
from shapely.geometry import mapping
from sqlalchemy import select, update

from gridgov.models import Area, AuditEvent, BoundaryChangeset
from tests.api.test_boundaries import _map_fingerprint
from tests.api.test_boundary_edits import M1, M2, M3, shape_of

LATER = timedelta(days=30)


@pytest.fixture
def edit(client, auth):
    def send(operation, body, dry_run=False, user="admin"):
        return client.post(
            f"/api/v1/boundaries/edits/{operation}",
            json=body,
            query_string={"dry_run": str(dry_run).lower()},
            headers=auth(user),
        )

    return send


@pytest.fixture
def api(client, auth):
    def call(method, path, user="admin", **kwargs):
        return client.open(f"/api/v1/boundaries{path}", method=method, headers=auth(user), **kwargs)

    return call


def report(client, auth, point, client_id):
    response = client.post(
        "/api/v1/incidents",
        json={
            "client_id": client_id,
            "category": "env_garbage",
            "description": "垃圾堆放",
            "location": {"lon": point.x, "lat": point.y},
        },
        headers=auth("grid_worker"),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def routed_now(client, auth, incident_id):
    body = client.get(f"/api/v1/incidents/{incident_id}", headers=auth("admin")).get_json()
    return body["routing"]["microgrid"]["code"]


def route_at(client, auth, point, at):
    body = client.get(
        "/api/v1/route",
        query_string={"lon": point.x, "lat": point.y, "at": at.isoformat()},
        headers=auth("admin"),
    ).get_json()
    return body["microgrid"]["code"] if body["microgrid"] else None


def fall_due(session, changeset_id) -> datetime:
    """Move a pending set's time to just now, as if the month had passed."""
    due = datetime.now(UTC) - timedelta(milliseconds=200)
    session.execute(
        update(BoundaryChangeset)
        .where(BoundaryChangeset.id == changeset_id)
        .values(effective_from=due)
    )
    session.commit()
    return due


def apply_due(app):
    return app.test_cli_runner().invoke(args=["boundaries", "apply-due"])


def test_history_lists_newest_first_with_counts_and_revert_links(edit, api, db_session):
    merged = edit("merge", {"codes": [M1, M2], "description": "合并"}).get_json()
    assert merged["status"] == "applied"
    revert = api(
        "POST", f"/changes/{merged['changeset']}/revert", query_string={"dry_run": "false"}
    )
    reverting = revert.get_json()["changeset"]
    page = api("GET", "/changes", query_string={"limit": 2}).get_json()
    first, second = page["items"]
    assert (first["id"], second["id"]) == (reverting, merged["changeset"])
    assert first["reverts"] == merged["changeset"] and second["reverted_by"] == reverting
    assert second["status"] == "applied" and second["author"] == "admin"
    assert second["description"] == "合并" and second["source"] == "edit:merge"
    assert second["counts"]["retired"] == 1 and second["counts"]["updated"] == 1
    assert page["next_cursor"]
    rest = api("GET", "/changes", query_string={"cursor": page["next_cursor"]}).get_json()
    assert rest["items"][0]["id"] < second["id"]  # the demo load
    assert rest["items"][-1]["source"] == "demo"

    detail = api("GET", f"/changes/{merged['changeset']}").get_json()
    actions = {
        f["properties"]["code"]: f["properties"]["action"] for f in detail["features"]["features"]
    }
    assert actions == {M1: "upsert", M2: "retire"}
    upsert = next(f for f in detail["features"]["features"] if f["properties"]["code"] == M1)
    assert upsert["geometry"]["type"] == "MultiPolygon"
    assert api("GET", "/changes/999999").get_json()["error"] == "changeset_not_found"
    assert api("GET", "/changes", user="town_supervisor").status_code == 403
    assert api("GET", "/changes", query_string={"status": "nope"}).status_code == 422


def test_a_scheduled_change_waits_then_applies_once_with_reports_around_it(
    app, client, auth, edit, api, db_session
):
    point = shape_of(db_session, M2).representative_point()
    before_time = datetime.now(UTC)
    early = report(client, auth, point, "before-schedule")
    assert early["routing"]["microgrid"]["code"] == M2
    when = datetime.now(UTC) + LATER
    preview = edit("merge", {"codes": [M1, M2], "effective_from": when.isoformat()}, dry_run=True)
    assert preview.get_json()["status"] is None and preview.get_json()["changeset"] is None
    scheduled = edit("merge", {"codes": [M1, M2], "effective_from": when.isoformat()}).get_json()
    assert (scheduled["valid"], scheduled["applied"], scheduled["status"]) == (
        True,
        False,
        "pending",
    )
    # The impact it would have now, for the administrator; the map has not changed.
    assert scheduled["impact"]["moves"] == [{"from": M2, "to": M1, "count": 1}]
    assert db_session.scalar(select(Area.retired_at).where(Area.code == M2)) is None
    pending_id = scheduled["changeset"]
    listed = api("GET", "/changes", query_string={"status": "pending"}).get_json()["items"]
    assert [c["id"] for c in listed] == [pending_id]
    assert datetime.fromisoformat(listed[0]["effective_from"]) == when
    detail = api("GET", f"/changes/{pending_id}").get_json()
    assert {f["properties"]["code"] for f in detail["features"]["features"]} == {M1, M2}

    # /route?at= answers from the map of each date: after the switch the scheduled one.
    assert route_at(client, auth, point, when - timedelta(days=1)) == M2
    assert route_at(client, auth, point, when + timedelta(days=1)) == M1

    # Not due yet: the job does nothing, reports route on the current map.
    assert "0 due" in apply_due(app).output
    assert report(client, auth, point, "while-pending")["routing"]["microgrid"]["code"] == M2

    due = fall_due(db_session, pending_id)
    # Reported after the switch time, before the job ran: routed on the old map for now.
    between = report(client, auth, point, "after-due-before-job")
    assert between["routing"]["microgrid"]["code"] == M2
    first = apply_due(app)
    assert first.exit_code == 0, first.output
    assert f"changeset {pending_id}: applied" in first.output
    second = apply_due(app)
    assert second.exit_code == 0 and "0 due" in second.output
    db_session.expire_all()
    changeset = db_session.get(BoundaryChangeset, pending_id)
    assert changeset.status == "applied" and changeset.effective_from == due
    assert db_session.scalar(select(Area.retired_at).where(Area.code == M2)) == due
    # Every open case reported before, on the old map, follows the new lines.
    for case in (early, between):
        assert routed_now(client, auth, case["id"]) == M1
    assert report(client, auth, point, "after-job")["routing"]["microgrid"]["code"] == M1
    # The map of every date: before the switch the old one, after it the new one.
    assert route_at(client, auth, point, before_time) == M2
    assert route_at(client, auth, point, due - timedelta(seconds=1)) == M2
    assert route_at(client, auth, point, due + timedelta(seconds=1)) == M1
    # Applied through the ordinary core: it can be reverted like any other.
    reverted = api("POST", f"/changes/{pending_id}/revert", query_string={"dry_run": "false"})
    assert reverted.status_code == 200 and reverted.get_json()["applied"]


def test_route_at_a_date_after_a_scheduled_split_names_the_new_area(client, auth, edit, db_session):
    m1 = shape_of(db_session, M1)
    minx, miny, maxx, maxy = m1.bounds
    x = (minx + maxx) / 2
    line = {"type": "LineString", "coordinates": [[x, miny - 0.001], [x, maxy + 0.001]]}
    when = datetime.now(UTC) + LATER
    body = edit("split", {"code": M1, "line": line, "effective_from": when.isoformat()}).get_json()
    assert body["status"] == "pending", body
    (created,) = [a for a in body["impact"]["area_changes"] if a["action"] == "created"]
    piece = next(
        f
        for f in body["geometry"]["after"]["features"]
        if f["properties"]["code"] == created["code"]
    )
    inside = shapely.geometry.shape(piece["geometry"]).representative_point()
    answer = client.get(
        "/api/v1/route",
        query_string={"lon": inside.x, "lat": inside.y, "at": (when + LATER).isoformat()},
        headers=auth("admin"),
    ).get_json()
    assert answer["microgrid"] == {"code": created["code"], "name": created["name"]}
    assert answer["grid"]["code"] == M1[:-3]
    assert route_at(client, auth, inside, datetime.now(UTC)) == M1


def test_a_scheduled_change_that_no_longer_fits_fails_clearly(app, edit, api, db_session):
    when = (datetime.now(UTC) + LATER).isoformat()
    scheduled = edit("merge", {"codes": [M1, M2], "effective_from": when}).get_json()
    # Meanwhile M2 is merged into M3 now: the scheduled merge of M1 and M2 no longer fits.
    assert edit("merge", {"codes": [M2, M3], "code": M3}).get_json()["applied"]
    fall_due(db_session, scheduled["changeset"])
    fingerprint = _map_fingerprint(db_session)
    result = apply_due(app)
    assert result.exit_code == 1
    assert f"changeset {scheduled['changeset']}: FAILED" in result.output
    db_session.expire_all()
    assert _map_fingerprint(db_session) == fingerprint
    listed = api("GET", f"/changes/{scheduled['changeset']}").get_json()
    assert listed["status"] == "failed"
    assert {p["kind"] for p in listed["failure"]["problems"]} >= {"unknown_area"}
    assert (
        db_session.scalar(select(AuditEvent.outcome).where(AuditEvent.action == "changeset_failed"))
        == "failed"
    )
    assert apply_due(app).exit_code == 0  # a failed set is not tried again


def test_cancel_a_pending_change(app, edit, api, db_session):
    when = (datetime.now(UTC) + LATER).isoformat()
    pending_id = edit("merge", {"codes": [M1, M2], "effective_from": when}).get_json()["changeset"]
    assert api("POST", f"/changes/{pending_id}/revert").get_json()["error"] == (
        "changeset_not_applied"
    )
    assert api("POST", f"/changes/{pending_id}/cancel", user="town_supervisor").status_code == 403
    cancelled = api("POST", f"/changes/{pending_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    again = api("POST", f"/changes/{pending_id}/cancel")
    assert (again.status_code, again.get_json()["error"]) == (409, "changeset_not_pending")
    assert api("POST", "/changes/999999/cancel").status_code == 404
    fall_due(db_session, pending_id)
    assert "0 due" in apply_due(app).output
    assert db_session.scalar(select(Area.retired_at).where(Area.code == M2)) is None


def test_schedule_from_the_cli(app, db_session, tmp_path):
    merged = shape_of(db_session, M1).union(shape_of(db_session, M2))

    body = {
        "type": "FeatureCollection",
        "effective_from": (datetime.now(UTC) + LATER).isoformat(),
        "features": [
            {
                "type": "Feature",
                "geometry": mapping(merged),
                "properties": {"code": M1, "parent": M1[:-3]},
            },
            {"type": "Feature", "geometry": None, "properties": {"code": M2, "action": "retire"}},
        ],
    }
    path = tmp_path / "later.geojson"
    path.write_text(json.dumps(body), encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["boundaries", "import", str(path), "--apply"])
    assert result.exit_code == 0, result.output
    assert "scheduled as changeset" in result.output
    assert db_session.scalar(select(Area.retired_at).where(Area.code == M2)) is None
