"""Patrols: start (idempotent per client id), track upload (idempotent per time), finish."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import LineString, shape
from sqlalchemy import create_engine, delete, func, select
from sqlalchemy.orm import Session

from geo.crs import distance_m, from_wgs84
from gridgov.errors import ValidationFailed
from gridgov.extensions import db
from gridgov.models import Area, Patrol, TrackPoint
from gridgov.services import patrols as patrol_service
from gridgov.services.calendar import CHINA_TZ
from tests.factories import make_assignment, make_user
from tests.helpers import bearer, configure, run_at_once

WORKER_MICROGRID = "330212001001001001"  # grid_worker's assignment
HEAD_GRID = "330212001001001"  # grid_head's assignment: three micro-grids
LIMIT = timedelta(hours=24)  # GRIDGOV_PATROL_MAX_BACKDATE_HOURS's default


def iso(moment: datetime) -> str:
    return moment.isoformat()


def start(client, headers, client_id="phone-1", started_at=None):
    started_at = started_at or datetime.now(UTC) - timedelta(minutes=30)
    return client.post(
        "/api/v1/patrols",
        json={"client_id": client_id, "started_at": iso(started_at)},
        headers=headers,
    )


def started(client, headers, **kwargs) -> dict:
    response = start(client, headers, **kwargs)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def track(client, headers, patrol_id, points):
    return client.post(
        f"/api/v1/patrols/{patrol_id}/track", json={"points": points}, headers=headers
    )


def finish(client, headers, patrol_id, **body):
    return client.post(f"/api/v1/patrols/{patrol_id}/finish", json=body, headers=headers)


def fixes(coords, first: datetime, step=timedelta(seconds=10)) -> list[dict]:
    """Track points for (lon, lat) pairs, one every `step` from `first`."""
    return [
        {"lon": lon, "lat": lat, "t": iso(first + i * step)} for i, (lon, lat) in enumerate(coords)
    ]


def area_shape(client, headers, code):
    response = client.get(f"/api/v1/areas/{code}?format=geojson", headers=headers)
    assert response.status_code == 200
    return shape(response.get_json()["geometry"])


def started_back_then(db_session, worker_id, started_at, client_id="back-then") -> int:
    """A patrol started at `started_at` by a phone that reached the server then (in time)."""
    result = patrol_service.start_patrol(
        db_session,
        worker_id=worker_id,
        client_id=client_id,
        started_at=started_at,
        max_backdate=LIMIT,
        now=started_at + timedelta(minutes=1),
    )
    return result.patrol.id


def walk(patrol: dict) -> datetime:
    """A time a little after the patrol's start, for its first point."""
    return datetime.fromisoformat(patrol["started_at"]) + timedelta(seconds=5)


# --- start ---------------------------------------------------------------------------------


def test_start_then_replay_returns_the_same_patrol_with_200(client, auth):
    headers = auth("grid_worker")
    started_at = (datetime.now(UTC) - timedelta(minutes=20)).replace(microsecond=0)
    first = start(client, headers, client_id="pat-A_1", started_at=started_at)
    assert first.status_code == 201
    body = first.get_json()
    assert set(body) == {"id", "client_id", "started_at", "finished_at", "points"}
    assert body["client_id"] == "pat-A_1"
    assert datetime.fromisoformat(body["started_at"]) == started_at
    assert body["finished_at"] is None
    assert body["points"] == 0
    # the same instant written with China's offset is the same start
    replay = start(client, headers, "pat-A_1", started_at.astimezone(CHINA_TZ))
    assert replay.status_code == 200
    assert replay.get_json() == body


def test_same_client_id_with_another_started_at_is_409(client, auth):
    headers = auth("grid_worker")
    first = started(client, headers, client_id="pat-B")
    later = datetime.fromisoformat(first["started_at"]) + timedelta(seconds=1)
    response = start(client, headers, client_id="pat-B", started_at=later)
    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "client_id_conflict"
    assert body["details"]["patrol_id"] == first["id"]


