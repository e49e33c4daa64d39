"""Boundary editing through the API and the CLI on the demo district: split, merge, move an
edge, redraw, create, retire and revert, with shared edges, holes, enclaves and multipolygons."""

import json

import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, box, mapping
from sqlalchemy import select, text

from gridgov.models import Area, AreaRevision, BoundaryChangeset
from gridgov.spatial import from_db
from tests.factories import make_incident, make_user

COMMUNITY = "330212003001"
GRID, GRID2 = f"{COMMUNITY}001", f"{COMMUNITY}002"
M1, M2, M3 = (f"{GRID}00{i}" for i in (1, 2, 3))
MULTIPART_GRID = "330212011003002"  # three parts in the demo, as is its micro-grid 002


def shape_of(session, code) -> MultiPolygon:
    return from_db(session.scalar(select(Area.boundary).where(Area.code == code)))


def wkb_of(session, code) -> bytes:
    return bytes(session.scalar(select(text("ST_AsBinary(boundary)")).where(Area.code == code)))


def routed(session, incident_id, column="microgrid_id"):
    return session.execute(
        text(f"SELECT a.code FROM incident i JOIN area a ON a.id = i.{column} WHERE i.id = :i"),
        {"i": incident_id},
    ).scalar()


def case_at(session, reporter, point: Point, microgrid: str):
    return make_incident(
        session,
        reporter=reporter,
        microgrid_code=microgrid,
        location=f"SRID=4326;POINT({point.x} {point.y})",
    )


def crossing(shape, *, fraction=0.5, vertical=True) -> dict:
    """A straight line across a shape's bounding box (beyond it on both ends)."""
    minx, miny, maxx, maxy = shape.bounds
    if vertical:
        x = minx + fraction * (maxx - minx)
        line = LineString([(x, miny - 0.001), (x, maxy + 0.001)])
    else:
        y = miny + fraction * (maxy - miny)
        line = LineString([(minx - 0.001, y), (maxx + 0.001, y)])
    return mapping(line)


@pytest.fixture
def edit(client, auth):
    def send(operation, body, dry_run=True, user="admin", **query):
        params = {"dry_run": str(dry_run).lower(), **query}
        path = (
            f"/api/v1/boundaries/changes/{body}/revert"
            if operation == "revert"
            else f"/api/v1/boundaries/edits/{operation}"
        )
        return client.post(
            path,
            json=None if operation == "revert" else body,
            query_string=params,
            headers=auth(user),
        )

    return send


def test_split_a_microgrid_dry_run_then_apply(edit, db_session, demo_users):
    m1 = shape_of(db_session, M1)
    line = crossing(m1)
    minx, miny, maxx, maxy = m1.bounds
    west = shapely.clip_by_rect(m1, minx, miny, (minx + maxx) / 2, maxy)
    case = case_at(db_session, demo_users["grid_worker"], west.representative_point(), M1)
    preview = edit("split", {"code": M1, "line": line}, details="cases")
    body = preview.get_json()
    assert preview.status_code == 200 and body["valid"], body["problems"]
    assert body["operation"] == "split" and body["applied"] is False
    pieces = [a for a in body["impact"]["area_changes"] if a["action"] != "retired"]
    assert {a["action"] for a in pieces} == {"updated", "created"}
    new_code = next(a["code"] for a in pieces if a["action"] == "created")
    assert new_code[:-3] == GRID and new_code > M3
    assert [f["properties"]["code"] for f in body["geometry"]["before"]["features"]] == [M1]
    assert len(body["geometry"]["after"]["features"]) == 2
    assert body["changes"]["type"] == "FeatureCollection"
    moved = body["impact"]["moves"]
    if moved:  # the case lies in the piece that got the new code
        assert body["impact"]["cases"] == [{"id": case.id, "from": M1, "to": new_code}]
    assert routed(db_session, case.id) == M1  # a dry run changes nothing

    applied = edit("split", {"code": M1, "line": line}, dry_run=False).get_json()
    assert applied["applied"] and applied["changeset"]
    assert applied["impact"]["moves"] == moved
    after = shape_of(db_session, M1).union(shape_of(db_session, new_code))
    assert after.symmetric_difference(m1).area < 1e-14
    source = db_session.scalar(
        select(BoundaryChangeset.source).where(BoundaryChangeset.id == applied["changeset"])
    )
    assert source == "edit:split"


