"""Boundary change sets: split, merge and edge move through the API and the CLI, the bad-input
corpus, history, routing as of a date, and a redraw while reports arrive."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import shapely
from shapely.geometry import MultiPolygon, mapping
from sqlalchemy import create_engine, select, text

from gridgov.extensions import db
from gridgov.models import Area, Incident, IncidentEvent
from gridgov.services import boundaries as boundary_service
from gridgov.spatial import from_db
from tests.factories import make_assignment, make_incident
from tests.helpers import TEST_SETTINGS, TOLERANCES, bearer, map_locked

COMMUNITY = "330212003001"
GRID = "330212003001001"
M1, M2, M3 = (f"{GRID}00{i}" for i in (1, 2, 3))
NEW_GRID = "330212003001003"
NEW_MICROGRID = f"{NEW_GRID}001"


def shape_of(session, code) -> MultiPolygon:
    return from_db(session.scalar(select(Area.boundary).where(Area.code == code)))


def feature(code, geometry, name=None, action="upsert", **props):
    properties = {"code": code, "parent": code[:-3] if len(code) > 6 else None, "action": action}
    if name:
        properties["name"] = name
    properties.update(props)
    return {
        "type": "Feature",
        "geometry": mapping(geometry) if geometry is not None else None,
        "properties": properties,
    }


def collection(*features, **members):
    return {"type": "FeatureCollection", "features": list(features), **members}


@pytest.fixture
def post_changes(client, auth):
    def send(body, dry_run=True, user="admin", **query):
        params = {"dry_run": str(dry_run).lower(), **query}
        return client.post(
            "/api/v1/boundaries/changes", json=body, query_string=params, headers=auth(user)
        )

    return send


def _merge(session):
    merged = shapely.union_all([shape_of(session, M1), shape_of(session, M2)])
    return collection(
        feature(M1, merged), feature(M2, None, action="retire"), description="merge m1+m2"
    )


def _routed_code(session, incident_id):
    return session.execute(
        text("SELECT a.code FROM incident i JOIN area a ON a.id = i.microgrid_id WHERE i.id = :i"),
        {"i": incident_id},
    ).scalar()


def test_merge_dry_run_then_apply(post_changes, db_session, demo_users):
    reporter = demo_users["grid_worker"]
    open_case = make_incident(db_session, reporter=reporter, microgrid_code=M2)
    closed_case = make_incident(db_session, reporter=reporter, microgrid_code=M2, status="closed")
    body = _merge(db_session)

    preview = post_changes(body, dry_run=True, ids="true").get_json()
    assert preview["valid"] is True, preview["problems"]
    assert preview["applied"] is False and preview["changeset"] is None
    assert preview["impact"]["moves"] == [{"from": M2, "to": M1, "count": 1}]
    assert preview["impact"]["incident_ids"] == [open_case.id]
    assert preview["impact"]["cases"] == [{"id": open_case.id, "from": M2, "to": M1}]
    assert _routed_code(db_session, open_case.id) == M2  # nothing changed
    assert db_session.scalar(select(Area.retired_at).where(Area.code == M2)) is None

    applied = post_changes(body, dry_run=False).get_json()
    assert applied["applied"] is True and applied["changeset"]
    assert applied["impact"] == {**preview["impact"], "incident_ids": None, "cases": None}
    assert _routed_code(db_session, open_case.id) == M1
    assert _routed_code(db_session, closed_case.id) == M2  # history stays true
    db_session.expire_all()
    incident = db_session.get(Incident, open_case.id)
    assert incident.original_microgrid_id != incident.microgrid_id
    assert incident.version == 2
    reroute = db_session.scalar(
        select(IncidentEvent).where(
            IncidentEvent.incident_id == open_case.id, IncidentEvent.action == "reroute"
        )
    )
    assert reroute.data == {"changeset": applied["changeset"], "from": M2, "to": M1}
    assert db_session.scalar(select(Area.retired_at).where(Area.code == M2)) is not None


def test_split_a_grid_moves_a_microgrid_to_a_new_grid(post_changes, db_session, demo_users):
    case = make_incident(db_session, reporter=demo_users["admin"], microgrid_code=M3)
    m1, m2, m3 = (shape_of(db_session, code) for code in (M1, M2, M3))
    body = collection(
        feature(GRID, shapely.union_all([m1, m2])),
        feature(NEW_GRID, m3, name="新拆分网格"),
        feature(NEW_MICROGRID, m3, name="新拆分网格第1微网格"),
        feature(M3, None, action="retire"),
    )
    preview = post_changes(body).get_json()
    assert preview["valid"], preview["problems"]
    assert preview["impact"]["areas"] == {"created": 2, "updated": 1, "retired": 1, "unchanged": 0}
    result = post_changes(body, dry_run=False).get_json()
    assert result["impact"]["moves"] == [{"from": M3, "to": NEW_MICROGRID, "count": 1}]
    assert _routed_code(db_session, case.id) == NEW_MICROGRID
    grid_of_case = db_session.execute(
        text("SELECT a.code FROM incident i JOIN area a ON a.id = i.grid_id WHERE i.id = :i"),
        {"i": case.id},
    ).scalar()
    assert grid_of_case == NEW_GRID


def test_edge_move_between_neighbours(post_changes, db_session, demo_users):
    m1, m2 = shape_of(db_session, M1), shape_of(db_session, M2)
    shared = m1.boundary.intersection(m2.boundary)
    assert shared.length > 0, "the demo micro-grids 1 and 2 must be neighbours"
    strip = m2.intersection(shared.buffer(0.0003))  # about 30 m of m2 along the shared edge
    inside_strip = strip.representative_point()
    case = make_incident(
        db_session,
        reporter=demo_users["admin"],
        microgrid_code=M2,
        location=f"SRID=4326;POINT({inside_strip.x} {inside_strip.y})",
    )
    body = collection(feature(M1, m1.union(strip)), feature(M2, m2.difference(strip)))
    result = post_changes(body, dry_run=False).get_json()
    assert result["valid"], result["problems"]
    assert result["impact"]["moves"] == [{"from": M2, "to": M1, "count": 1}]
    assert _routed_code(db_session, case.id) == M1


def test_history_and_routing_as_of_a_past_date(post_changes, client, auth, db_session):
    point = shape_of(db_session, M2).representative_point()
    before = datetime.now(UTC)
    time.sleep(0.01)
    post_changes(_merge(db_session), dry_run=False)
    history = client.get(f"/api/v1/areas/{M1}/history", headers=auth("admin")).get_json()
    assert len(history["items"]) == 2
    assert history["items"][0]["valid_to"] is None
    assert history["items"][1]["valid_to"] == history["items"][0]["valid_from"]
    assert history["items"][0]["changeset"]["description"] == "merge m1+m2"
    assert history["items"][0]["changeset"]["actor"] == "admin"
    retired = client.get(f"/api/v1/areas/{M2}/history", headers=auth("admin")).get_json()
    assert retired["retired_at"] is not None and retired["items"][0]["valid_to"] is not None
    now = client.get(f"/api/v1/route?lon={point.x}&lat={point.y}", headers=auth("admin"))
    assert now.get_json()["microgrid"]["code"] == M1
    then = client.get(
        "/api/v1/route",
        query_string={"lon": point.x, "lat": point.y, "at": before.isoformat()},
        headers=auth("admin"),
    )
    assert then.get_json()["microgrid"]["code"] == M2
    assert then.get_json()["grid"]["code"] == GRID


def test_cli_import_dry_run_then_apply(app, db_session, tmp_path, demo_users):
    case = make_incident(db_session, reporter=demo_users["admin"], microgrid_code=M2)
    path = tmp_path / "merge.geojson"
    path.write_text(json.dumps(_merge(db_session)), encoding="utf-8")
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["boundaries", "import", str(path)])
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and f"{M2} -> {M1}: 1" in dry.output
    assert "parsed 2/2" in dry.output  # progress
    assert _routed_code(db_session, case.id) == M2
    applied = runner.invoke(args=["boundaries", "import", str(path), "--apply"])
    assert applied.exit_code == 0, applied.output
    assert "applied as changeset" in applied.output
    assert _routed_code(db_session, case.id) == M1


def test_cli_reads_gcj02_files(app, db_session, tmp_path):
    from geo.crs import from_wgs84

    m1 = shape_of(db_session, M1)
    shifted = shapely.transform(
        m1, lambda xy: __import__("numpy").array([from_wgs84(x, y, "gcj02") for x, y in xy])
    )
    path = tmp_path / "gcj.geojson"
    path.write_text(json.dumps(collection(feature(M1, shifted))), encoding="utf-8")
    runner = app.test_cli_runner()
    as_wgs = runner.invoke(args=["boundaries", "import", str(path)])
    assert as_wgs.exit_code == 1 and "overlap" in as_wgs.output  # read as WGS-84: ~500 m off
    as_gcj = runner.invoke(args=["boundaries", "import", str(path), "--crs", "gcj02"])
    assert as_gcj.exit_code == 0, as_gcj.output


def _bow_tie(x, y, d=0.001):
    return {
        "type": "Polygon",
        "coordinates": [[[x, y], [x + d, y + d], [x + d, y], [x, y + d], [x, y]]],
    }


@pytest.mark.parametrize(
    "name, build, kind",
    [
        (
            "bow-tie",
            lambda s: [{**feature(M1, None), "geometry": _bow_tie(121.5, 29.8)}],
            "invalid_geometry",
        ),
        (
            "point",
            lambda s: [
                {**feature(M1, None), "geometry": {"type": "Point", "coordinates": [121.5, 29.8]}}
            ],
            "not_polygonal",
        ),
        (
            "empty",
            lambda s: [
                {**feature(M1, None), "geometry": {"type": "MultiPolygon", "coordinates": []}}
            ],
            "empty_geometry",
        ),
        ("duplicate code", lambda s: [feature(M1, shape_of(s, M1))] * 2, "duplicate_code"),
        (
            "unknown parent",
            lambda s: [feature("330212003009001001", shape_of(s, M1), name="x")],
            "unknown_parent",
        ),
        ("wrong level", lambda s: [feature(M1, shape_of(s, M1), level="grid")], "wrong_level"),
        (
            "wrong parent",
            lambda s: [feature(M1, shape_of(s, M1), parent=COMMUNITY)],
            "wrong_parent",
        ),
        (
            "overlapping sibling",
            lambda s: [feature(M1, shapely.union_all([shape_of(s, M1), shape_of(s, M2)]))],
            "overlap",
        ),
        (
            "grid crossing its town's border",
            lambda s: [
                feature(
                    GRID, shapely.union_all([shape_of(s, GRID), shape_of(s, "330212004001001")])
                )
            ],
            "outside_parent",
        ),
        ("gap", lambda s: [feature(M1, shape_of(s, M1).buffer(-0.0002))], "gap"),
        (
            "orphaned children",
            lambda s: [feature(GRID, None, action="retire")],
            "orphaned_children",
        ),
        (
            "retire unknown",
            lambda s: [feature("330212003001009001", None, action="retire")],
            "unknown_area",
        ),
        (
            "workers",
            lambda s: [feature("330212001001001001", None, action="retire")],
            "has_workers",
        ),
        ("bad code", lambda s: [feature("12ab", shape_of(s, M1))], "invalid_code"),
    ],
)
def test_bad_input_corpus_is_named_and_changes_nothing(post_changes, db_session, name, build, kind):
    before = db_session.execute(
        text(
            "SELECT md5(string_agg(code || ST_AsText(boundary) || "
            "coalesce(retired_at::text, ''), ',' ORDER BY code)) FROM area"
        )
    ).scalar()
    response = post_changes(collection(*build(db_session)), dry_run=False)
    assert response.status_code == 422, name
    body = response.get_json()
    assert body["valid"] is False and body["applied"] is False
    assert kind in [p["kind"] for p in body["problems"]], (name, body["problems"])
    after = db_session.execute(
        text(
            "SELECT md5(string_agg(code || ST_AsText(boundary) || "
            "coalesce(retired_at::text, ''), ',' ORDER BY code)) FROM area"
        )
    ).scalar()
    assert before == after


def test_float_noise_on_shared_edges_is_not_flagged(post_changes, db_session):
    noisy = shapely.transform(
        shape_of(db_session, M1),
        lambda xy: xy + 3e-9,  # a few millimetres everywhere
    )
    body = post_changes(collection(feature(M1, noisy))).get_json()
    assert body["valid"], body["problems"]


def test_invalid_geometry_is_repaired_only_on_request(post_changes, db_session):
    m1 = shape_of(db_session, M1)
    ring = [list(xy) for xy in m1.geoms[0].exterior.coords]
    # Walk back to the second vertex and on again: a self-touching ring (a zero-width spike).
    spiked = {"type": "Polygon", "coordinates": [[*ring[:3], ring[1], *ring[2:]]]}
    refused = post_changes(collection({**feature(M1, None), "geometry": spiked})).get_json()
    assert [p["kind"] for p in refused["problems"]] == ["invalid_geometry"]
    repaired = post_changes(
        collection({**feature(M1, None), "geometry": spiked}), repair="true"
    ).get_json()
    assert repaired["valid"], repaired["problems"]
    assert [p["kind"] for p in repaired["problems"]] == ["repaired"]
    assert repaired["problems"][0]["severity"] == "warning"


def test_only_admins(post_changes, db_session):
    response = post_changes(_merge(db_session), user="district_supervisor")
    assert response.status_code == 403


def test_not_a_feature_collection(post_changes):
    response = post_changes({"type": "Feature"})
    assert response.status_code == 422
    assert response.get_json()["error"] == "validation_failed"


def test_reports_during_a_redraw_never_land_in_a_retired_area(app, demo_users):
    """A change holds the map lock while it applies; a report arriving then waits, and routes
    on the new map. Real concurrency: two connections, committed data, undone afterwards."""
    point = None
    with app.app_context():
        point = shape_of(db.session, M2).representative_point()
        body = _merge(db.session)
        db.session.remove()
    applied, reported = threading.Event(), {}

    def redraw():
        with app.app_context():
            result = boundary_service.submit_changeset(
                db.session,
                actor=None,
                features=body["features"],
                options=boundary_service.ChangeSetOptions(
                    dry_run=False,
                    tolerances=TOLERANCES,
                    max_nearest_m=TEST_SETTINGS.routing_nearest_max_m,
                ),
            )
            reported["changeset"] = result.changeset_id
            applied.set()
            time.sleep(1.0)  # hold the lock while the report arrives
            db.session.commit()
            db.session.remove()

    def report():
        applied.wait(10)
        client = app.test_client()
        response = client.post(
            "/api/v1/incidents",
            json={
                "client_id": "during-redraw",
                "category": "env_garbage",
                "description": "x",
                "location": {"lon": point.x, "lat": point.y},
            },
            headers=bearer(app, demo_users["grid_worker"]),
        )
        reported["response"] = response.get_json()

    threads = [threading.Thread(target=redraw), threading.Thread(target=report)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        assert reported["response"]["routing"]["microgrid"]["code"] == M1
    finally:
        with engine.begin() as conn:
            _undo(conn, reported["changeset"], reported["response"].get("id"))
        engine.dispose()


def _strip_of(area, along, width=0.0003):
    """The part of `area` within about 30 m of its shared edge with `along`."""
    return area.intersection(area.boundary.intersection(along.boundary).buffer(width))


def _wait_for_lock_waiters(conn, count, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND (classid::bigint << 32 | objid::bigint) = :key"
            ),
            {"key": boundary_service.MAP_LOCK_KEY},
        ).scalar()
        if waiting >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} change sets came to wait for the map lock")


def test_concurrent_change_sets_that_would_overlap_apply_only_one(app, demo_users):
    """Two edge moves, each valid on the map both were checked against: M2 gives one strip to
    M1 in one set and another strip to M3 in the other, so each set's M2 still holds the strip
    the other gives away. Whichever applies first, the other is checked again under the lock
    and refused. Real concurrency through the API: committed data, undone afterwards."""
    with app.app_context():
        m1, m2, m3 = (shape_of(db.session, code) for code in (M1, M2, M3))
        db.session.remove()
    to_m1, to_m3 = _strip_of(m2, m1), _strip_of(m2, m3)
    sets = {
        "to_m1": collection(feature(M1, m1.union(to_m1)), feature(M2, m2.difference(to_m1))),
        "to_m3": collection(feature(M3, m3.union(to_m3)), feature(M2, m2.difference(to_m3))),
    }
    headers, answers = bearer(app, demo_users["admin"]), {}

    def send(name):
        answers[name] = app.test_client().post(
            "/api/v1/boundaries/changes",
            json=sets[name],
            query_string={"dry_run": "false"},
            headers=headers,
        )

    threads = [threading.Thread(target=send, args=(name,)) for name in sets]
    # Hold the map until both sets are checked and wait for it: they are then as concurrent
    # as two change sets can be.
    with map_locked(app, at_most=30) as holder:
        for thread in threads:
            thread.start()
        _wait_for_lock_waiters(holder, 2)
    for thread in threads:
        thread.join()
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        bodies = {name: answer.get_json() for name, answer in answers.items()}
        assert sorted(a.status_code for a in answers.values()) == [200, 422], bodies
        (refused,) = (b for b in bodies.values() if not b["applied"])
        assert refused["valid"] is False and refused["changeset"] is None
        assert "overlap" in [p["kind"] for p in refused["problems"]], refused["problems"]
        with engine.connect() as conn:
            overlap_m2 = conn.execute(
                text(
                    "SELECT max(ST_Area(ST_Intersection(a.boundary, b.boundary)::geography))"
                    " FROM area a JOIN area b ON a.code < b.code"
                    " WHERE a.code IN (:m1, :m2, :m3) AND b.code IN (:m1, :m2, :m3)"
                ),
                {"m1": M1, "m2": M2, "m3": M3},
            ).scalar()
        assert overlap_m2 < 1.0
    finally:
        with engine.begin() as conn:
            for body in answers.values():
                if body.get_json().get("applied"):
                    _undo(conn, body.get_json()["changeset"], None)
        engine.dispose()


def _undo(conn, changeset_id, incident_id):
    """Put the committed demo map back as it was before `changeset_id`."""
    if incident_id:
        conn.execute(text("DELETE FROM incident_event WHERE incident_id = :i"), {"i": incident_id})
        conn.execute(text("DELETE FROM incident WHERE id = :i"), {"i": incident_id})
    effective = conn.execute(
        text("SELECT effective_from FROM boundary_changeset WHERE id = :c"), {"c": changeset_id}
    ).scalar()
    touched = (
        conn.execute(
            text(
                "SELECT area_id FROM area_revision WHERE changeset_id = :c"
                " UNION SELECT id FROM area WHERE retired_at = :e"
            ),
            {"c": changeset_id, "e": effective},
        )
        .scalars()
        .all()
    )
    conn.execute(text("DELETE FROM area_revision WHERE changeset_id = :c"), {"c": changeset_id})
    conn.execute(
        text(
            "UPDATE area_revision SET valid_to = NULL WHERE area_id = ANY(:ids) AND valid_to = :e"
        ),
        {"ids": touched, "e": effective},
    )
    conn.execute(
        text(
            "UPDATE area a SET boundary = r.boundary, name = r.name, retired_at = NULL"
            " FROM area_revision r WHERE r.area_id = a.id AND r.valid_to IS NULL"
            " AND a.id = ANY(:ids)"
        ),
        {"ids": touched},
    )
    conn.execute(
        text("DELETE FROM audit_event WHERE target = :t"), {"t": f"changeset {changeset_id}"}
    )
    conn.execute(text("DELETE FROM boundary_changeset WHERE id = :c"), {"c": changeset_id})


def test_reimporting_the_same_shapes_changes_nothing(post_changes, db_session):
    body = collection(feature(M1, shape_of(db_session, M1)), feature(M2, shape_of(db_session, M2)))
    result = post_changes(body, dry_run=False).get_json()
    assert result["valid"] and result["applied"]
    assert result["impact"]["areas"] == {"created": 0, "updated": 0, "retired": 0, "unchanged": 2}
    revisions = db_session.execute(
        text(
            "SELECT count(*) FROM area_revision r JOIN area a ON a.id = r.area_id"
            " WHERE a.code IN (:a, :b)"
        ),
        {"a": M1, "b": M2},
    ).scalar()
    assert revisions == 2  # only the demo's first revisions


def _family_started(session):
    """When the newest current boundary of GRID and its micro-grids began."""
    return session.scalar(
        text(
            "SELECT max(r.valid_from) FROM area_revision r JOIN area a ON a.id = r.area_id"
            " WHERE r.valid_to IS NULL AND a.code LIKE :grid"
        ),
        {"grid": f"{GRID}%"},
    )


def _map_fingerprint(session):
    return session.execute(
        text(
            "SELECT md5(string_agg(code || ST_AsText(boundary) || coalesce(retired_at::text, ''),"
            " ',' ORDER BY code)) FROM area"
        )
    ).scalar()


@pytest.mark.parametrize(
    "effective_from, kind",
    [
        (lambda: datetime.now(UTC) + timedelta(days=400), "effective_from_out_of_range"),
        # Beyond the API's date range (gridgov.schemas.common.Instant): refused by the schema.
        (lambda: "9999-12-31T23:59:59-08:00", "out_of_range"),
        (lambda: "0001-01-01T00:00:00+08:00", "out_of_range"),
        (lambda: "0001-01-01T00:00:00+00:00", "out_of_range"),
        (lambda: "1999-12-31T00:00:00+00:00", "effective_from_out_of_range"),
        (lambda: "2020-01-01T00:00:00+08:00", "effective_from_before_current"),
    ],
    ids=[
        "beyond-the-horizon",
        "year-9999",
        "year-1-east",
        "year-1-utc",
        "year-1999",
        "before-the-map",
    ],
)
def test_effective_from_out_of_bounds_is_refused(post_changes, db_session, effective_from, kind):
    value = effective_from()
    body = {**_merge(db_session), "effective_from": getattr(value, "isoformat", lambda: value)()}
    before = _map_fingerprint(db_session)
    preview = post_changes(body, dry_run=True)
    if kind == "out_of_range":
        assert (preview.status_code, preview.get_json()["error"]) == (422, kind)
        assert post_changes(body, dry_run=False).get_json()["error"] == kind
        assert _map_fingerprint(db_session) == before
        return
    assert preview.status_code == 200 and preview.get_json()["valid"] is False
    response = post_changes(body, dry_run=False)
    assert response.status_code == 422, response.get_json()
    problems = response.get_json()["problems"]
    assert [p["kind"] for p in problems] == [kind], problems
    assert _map_fingerprint(db_session) == before


def test_effective_from_cannot_precede_the_last_change(post_changes, db_session):
    first = post_changes(_merge(db_session), dry_run=False).get_json()
    assert first["applied"], first["problems"]
    started = _family_started(db_session)
    m1, m3 = shape_of(db_session, M1), shape_of(db_session, M3)
    strip = _strip_of(m3, m1)
    body = collection(
        feature(M1, m1.union(strip)),
        feature(M3, m3.difference(strip)),
        effective_from=(started - timedelta(seconds=1)).isoformat(),
    )
    response = post_changes(body, dry_run=False)
    assert response.status_code == 422
    (problem,) = response.get_json()["problems"]
    assert (problem["kind"], problem["code"]) == ("effective_from_before_current", M1)
    body["effective_from"] = started.isoformat()  # the same instant is no later either
    assert post_changes(body, dry_run=False).status_code == 422


def test_backdated_effective_from_is_recorded(post_changes, client, auth, db_session):
    started = _family_started(db_session)
    backdated = started + (datetime.now(UTC) - started) / 2
    body = {**_merge(db_session), "effective_from": backdated.isoformat()}
    assert post_changes(body, dry_run=False).get_json()["applied"]
    history = client.get(f"/api/v1/areas/{M1}/history", headers=auth("admin")).get_json()
    assert datetime.fromisoformat(history["items"][0]["valid_from"]) == backdated


def test_a_clock_a_little_ahead_counts_as_now(post_changes, client, auth, db_session):
    m1, m2 = shape_of(db_session, M1), shape_of(db_session, M2)
    strip = _strip_of(m2, m1)
    body = collection(
        feature(M1, m1.union(strip)),
        feature(M2, m2.difference(strip)),
        effective_from=(datetime.now(UTC) + timedelta(minutes=2)).isoformat(),
    )
    result = post_changes(body, dry_run=False).get_json()
    assert result["applied"], result["problems"]
    history = client.get(f"/api/v1/areas/{M1}/history", headers=auth("admin")).get_json()
    # History never shows a change still to come: the map changed now.
    assert datetime.fromisoformat(history["items"][0]["valid_from"]) <= datetime.now(UTC)


def test_effective_from_cannot_precede_an_assignment_it_ends(post_changes, db_session, demo_users):
    started = _family_started(db_session)
    now = datetime.now(UTC)
    make_assignment(db_session, user=demo_users["grid_worker"], area_code=M3, active_from=now)
    merged = shapely.union_all([shape_of(db_session, M2), shape_of(db_session, M3)])
    body = collection(
        feature(M2, merged),
        feature(M3, None, action="retire", assignments="end"),
        effective_from=(started + (now - started) / 2).isoformat(),
    )
    response = post_changes(body, dry_run=False)
    assert response.status_code == 422, response.get_json()
    (problem,) = response.get_json()["problems"]
    assert (problem["kind"], problem["code"]) == ("effective_from_before_current", M3)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("9999-12-31T23:59:59+00:00", "effective_from_out_of_range"),
        ("0001-01-01T00:00:00+00:00", "effective_from_out_of_range"),
        ("2020-01-01T00:00:00+08:00", "effective_from_before_current"),
        ("2026-12-01T00:00:00", "not an ISO 8601 date-time with a UTC offset"),
        ("1 December", "not an ISO 8601 date-time with a UTC offset"),
        (20261201, "not an ISO 8601 date-time with a UTC offset"),
    ],
)
def test_cli_checks_effective_from(app, db_session, tmp_path, value, expected):
    path = tmp_path / "merge.geojson"
    path.write_text(json.dumps({**_merge(db_session), "effective_from": value}), encoding="utf-8")
    before = _map_fingerprint(db_session)
    result = app.test_cli_runner().invoke(args=["boundaries", "import", str(path), "--apply"])
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert _map_fingerprint(db_session) == before