def test_client_ids_are_per_worker(client, auth):
    moment = datetime.now(UTC) - timedelta(minutes=10)
    mine = started(client, auth("grid_worker"), client_id="same", started_at=moment)
    theirs = started(client, auth("grid_head"), client_id="same", started_at=moment)
    assert mine["id"] != theirs["id"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"client_id": "p1", "started_at": "2024-05-06T08:30:00"}, "started_at"),  # naive
        ({"client_id": "p1", "started_at": "yesterday"}, "started_at"),
        ({"client_id": "p1"}, "started_at"),
        ({"client_id": "", "started_at": "2024-05-06T08:30:00+08:00"}, "client_id"),
        ({"client_id": "x" * 65, "started_at": "2024-05-06T08:30:00+08:00"}, "client_id"),
        ({"client_id": "has space", "started_at": "2024-05-06T08:30:00+08:00"}, "client_id"),
        ({"client_id": "巡查", "started_at": "2024-05-06T08:30:00+08:00"}, "client_id"),
        ({"started_at": "2024-05-06T08:30:00+08:00"}, "client_id"),
    ],
)
def test_bad_start_is_422(client, auth, body, field):
    response = client.post("/api/v1/patrols", json=body, headers=auth("grid_worker"))
    assert response.status_code == 422
    assert response.get_json()["error"] == "validation_failed"
    assert field in response.get_json()["errors"]["json"]


def test_longest_client_id_is_accepted(client, auth):
    assert start(client, auth("grid_worker"), client_id="a-Z_9" * 12 + "abcd").status_code == 201


def test_start_more_than_five_minutes_ahead_is_422(client, auth):
    headers = auth("grid_worker")
    ahead = start(client, headers, started_at=datetime.now(UTC) + timedelta(minutes=6))
    assert ahead.status_code == 422
    assert ahead.get_json()["error"] == "started_at_in_future"
    skew = start(client, headers, "p2", started_at=datetime.now(UTC) + timedelta(minutes=4))
    assert skew.status_code == 201


def test_admin_cannot_start_but_a_supervisor_can(client, auth):
    response = start(client, auth("admin"))
    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"
    assert start(client, auth("town_supervisor")).status_code == 201


def test_every_patrol_endpoint_needs_a_token(client):
    calls = [
        client.post(
            "/api/v1/patrols", json={"client_id": "p", "started_at": iso(datetime.now(UTC))}
        ),
        client.post("/api/v1/patrols/1/track", json={"points": []}),
        client.post("/api/v1/patrols/1/finish", json={}),
        client.get("/api/v1/patrols/1"),
        client.get("/api/v1/patrols"),
    ]
    for response in calls:
        assert response.status_code == 401
        assert response.get_json()["error"] == "token_missing"


# --- track ---------------------------------------------------------------------------------


@pytest.fixture
def inside(client, auth):
    """(lon, lat) well inside grid_worker's micro-grid."""
    point = area_shape(client, auth("grid_worker"), WORKER_MICROGRID).representative_point()
    return point.x, point.y


def stored_times(db_session, patrol_id) -> list[datetime]:
    return list(
        db_session.scalars(
            select(TrackPoint.t).where(TrackPoint.patrol_id == patrol_id).order_by(TrackPoint.t)
        )
    )


def test_track_takes_points_out_of_order_and_ignores_repeats(client, auth, db_session, inside):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    lon, lat = inside
    batch = fixes([(lon + i * 1e-4, lat) for i in range(4)], walk(patrol))
    shuffled = [batch[2], batch[0], batch[3], batch[0]]  # out of order, one repeated
    first = track(client, headers, patrol["id"], shuffled)
    assert first.status_code == 200
    assert first.get_json() == {"accepted": 3, "duplicates": 1, "points": 3}
    # the phone did not hear the answer and sends the same batch again: nothing is added
    again = track(client, headers, patrol["id"], shuffled)
    assert again.get_json() == {"accepted": 0, "duplicates": 4, "points": 3}
    # the next batch overlaps the first
    rest = track(client, headers, patrol["id"], [batch[1], batch[3]])
    assert rest.get_json() == {"accepted": 1, "duplicates": 1, "points": 4}
    times = stored_times(db_session, patrol["id"])
    assert times == [datetime.fromisoformat(p["t"]) for p in batch]
    assert client.get(f"/api/v1/patrols/{patrol['id']}", headers=headers).get_json()["points"] == 4


def test_the_same_time_with_another_offset_is_a_duplicate(client, auth, inside):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    moment = walk(patrol)
    utc = {"lon": inside[0], "lat": inside[1], "t": iso(moment)}
    china = {**utc, "t": iso(moment.astimezone(CHINA_TZ))}
    body = track(client, headers, patrol["id"], [utc, china]).get_json()
    assert body == {"accepted": 1, "duplicates": 1, "points": 1}


def test_empty_upload_changes_nothing(client, auth):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    body = track(client, headers, patrol["id"], []).get_json()
    assert body == {"accepted": 0, "duplicates": 0, "points": 0}