def test_split_a_grid_recodes_the_microgrids_that_move(edit, db_session):
    grid = shape_of(db_session, GRID)
    body = edit("split", {"code": GRID, "line": crossing(grid, vertical=False)}).get_json()
    assert body["valid"], body["problems"]
    recoded = body["impact"]["recoded"]
    assert recoded and all(r["to"][:15] != GRID for r in recoded if len(r["to"]) == 18)
    levels = {len(a["code"]) for a in body["impact"]["area_changes"]}
    assert levels == {15, 18}
    applied = edit("split", {"code": GRID, "line": crossing(grid, vertical=False)}, dry_run=False)
    assert applied.get_json()["applied"]


def test_split_lines_that_miss_touch_or_cut_into_three(edit, db_session):
    m1 = shape_of(db_session, M1)
    minx, miny, maxx, maxy = m1.bounds
    away = mapping(LineString([(maxx + 0.01, miny), (maxx + 0.02, maxy)]))
    missed = edit("split", {"code": M1, "line": away})
    assert missed.status_code == 422
    assert missed.get_json()["error"] == "line_misses_area"
    assert missed.get_json()["details"]["location"]
    ring = list(m1.geoms[0].exterior.coords)
    along = mapping(LineString(ring[:2]))  # along its own outline
    assert edit("split", {"code": M1, "line": along}).get_json()["error"] == "line_only_touches"
    x1, x2 = minx + 0.35 * (maxx - minx), minx + 0.65 * (maxx - minx)
    u_line = LineString(
        [(x1, miny - 0.001), (x1, maxy + 0.001), (x2, maxy + 0.001), (x2, miny - 0.001)]
    )
    three = edit("split", {"code": M1, "line": mapping(u_line), "names": ["甲", "乙", "丙"]})
    body = three.get_json()
    assert body["valid"], body["problems"]
    pieces = [a for a in body["impact"]["area_changes"] if a["action"] != "retired"]
    assert len(pieces) == 3 and {a["name"] for a in pieces} == {"甲", "乙", "丙"}
    wrong = edit("split", {"code": M1, "line": mapping(u_line), "codes": [M1, f"{GRID}009"]})
    assert wrong.get_json()["error"] == "wrong_piece_count"


def test_merge_two_microgrids_and_refuse_non_adjacent_areas(edit, db_session, demo_users):
    case = make_incident(db_session, reporter=demo_users["grid_worker"], microgrid_code=M2)
    worker = make_user(db_session, username="m2_worker", area_code=M2)
    body = edit("merge", {"codes": [M1, M2], "name": "合并微网格"}).get_json()
    assert body["valid"], body["problems"]
    assert body["impact"]["moves"] == [{"from": M2, "to": M1, "count": 1}]
    assert body["impact"]["assignments"] == [
        {
            "id": body["impact"]["assignments"][0]["id"],
            "user": worker.id,
            "username": "m2_worker",
            "role": "worker",
            "duty": "full_time",
            "area": M2,
            "change": "retired",
        }
    ]
    applied = edit("merge", {"codes": [M1, M2], "name": "合并微网格"}, dry_run=False).get_json()
    assert applied["applied"]
    assert applied["impact"]["assignments_ended"][0]["user"] == worker.id
    assert routed(db_session, case.id) == M1
    assert db_session.scalar(select(Area.name).where(Area.code == M1)) == "合并微网格"

    towns = {
        code: from_db(boundary)
        for code, boundary in db_session.execute(
            select(Area.code, Area.boundary).where(Area.level == "town")
        )
    }
    apart = next(
        (a, b)
        for a in sorted(towns)
        for b in sorted(towns)
        if a < b and not towns[a].intersects(towns[b])
    )
    refused = edit("merge", {"codes": list(apart)})
    assert refused.status_code == 422 and refused.get_json()["error"] == "not_adjacent"
    cousins = edit("merge", {"codes": [M3, f"{GRID2}001"]})
    assert cousins.get_json()["error"] == "not_siblings"