@pytest.mark.parametrize("crs", ["gcj02", "bd09", "cgcs2000"])
def test_points_in_chinese_systems_are_stored_as_their_wgs84_truth(
    client, auth, db_session, inside, crs
):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    truth = inside
    sent_lon, sent_lat = from_wgs84(*truth, crs)
    point = {"lon": sent_lon, "lat": sent_lat, "t": iso(walk(patrol)), "crs": crs}
    point["accuracy_m"] = 8.5
    assert track(client, headers, patrol["id"], [point]).get_json()["accepted"] == 1
    truth_sql = func.ST_SetSRID(func.ST_MakePoint(*truth), 4326)
    row = db_session.execute(
        select(
            func.ST_Distance(func.geography(TrackPoint.location), func.geography(truth_sql)).label(
                "error_m"
            ),
            TrackPoint.input_lon,
            TrackPoint.input_lat,
            TrackPoint.input_crs,
            TrackPoint.accuracy_m,
        ).where(TrackPoint.patrol_id == patrol["id"])
    ).one()
    assert row.error_m < 0.05
    assert (row.input_lon, row.input_lat, row.input_crs) == (sent_lon, sent_lat, crs)
    assert row.accuracy_m == 8.5
    if crs == "gcj02":  # the shift is real: treating the input as WGS-84 would be ~500 m off
        assert distance_m(sent_lon, sent_lat, *truth) > 300


@pytest.mark.parametrize(
    "bad, field, error",
    [
        ({"lon": "NaN"}, "lon", "not_a_number"),  # JSON has no NaN: phones send strings
        ({"lat": "29.9"}, "lat", "not_a_number"),
        ({"lon": True}, "lon", "not_a_number"),
        ({"lon": None}, "lon", "validation_failed"),
        ({"lat": 200}, "lat", "out_of_range"),
        ({"lon": 29.9, "lat": 121.4}, "lon", "swapped_coordinates"),
        ({"crs": "epsg3857"}, "crs", "validation_failed"),
        ({"accuracy_m": -1}, "accuracy_m", "validation_failed"),
        ({"t": "2024-05-06T08:30:00"}, "t", "validation_failed"),  # no offset
        ({"t": None}, "t", "validation_failed"),
        ({"extra": 1}, "extra", "validation_failed"),
    ],
)
def test_a_bad_point_is_422_naming_its_index_and_nothing_is_stored(
    client, auth, inside, bad, field, error
):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    points = fixes([inside, inside, inside], walk(patrol))
    points[1].update(bad)
    response = track(client, headers, patrol["id"], points)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == error
    errors = body["errors"]["json"]["points"]
    assert list(errors) == ["1"]
    assert field in errors["1"]
    assert client.get(f"/api/v1/patrols/{patrol['id']}", headers=headers).get_json()["points"] == 0


@pytest.mark.parametrize("body", [{}, {"points": "many"}, {"points": [1]}, []])
def test_a_malformed_upload_is_422(client, auth, body):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    response = client.post(f"/api/v1/patrols/{patrol['id']}/track", json=body, headers=headers)
    assert response.status_code == 422


def test_at_most_1000_points_per_upload(client, auth, inside):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    many = fixes([inside] * 1001, walk(patrol), step=timedelta(seconds=1))
    too_many = track(client, headers, patrol["id"], many)
    assert too_many.status_code == 422
    body = too_many.get_json()
    assert body["error"] == "too_many_points"
    assert body["details"] == {"max": 1000, "received": 1001}
    assert track(client, headers, patrol["id"], many[:1000]).get_json() == {
        "accepted": 1000,
        "duplicates": 0,
        "points": 1000,
    }


def test_points_before_the_start_are_refused_naming_the_index(client, auth, inside):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    begin = datetime.fromisoformat(patrol["started_at"])
    points = fixes([inside] * 3, begin - timedelta(seconds=30))  # 30 s early: tolerated
    points[2]["t"] = iso(begin - timedelta(minutes=1, seconds=1))
    response = track(client, headers, patrol["id"], points)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "point_time_out_of_range"
    assert list(body["errors"]["json"]["points"]) == ["2"]
    assert body["details"]["indexes"] == [2]
    assert track(client, headers, patrol["id"], points[:2]).get_json()["accepted"] == 2


def test_points_from_the_future_are_refused(client, auth, inside):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    points = fixes([inside], datetime.now(UTC) + timedelta(minutes=10))
    response = track(client, headers, patrol["id"], points)
    assert response.status_code == 422
    assert list(response.get_json()["errors"]["json"]["points"]) == ["0"]


# --- finish --------------------------------------------------------------------------------


def test_length_of_an_l_shaped_track(client, auth, inside):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    lon, lat = inside
    # 12 steps east then 8 steps north (~1.15 km and ~0.9 km), sent in two shuffled halves
    east = [(lon - 0.006 + i * 0.001, lat - 0.004) for i in range(13)]
    north = [(east[-1][0], lat - 0.004 + i * 0.001) for i in range(1, 9)]
    coords = east + north
    points = fixes(coords, walk(patrol))
    track(client, headers, patrol["id"], points[10:][::-1])
    track(client, headers, patrol["id"], points[:12])
    response = finish(client, headers, patrol["id"])
    assert response.status_code == 200
    summary = response.get_json()
    expected = sum(distance_m(*a, *b) for a, b in itertools.pairwise(coords))
    assert summary["points"] == len(coords)
    assert summary["length_m"] == pytest.approx(expected, rel=0.005)
    assert 1900 < summary["length_m"] < 2200


def test_grid_head_walking_two_of_three_microgrids_covers_two_thirds(client, auth, db_session):
    headers = auth("grid_head")
    microgrids = {
        code: area_shape(client, headers, code)
        for code in db_session.scalars(
            select(Area.code).where(Area.code.like(HEAD_GRID + "___"), Area.level == "microgrid")
        )
    }
    assert len(microgrids) == 3
    # from the middle of one micro-grid over the middle of their shared edge into the next,
    # checked with Shapely to touch exactly those two
    for (code_a, a), (code_b, b) in itertools.combinations(sorted(microgrids.items()), 2):
        shared = a.boundary.intersection(b.boundary)
        if shared.length == 0:
            continue
        middle = shared.interpolate(0.5, normalized=True)
        path = LineString([a.representative_point(), middle, b.representative_point()])
        touched = {code for code, geom in microgrids.items() if path.intersects(geom)}
        if touched == {code_a, code_b}:
            break
    else:
        pytest.fail("no pair of neighbouring micro-grids to walk through")
    coords = [path.interpolate(f, normalized=True).coords[0] for f in (0, 0.25, 0.5, 0.75, 1)]
    patrol = started(client, headers)
    track(client, headers, patrol["id"], fixes(coords, walk(patrol)))
    summary = finish(client, headers, patrol["id"]).get_json()
    assert summary["microgrids_assigned"] == 3
    assert summary["microgrids_visited"] == 2
    assert summary["coverage"] == pytest.approx(2 / 3)


def test_grid_worker_walking_inside_their_microgrid_covers_it_all(client, auth, db_session, inside):
    headers = auth("grid_worker")
    lon, lat = inside
    square = [(lon, lat), (lon + 2e-4, lat), (lon + 2e-4, lat + 2e-4), (lon, lat + 2e-4)]
    patrol = started(client, headers)
    track(client, headers, patrol["id"], fixes(square, walk(patrol)))
    summary = finish(client, headers, patrol["id"]).get_json()
    assert summary["microgrids_assigned"] == 1
    assert summary["microgrids_visited"] == 1
    assert summary["coverage"] == 1.0
    stored = db_session.get(Patrol, patrol["id"])
    db_session.refresh(stored)
    assert stored.microgrids_assigned == 1
    assert stored.microgrids_visited == 1
    assert stored.length_m == pytest.approx(summary["length_m"])
    assert stored.finished_at is not None


def test_finish_with_no_points_or_one_point(client, auth, inside):
    headers = auth("grid_worker")
    empty = started(client, headers, client_id="empty")
    summary = finish(client, headers, empty["id"]).get_json()
    assert (summary["points"], summary["length_m"], summary["microgrids_visited"]) == (0, 0, 0)
    assert summary["coverage"] == 0.0
    single = started(client, headers, client_id="single")
    track(client, headers, single["id"], fixes([inside], walk(single)))
    summary = finish(client, headers, single["id"]).get_json()
    assert (summary["points"], summary["length_m"], summary["microgrids_visited"]) == (1, 0, 1)
    assert summary["coverage"] == 1.0


def test_standing_still_is_length_zero_but_a_visit(client, auth, inside):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    track(client, headers, patrol["id"], fixes([inside] * 3, walk(patrol)))
    summary = finish(client, headers, patrol["id"]).get_json()
    assert summary["length_m"] == 0
    assert summary["microgrids_visited"] == 1


def test_walking_outside_ones_area_visits_nothing(client, auth, inside):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    far = [(inside[0] + 0.2, inside[1]), (inside[0] + 0.21, inside[1])]
    track(client, headers, patrol["id"], fixes(far, walk(patrol)))
    summary = finish(client, headers, patrol["id"]).get_json()
    assert summary["microgrids_assigned"] == 1
    assert summary["microgrids_visited"] == 0
    assert summary["coverage"] == 0.0