def test_merge_of_microgrids_touching_at_a_point_only_is_refused(edit, db_session):
    codes = sorted(
        db_session.scalars(
            select(Area.code).where(Area.level == "microgrid", Area.code.like(f"{COMMUNITY}%"))
        )
    )
    shapes = {c: shape_of(db_session, c) for c in codes}
    pairs = [
        (a, b)
        for a in codes
        for b in codes
        if a < b
        and a[:-3] == b[:-3]
        and shapes[a].touches(shapes[b])
        and shapes[a].boundary.intersection(shapes[b].boundary).length == 0
    ]
    for a, b in pairs:  # the demo may have none: then the geo tests carry this case
        assert edit("merge", {"codes": [a, b]}).get_json()["error"] == "not_adjacent"


def test_move_the_edge_between_two_microgrids(edit, db_session, demo_users):
    m1, m2 = shape_of(db_session, M1), shape_of(db_session, M2)
    shared = shapely.line_merge(m1.boundary.intersection(m2.boundary))
    assert shared.geom_type == "LineString" and shared.length > 0
    start, end = shared.coords[0], shared.coords[-1]
    middle = shared.interpolate(0.5, normalized=True)
    toward = m2.centroid
    bent = (middle.x + 0.3 * (toward.x - middle.x), middle.y + 0.3 * (toward.y - middle.y))
    line = LineString([start, bent, end])
    gained = shapely.Polygon([*shared.coords, *reversed(line.coords)]).buffer(0)
    inside = gained.intersection(m2).representative_point()
    case = case_at(db_session, demo_users["grid_worker"], inside, M2)
    result = edit("move-edge", {"codes": [M1, M2], "line": mapping(line)}, dry_run=False)
    body = result.get_json()
    assert body["valid"] and body["applied"], body
    assert {a["code"] for a in body["impact"]["area_changes"]} == {M1, M2}
    assert body["impact"]["moves"] == [{"from": M2, "to": M1, "count": 1}]
    assert routed(db_session, case.id) == M1
    new1, new2 = shape_of(db_session, M1), shape_of(db_session, M2)
    assert new1.union(new2).symmetric_difference(m1.union(m2)).area < 1e-14
    assert new1.intersection(new2).area < 1e-14


def test_move_the_edge_between_two_grids_carries_the_microgrids(edit, db_session):
    g1, g2 = shape_of(db_session, GRID), shape_of(db_session, GRID2)
    shared = shapely.line_merge(g1.boundary.intersection(g2.boundary))
    assert shared.geom_type == "LineString"
    middle = shared.interpolate(0.5, normalized=True)
    toward = g2.centroid
    bent = (middle.x + 0.25 * (toward.x - middle.x), middle.y + 0.25 * (toward.y - middle.y))
    line = mapping(LineString([shared.coords[0], bent, shared.coords[-1]]))
    body = edit("move-edge", {"codes": [GRID, GRID2], "line": line}).get_json()
    assert body["valid"], body["problems"]
    assert {len(a["code"]) for a in body["impact"]["area_changes"]} == {15, 18}


def test_redraw_takes_from_the_neighbours(edit, db_session):
    m1 = shape_of(db_session, M1)
    grown = m1.buffer(0.0002).intersection(shape_of(db_session, GRID))
    body = edit("redraw", {"code": M1, "geometry": mapping(grown)}).get_json()
    assert body["valid"], body["problems"]
    changed = {a["code"] for a in body["impact"]["area_changes"]}
    assert M1 in changed and changed & {M2, M3}


def test_enclave_create_split_around_it_and_revert_everything(edit, db_session, demo_users):
    m1 = shape_of(db_session, M1)
    centre = m1.representative_point()
    square = box(centre.x - 0.0001, centre.y - 0.0001, centre.x + 0.0001, centre.y + 0.0001)
    case = case_at(db_session, demo_users["grid_worker"], centre, M1)
    before = wkb_of(db_session, M1)
    created = edit(
        "create", {"parent": GRID, "geometry": mapping(square), "name": "飞地"}, dry_run=False
    ).get_json()
    assert created["applied"], created
    enclave = next(a["code"] for a in created["impact"]["area_changes"] if a["action"] == "created")
    assert routed(db_session, case.id) == enclave
    assert len(shape_of(db_session, M1).geoms[0].interiors) == 1  # M1 has a hole now

    # a line through the enclave splits M1 around it and leaves the enclave alone
    _, miny, _, maxy = m1.bounds
    through = mapping(LineString([(centre.x, miny - 0.001), (centre.x, maxy + 0.001)]))
    split = edit("split", {"code": M1, "line": through}, dry_run=False).get_json()
    assert split["applied"], split
    assert enclave not in {a["code"] for a in split["impact"]["area_changes"]}
    assert split["impact"]["moves"] == []

    # undo the split, then the creation: M1 is exactly what it was, the case goes back
    reverted = edit("revert", split["changeset"], dry_run=False).get_json()
    assert reverted["applied"] and reverted["reverts"] == split["changeset"]
    undone = edit("revert", created["changeset"], details="cases").get_json()
    assert undone["impact"]["cases"] == [{"id": case.id, "from": enclave, "to": M1}]
    assert edit("revert", created["changeset"], dry_run=False).get_json()["applied"]
    assert wkb_of(db_session, M1) == before
    assert routed(db_session, case.id) == M1
    assert db_session.scalar(select(Area.retired_at).where(Area.code == enclave)) is not None


def test_revert_a_merge_restores_exact_geometries_and_routing(
    edit, client, auth, db_session, demo_users
):
    case = make_incident(db_session, reporter=demo_users["grid_worker"], microgrid_code=M2)
    exact = {code: wkb_of(db_session, code) for code in (M1, M2)}
    merged = edit("merge", {"codes": [M1, M2]}, dry_run=False).get_json()
    assert routed(db_session, case.id) == M1
    preview = edit("revert", merged["changeset"]).get_json()
    assert preview["valid"] and not preview["applied"], preview["problems"]
    assert preview["impact"]["moves"] == [{"from": M1, "to": M2, "count": 1}]
    assert {a["code"]: a["action"] for a in preview["impact"]["area_changes"]} == {
        M1: "updated",
        M2: "restored",
    }
    reverted = edit("revert", merged["changeset"], dry_run=False).get_json()
    assert reverted["applied"]
    assert {code: wkb_of(db_session, code) for code in (M1, M2)} == exact
    assert db_session.scalar(select(Area.retired_at).where(Area.code == M2)) is None
    assert routed(db_session, case.id) == M2
    history = client.get(f"/api/v1/areas/{M2}/history", headers=auth("admin")).get_json()
    assert history["items"][0]["changeset"]["source"] == f"revert:{merged['changeset']}"
    assert history["items"][0]["valid_to"] is None and history["retired_at"] is None
    summaries = dict(
        db_session.execute(
            select(BoundaryChangeset.id, BoundaryChangeset.summary).where(
                BoundaryChangeset.id.in_([merged["changeset"], reverted["changeset"]])
            )
        ).all()
    )
    assert summaries[merged["changeset"]]["reverted_by"] == reverted["changeset"]
    assert summaries[reverted["changeset"]]["reverts"] == merged["changeset"]
    again = edit("revert", merged["changeset"])
    assert again.status_code == 409 and again.get_json()["error"] == "revert_conflict"
    revisions = db_session.scalar(
        select(text("count(*)"))
        .select_from(AreaRevision)
        .join(Area, Area.id == AreaRevision.area_id)
        .where(Area.code == M1)
    )
    assert revisions == 3