def test_a_supervisor_is_assigned_every_microgrid_of_their_town(client, auth, db_session, inside):
    headers = auth("town_supervisor")
    patrol = started(client, headers)
    track(client, headers, patrol["id"], fixes([inside], walk(patrol)))
    summary = finish(client, headers, patrol["id"]).get_json()
    town_microgrids = db_session.scalar(
        select(func.count()).where(
            Area.code.like("330212001%"), Area.level == "microgrid", Area.retired_at.is_(None)
        )
    )
    assert summary["microgrids_assigned"] == town_microgrids > 3
    assert summary["microgrids_visited"] == 1


def test_an_unassigned_worker_has_no_coverage(client, auth, db_session, inside):
    from gridgov.models import Assignment

    headers = auth("grid_worker")
    worker_id = client.get("/api/v1/me", headers=headers).get_json()["id"]
    for assignment in db_session.scalars(select(Assignment).where(Assignment.user_id == worker_id)):
        assignment.active_to = assignment.active_from + timedelta(microseconds=1)
    db_session.flush()
    patrol = started(client, headers)
    track(client, headers, patrol["id"], fixes([inside], walk(patrol)))
    summary = finish(client, headers, patrol["id"]).get_json()
    assert summary["microgrids_assigned"] == 0
    assert summary["coverage"] is None


def test_finishing_again_returns_the_same_summary_and_tracking_stops(client, auth, inside):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    points = fixes([inside, (inside[0] + 1e-3, inside[1])], walk(patrol))
    track(client, headers, patrol["id"], points)
    first = finish(client, headers, patrol["id"])
    assert first.status_code == 200
    summary = first.get_json()
    assert set(summary) == {
        "id",
        "client_id",
        "started_at",
        "finished_at",
        "points",
        "length_m",
        "microgrids_assigned",
        "microgrids_visited",
        "coverage",
    }
    assert summary["finished_at"] is not None
    later = datetime.now(UTC) + timedelta(minutes=1)
    again = finish(client, headers, patrol["id"], finished_at=iso(later))
    assert again.status_code == 200
    assert again.get_json() == summary
    assert client.get(f"/api/v1/patrols/{patrol['id']}", headers=headers).get_json() == summary
    late = track(client, headers, patrol["id"], fixes([inside], walk(patrol) + timedelta(hours=1)))
    assert late.status_code == 409
    assert late.get_json()["error"] == "patrol_finished"
    # replaying the start of a finished patrol still answers 200 with the patrol
    replay = start(
        client, headers, patrol["client_id"], datetime.fromisoformat(patrol["started_at"])
    )
    assert replay.status_code == 200
    assert replay.get_json()["finished_at"] == summary["finished_at"]


def test_finish_takes_an_optional_time_not_before_the_start(client, auth):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    begin = datetime.fromisoformat(patrol["started_at"])
    early = finish(client, headers, patrol["id"], finished_at=iso(begin - timedelta(seconds=1)))
    assert early.status_code == 422
    assert early.get_json()["error"] == "finished_before_start"
    naive = finish(client, headers, patrol["id"], finished_at="2024-05-06T09:00:00")
    assert naive.status_code == 422
    ahead = finish(
        client, headers, patrol["id"], finished_at=iso(datetime.now(UTC) + timedelta(hours=1))
    )
    assert ahead.get_json()["error"] == "finished_at_in_future"
    end = begin + timedelta(minutes=25)
    done = finish(client, headers, patrol["id"], finished_at=iso(end.astimezone(CHINA_TZ)))
    assert datetime.fromisoformat(done.get_json()["finished_at"]) == end