def test_multipart_microgrid_split_and_retire(edit, db_session):
    code = f"{MULTIPART_GRID}002"
    shape = shape_of(db_session, code)
    assert len(shape.geoms) == 3
    largest = max(shape.geoms, key=lambda p: p.area)
    body = edit("split", {"code": code, "line": crossing(largest)}).get_json()
    assert body["valid"], body["problems"]
    after = body["geometry"]["after"]["features"]
    assert len(after) >= 2  # the line may cross another part too
    retired = edit("retire", {"code": code}).get_json()
    assert retired["valid"], retired["problems"]
    assert {a["action"] for a in retired["impact"]["area_changes"]} == {"updated", "retired"}


def test_unknown_areas_and_roles(edit):
    assert edit("merge", {"codes": [M1, f"{GRID}099"]}).get_json()["error"] == "area_not_found"
    assert edit("retire", {"code": M1}, user="town_supervisor").status_code == 403
    assert edit("revert", 999999).get_json()["error"] == "changeset_not_found"
    bad = edit("split", {"code": M1, "line": {"type": "Point", "coordinates": [0, 0]}})
    assert bad.status_code == 422 and bad.get_json()["error"] == "validation_failed"


def test_cli_edit_and_revert(app, db_session, tmp_path, demo_users):
    case = make_incident(db_session, reporter=demo_users["grid_worker"], microgrid_code=M2)
    path = tmp_path / "merge.json"
    path.write_text(json.dumps({"codes": [M1, M2]}), encoding="utf-8")
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["boundaries", "edit", "merge", str(path)])
    assert dry.exit_code == 0, dry.output
    assert f"{M2} -> {M1}: 1" in dry.output and "dry run" in dry.output
    assert f"retired {M2}" in dry.output
    applied = runner.invoke(args=["boundaries", "edit", "merge", str(path), "--apply"])
    assert applied.exit_code == 0, applied.output
    changeset = int(applied.output.rsplit("applied as changeset ", 1)[1].split()[0])
    assert routed(db_session, case.id) == M1
    back = runner.invoke(args=["boundaries", "revert", str(changeset), "--apply"])
    assert back.exit_code == 0, back.output
    assert routed(db_session, case.id) == M2
    refused = runner.invoke(args=["boundaries", "revert", str(changeset)])
    assert refused.exit_code == 1 and "revert_conflict" in refused.output


def test_split_a_microgrid_on_the_district_enclave_keeps_the_hole(edit, db_session):
    district = shape_of(db_session, "330212")
    hole = shapely.Polygon(district.geoms[0].interiors[0])
    rows = db_session.execute(
        select(Area.code, Area.boundary).where(
            Area.level == "microgrid",
            Area.retired_at.is_(None),
            text("ST_Intersects(boundary, ST_GeomFromText(:hole, 4326))").bindparams(
                hole=hole.boundary.wkt
            ),
        )
    ).all()
    shapes = {c: from_db(b) for c, b in rows}
    code, boundary = next(
        (c, g) for c, g in sorted(shapes.items()) if g.boundary.intersection(hole).length > 0
    )
    # a line from the micro-grid through the enclave's centre and beyond it
    inside = boundary.representative_point()
    centre = hole.centroid
    far = (2 * centre.x - inside.x, 2 * centre.y - inside.y)
    start = (inside.x + 10 * (inside.x - centre.x), inside.y + 10 * (inside.y - centre.y))
    body = edit("split", {"code": code, "line": mapping(LineString([start, far]))}).get_json()
    assert body.get("valid"), body
    after = [shapely.geometry.shape(f["geometry"]) for f in body["geometry"]["after"]["features"]]
    assert not any(piece.covers(centre) for piece in after)
    total = shapely.union_all(after)
    assert total.symmetric_difference(boundary).area < 1e-14