def test_finish_needs_no_body(client, auth):
    headers = auth("grid_worker")
    patrol = started(client, headers)
    response = client.post(f"/api/v1/patrols/{patrol['id']}/finish", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["finished_at"] is not None


# --- back-dating: how far in the past a patrol, its points and its end may be --------------


def test_a_patrol_may_start_at_most_a_day_ago(client, auth, db_session):
    headers = auth("grid_worker")
    now = datetime.now(UTC)
    too_old = start(client, headers, client_id="old", started_at=now - timedelta(days=2))
    assert too_old.status_code == 422
    body = too_old.get_json()
    assert body["error"] == "started_at_too_old"
    assert body["errors"]["json"]["started_at"] == ["Must not be more than 24 hours in the past."]
    assert body["details"] == {"max_backdate_hours": 24}
    just_over = start(
        client, headers, client_id="old", started_at=now - LIMIT - timedelta(seconds=1)
    )
    assert just_over.status_code == 422
    assert db_session.scalar(select(func.count()).where(Patrol.client_id == "old")) == 0
    recent = started(client, headers, client_id="old", started_at=now - timedelta(hours=23))
    stored = db_session.get(Patrol, recent["id"])
    # recorded when it was accepted: what the indicators compare started_at with
    assert now <= stored.created_at <= datetime.now(UTC)


def test_the_limit_is_a_setting(client, auth, monkeypatch, app):
    configure(monkeypatch, app, PATROL_MAX_BACKDATE_HOURS=1.5)
    headers = auth("grid_worker")
    now = datetime.now(UTC)
    refused = start(client, headers, client_id="a", started_at=now - timedelta(hours=2))
    assert refused.status_code == 422
    assert refused.get_json()["details"] == {"max_backdate_hours": 1.5}
    assert "1.5 hours" in refused.get_json()["message"]
    assert start(client, headers, "b", started_at=now - timedelta(hours=1)).status_code == 201


def test_a_replay_after_the_window_answers_as_before(client, auth, app, monkeypatch):
    headers = auth("grid_worker")
    started_at = (datetime.now(UTC) - timedelta(hours=23)).replace(microsecond=0)
    first = start(client, headers, client_id="slow-phone", started_at=started_at)
    assert first.status_code == 201
    # An hour later the start is 24 h old: shrinking the window to 1 h shows the same moment.
    configure(monkeypatch, app, PATROL_MAX_BACKDATE_HOURS=1)
    replay = start(client, headers, "slow-phone", started_at.astimezone(CHINA_TZ))
    assert replay.status_code == 200
    assert replay.get_json() == first.get_json()
    # the same old time under a new client id is a new patrol: refused
    other = start(client, headers, "other-phone", started_at)
    assert other.status_code == 422
    assert other.get_json()["error"] == "started_at_too_old"
    # another old time under the recorded client id is still a conflict, as before
    moved = start(client, headers, "slow-phone", started_at - timedelta(hours=1))
    assert moved.status_code == 409
    assert moved.get_json()["error"] == "client_id_conflict"
    # and after finishing, the replay still answers with the patrol
    assert finish(client, headers, first.get_json()["id"]).status_code == 200
    finished = start(client, headers, "slow-phone", started_at)
    assert finished.status_code == 200
    assert finished.get_json()["finished_at"] is not None


def test_points_more_than_a_day_old_are_refused(client, auth, db_session, demo_users, inside):
    headers = auth("grid_worker")
    now = datetime.now(UTC)
    # a patrol started three days ago, in time, and never finished
    patrol_id = started_back_then(db_session, demo_users["grid_worker"].id, now - timedelta(days=3))
    points = fixes([inside] * 3, now - timedelta(hours=1))
    points[1]["t"] = iso(now - timedelta(days=2))
    response = track(client, headers, patrol_id, points)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "point_time_out_of_range"
    assert body["errors"]["json"]["points"] == {"1": {"t": ["More than 24 hours in the past."]}}
    assert body["details"]["indexes"] == [1]
    assert body["details"]["max_backdate_hours"] == 24
    assert stored_times(db_session, patrol_id) == []
    del points[1]
    assert track(client, headers, patrol_id, points).get_json()["accepted"] == 2
    recorded = db_session.scalars(
        select(TrackPoint.recorded_at).where(TrackPoint.patrol_id == patrol_id)
    ).all()
    assert len(recorded) == 2
    assert all(now <= moment <= datetime.now(UTC) for moment in recorded)


def test_a_point_resent_after_the_window_is_a_duplicate(
    client, auth, db_session, demo_users, inside
):
    headers = auth("grid_worker")
    worker_id = demo_users["grid_worker"].id
    now = datetime.now(UTC)
    patrol_id = started_back_then(db_session, worker_id, now - timedelta(days=3))
    old = fixes([inside] * 2, now - timedelta(days=3) + timedelta(minutes=5))
    # the phone sent these back then (in time)...
    patrol_service.add_track_points(
        db_session,
        patrol_id=patrol_id,
        worker_id=worker_id,
        fixes=[
            patrol_service.TrackFix(
                t=datetime.fromisoformat(p["t"]),
                lon=p["lon"],
                lat=p["lat"],
                input_lon=p["lon"],
                input_lat=p["lat"],
                input_crs="wgs84",
            )
            for p in old
        ],
        max_backdate=LIMIT,
        now=now - timedelta(days=3) + timedelta(minutes=10),
    )
    # ...and resends them now, with a fresh one: the old ones are duplicates, not errors
    fresh = fixes([inside], now - timedelta(minutes=1))
    body = track(client, headers, patrol_id, [*old, *fresh]).get_json()
    assert body == {"accepted": 1, "duplicates": 2, "points": 3}
    # an old time the patrol does not hold, sent along with a held one, is refused alone
    unheld = fixes([inside], now - timedelta(days=2))
    response = track(client, headers, patrol_id, [old[0], *unheld])
    assert response.status_code == 422
    assert list(response.get_json()["errors"]["json"]["points"]) == ["1"]


def test_a_patrol_may_not_be_finished_more_than_a_day_ago(client, auth, db_session, demo_users):
    headers = auth("grid_worker")
    now = datetime.now(UTC)
    patrol_id = started_back_then(db_session, demo_users["grid_worker"].id, now - timedelta(days=3))
    late = finish(client, headers, patrol_id, finished_at=iso(now - timedelta(days=2)))
    assert late.status_code == 422
    body = late.get_json()
    assert body["error"] == "finished_at_too_old"
    assert body["errors"]["json"]["finished_at"] == ["Must not be more than 24 hours in the past."]
    assert db_session.get(Patrol, patrol_id).finished_at is None
    done = finish(client, headers, patrol_id, finished_at=iso(now - timedelta(hours=23)))
    assert done.status_code == 200
    # finishing again returns the stored summary, however old its end is by then
    again = finish(client, headers, patrol_id, finished_at=iso(now - timedelta(days=2)))
    assert again.status_code == 200
    assert again.get_json() == done.get_json()


# --- who may see and touch a patrol --------------------------------------------------------


def test_another_workers_patrol_is_404_like_an_unknown_one(client, auth, inside):
    owner = auth("grid_worker")
    patrol = started(client, owner)
    points = fixes([inside], walk(patrol))
    for username in ("grid_head", "town_supervisor", "admin"):
        other = auth(username)
        for response in (
            track(client, other, patrol["id"], points),
            finish(client, other, patrol["id"]),
        ):
            assert response.status_code == 404
            assert response.get_json()["error"] == "patrol_not_found"
    for response in (
        client.get(f"/api/v1/patrols/{patrol['id']}", headers=auth("grid_head")),
        client.get(f"/api/v1/patrols/{patrol['id']}", headers=auth("town_supervisor")),
        client.get("/api/v1/patrols/987654321", headers=owner),
        track(client, owner, 987654321, points),
        finish(client, owner, 987654321),
    ):
        assert response.status_code == 404
        assert response.get_json()["error"] == "patrol_not_found"
    # nothing happened to it, and its owner and an admin can read it
    mine = client.get(f"/api/v1/patrols/{patrol['id']}", headers=owner).get_json()
    assert (mine["points"], mine["finished_at"]) == (0, None)
    admin_view = client.get(f"/api/v1/patrols/{patrol['id']}", headers=auth("admin"))
    assert admin_view.status_code == 200
    assert admin_view.get_json() == mine


def test_list_is_own_patrols_newest_first_page_by_page(client, auth):
    headers = auth("grid_worker")
    base = datetime.now(UTC) - timedelta(hours=20)
    # started out of order; two at the same instant (the id breaks the tie)
    offsets = [3, 0, 4, 1, 1, 2]
    ids = [
        started(client, headers, client_id=f"list-{i}", started_at=base + timedelta(hours=h))["id"]
        for i, h in enumerate(offsets)
    ]
    started(client, auth("grid_head"), client_id="not-mine")
    expected = [
        pid for _, pid in sorted(zip(offsets, ids, strict=True), key=lambda p: (-p[0], -p[1]))
    ]
    seen, cursor = [], None
    while True:
        url = "/api/v1/patrols?limit=4" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=headers).get_json()
        assert len(body["items"]) <= 4
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert "coverage" in body["items"][0]


@pytest.mark.parametrize(
    "cursor", ["garbage!", "eyJpZCI6MX0", "eyJpZCI6IngiLCJzdGFydGVkX2F0IjoieCJ9"]
)
def test_a_forged_cursor_is_422(client, auth, cursor):
    response = client.get(f"/api/v1/patrols?cursor={cursor}", headers=auth("grid_worker"))
    assert response.status_code == 422
    assert response.get_json()["error"] == "invalid_cursor"


# --- who may read a patrol: its worker, admins, supervisors of where it was walked ----------

TOWN = "330212001"  # town_supervisor's town
OTHER_TOWN = "330212002"
OTHER_TOWN_MICROGRID = "330212002001001001"


def visible(client, headers, patrol_id, user_id) -> tuple[int, list[int]]:
    """(status of GET /patrols/{id}, ids listed by GET /patrols?user=) for `headers`."""
    one = client.get(f"/api/v1/patrols/{patrol_id}", headers=headers)
    listed = client.get(f"/api/v1/patrols?user={user_id}", headers=headers)
    assert listed.status_code == 200
    return one.status_code, [item["id"] for item in listed.get_json()["items"]]


def test_supervisors_read_the_patrols_walked_in_their_areas(app, client, auth, db_session):
    worker = make_user(db_session, username="walker", area_code=WORKER_MICROGRID)
    patrol = started(client, bearer(app, worker))
    other_supervisor = make_user(
        db_session, username="other_town_chief", role="supervisor", area_code=OTHER_TOWN
    )
    for headers in (auth("town_supervisor"), auth("district_supervisor"), auth("admin")):
        assert visible(client, headers, patrol["id"], worker.id) == (200, [patrol["id"]])
    for headers in (bearer(app, other_supervisor), auth("grid_head"), auth("grid_worker")):
        assert visible(client, headers, patrol["id"], worker.id) == (404, [])
    # the worker's own list is unchanged by all this
    assert visible(client, bearer(app, worker), patrol["id"], worker.id) == (200, [patrol["id"]])
    assert client.get("/api/v1/patrols", headers=bearer(app, worker)).get_json()["items"]


def test_a_patrol_stays_with_the_area_its_worker_was_on_duty_in(app, client, db_session):
    now = datetime.now(UTC)
    worker = make_user(db_session, username="mover")
    make_assignment(
        db_session,
        user=worker,
        area_code=WORKER_MICROGRID,
        active_from=now - timedelta(days=3),
        active_to=now - timedelta(days=1),
    )
    make_assignment(
        db_session, user=worker, area_code=OTHER_TOWN_MICROGRID, active_from=now - timedelta(days=1)
    )
    headers = bearer(app, worker)
    before = {"id": started_back_then(db_session, worker.id, now - timedelta(days=2))}
    after = started(client, headers, client_id="new", started_at=now - timedelta(hours=1))
    chiefs = {
        code: make_user(db_session, username=f"chief_{code}", role="supervisor", area_code=code)
        for code in (TOWN, OTHER_TOWN)
    }
    old_town, new_town = bearer(app, chiefs[TOWN]), bearer(app, chiefs[OTHER_TOWN])
    assert visible(client, old_town, before["id"], worker.id) == (200, [before["id"]])
    assert visible(client, old_town, after["id"], worker.id)[0] == 404
    assert visible(client, new_town, after["id"], worker.id) == (200, [after["id"]])
    assert visible(client, new_town, before["id"], worker.id)[0] == 404


@pytest.mark.parametrize("user", ["0", "-1", "abc", str(2**31)])
def test_a_bad_user_filter_is_422(client, auth, user):
    response = client.get(f"/api/v1/patrols?user={user}", headers=auth("town_supervisor"))
    assert response.status_code == 422


# --- the service the incident intake uses ---------------------------------------------------


def test_get_open_patrol_of_worker(client, auth, db_session, demo_users):
    headers = auth("grid_worker")
    worker_id = demo_users["grid_worker"].id
    open_patrol = started(client, headers, client_id="open")
    closed = started(client, headers, client_id="closed")
    finish(client, headers, closed["id"])
    found = patrol_service.get_open_patrol_of_worker(
        db_session, patrol_id=open_patrol["id"], worker_id=worker_id
    )
    assert found.id == open_patrol["id"]
    for patrol_id, who in [
        (closed["id"], worker_id),
        (open_patrol["id"], demo_users["grid_head"].id),
        (987654321, worker_id),
    ]:
        with pytest.raises(ValidationFailed) as caught:
            patrol_service.get_open_patrol_of_worker(db_session, patrol_id=patrol_id, worker_id=who)
        assert caught.value.code == "patrol_not_attachable"


# --- real concurrency: two connections starting the same patrol at once ----------------------


def test_concurrent_starts_of_one_client_id_make_one_patrol(app, demo_users):
    """Two phones' retries racing: ON CONFLICT makes one row and both get it (real commits)."""
    with app.app_context():
        engine = create_engine(db.engine.url.render_as_string(hide_password=False))
    worker_id = demo_users["grid_worker"].id
    moment = datetime.now(UTC) - timedelta(minutes=1)
    client_id = f"race-{moment.timestamp()}"

    def race():
        with Session(engine) as session:
            result = patrol_service.start_patrol(
                session,
                worker_id=worker_id,
                client_id=client_id,
                started_at=moment,
                max_backdate=LIMIT,
            )
            session.commit()
            return result

    try:
        results = run_at_once(race)
        assert sorted(r.created for r in results) == [False, False, False, True]
        assert len({r.patrol.id for r in results}) == 1
    finally:
        with Session(engine) as session:
            session.execute(
                delete(Patrol).where(Patrol.worker_id == worker_id, Patrol.client_id == client_id)
            )
            session.commit()
        engine.dispose()
