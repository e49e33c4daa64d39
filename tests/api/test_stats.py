"""Indicators and rankings: the numbers match the cases behind them, counted by hand.

The cases live in March 2024 (China time), a month no other test writes into. Each one is
listed with what it counts for; every expected number below is written out literally with
its arithmetic, never computed with the code under test.
"""

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from gridgov.models import Area, Patrol, TrackPoint
from gridgov.services import stats
from gridgov.services.calendar import CHINA_TZ
from gridgov.spatial import point_sql
from tests.factories import make_incident
from tests.helpers import configure

MARCH = "2024-03"

TOWN_A = "330212001"  # town_supervisor's town
TOWN_B, TOWN_C, TOWN_D = "330212002", "330212003", "330212004"
G1 = "330212001001001"  # grid_head's grid
G2 = "330212001001002"
G3 = "330212001002001"
MG1 = "330212001001001001"  # grid_worker's micro-grid (in G1)
MG2 = "330212001001001002"  # in G1
MG3 = "330212001001002001"  # in G2
MG4 = "330212001002001001"  # in G3
MG_B = "330212002001001001"
MG_C = "330212003001001001"
MG_D = "330212004001001001"

# Times in China time.
REPORTED = datetime(2024, 3, 10, 9, 0, tzinfo=CHINA_TZ)
H = datetime(2024, 3, 12, 10, 0, tzinfo=CHINA_TZ)  # the handling deadline of most cases
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def at(month: int, day: int, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2024, month, day, hour, minute, second, tzinfo=CHINA_TZ)


@pytest.fixture
def cases(db_session, demo_users):
    """The hand-counted cases of March 2024, and patrols; returns nothing (see the comments)."""
    reporter = demo_users["admin"].id

    def case(microgrid, status, created_at=REPORTED, **columns):
        return make_incident(
            db_session,
            reporter=reporter,
            microgrid_code=microgrid,
            status=status,
            created_at=created_at,
            **columns,
        )

    def closed(microgrid, *, late=False, level="grid", **columns):
        resolved_at = H + HOUR if late else H - HOUR
        return case(
            microgrid,
            "closed",
            accepted_at=REPORTED + HOUR,
            handle_deadline=H,
            resolved_at=resolved_at,
            resolved_level=level,
            closed_at=resolved_at + DAY,
            **columns,
        )

    # Town A, March:
    closed(MG1)  # a1: due, closed on time, resolved on time, handled, grid
    closed(MG1, late=True, level="town", rework_count=1)  # a2: closed late, reworked, town
    case(  # a3: resolved on the spot (no handle_deadline: on time), closed
        MG3,
        "closed",
        resolved_on_site=True,
        resolved_at=REPORTED,
        resolved_level="grid",
        closed_at=REPORTED + DAY,
    )
    case(  # a4: resolved exactly at the deadline (on time) at the district; verify overdue
        MG2,
        "resolved",
        handling_level="district",
        escalation_count=3,
        handle_deadline=H,
        resolved_at=H,
        resolved_level="district",
        deadline=at(3, 20),
    )
    case(  # a5: sent back (resolved_at cleared), fresh clock not yet due: handled, reworked
        MG3,
        "returned",
        rework_count=1,
        resolved_level="grid",
        handle_deadline=at(4, 5),
        deadline=at(4, 5),
    )
    case(MG4, "in_progress", handle_deadline=at(3, 15), deadline=at(3, 15))  # a6: overdue
    case(MG1, "rejected", closed_at=REPORTED + HOUR)  # a7: reported, not due
    case(MG1, "duplicate", closed_at=REPORTED + HOUR)  # a8: reported, not due
    # a9: reported at the first instant of March, never accepted: due, overdue
    case(MG3, "reported", created_at=at(3, 1, 0), deadline=at(3, 1, 1))
    # a10: reported the last second of February (not in March), still open and overdue
    case(MG1, "dispatched", created_at=at(2, 29, 23, 59, 59), deadline=at(3, 2))
    # a11: reported at the first instant of April (not in March), open, not yet overdue
    case(MG1, "accepted", created_at=at(4, 1, 0), deadline=at(4, 3))
    # a12: February, closed: counts for nothing
    closed(MG1, created_at=at(2, 10))

    # Town B: b1 closed on time; b2 open, not overdue.
    closed(MG_B)
    case(MG_B, "in_progress", handle_deadline=at(4, 10), deadline=at(4, 10))
    # Town C: c1, c2 closed on time; c3 closed late after a rework, at the community;
    # c4 accepted and overdue.
    closed(MG_C)
    closed(MG_C)
    closed(MG_C, late=True, level="community", rework_count=1)
    case(MG_C, "accepted", handle_deadline=at(3, 25), deadline=at(3, 25))
    # Town D: d1 closed on time.
    closed(MG_D)
    # Unrouted (the district's queue): reported in March, no deadline.
    case(None, "reported", deadline=None)

    # Patrols: finished in March through MG1 (one point) and MG2 (a short line); in town B
    # through MG_B. Not counted: an unfinished March patrol and a finished February one.
    worker = demo_users["grid_worker"].id
    patrol(db_session, worker, at(3, 5), [spot(db_session, MG1)])
    mg2 = spot(db_session, MG2)
    patrol(db_session, worker, at(3, 6), [mg2, (mg2[0] + 1e-6, mg2[1])])
    patrol(db_session, worker, at(3, 7), [spot(db_session, MG3)], finished=False)
    patrol(db_session, worker, at(2, 28), [spot(db_session, MG3)])
    patrol(db_session, worker, at(3, 8), [spot(db_session, MG_B)])


def spot(session, code: str) -> tuple[float, float]:
    """A point inside the area."""
    point = func.ST_PointOnSurface(Area.boundary)
    return session.execute(
        select(func.ST_X(point), func.ST_Y(point)).where(Area.code == code)
    ).one()


def patrol(
    session, worker_id, started_at, points, *, finished=True, created_late=None, received_late=None
) -> Patrol:
    """A patrol and its points, recorded a minute after their times (in time) unless the
    server got the start `created_late` and the points `received_late` after their times."""
    row = Patrol(
        client_id=str(uuid.uuid4()),
        worker_id=worker_id,
        started_at=started_at,
        finished_at=started_at + HOUR if finished else None,
        created_at=started_at + (created_late or MINUTE),
    )
    session.add(row)
    session.flush()
    for i, (lon, lat) in enumerate(points):
        t = started_at + i * timedelta(seconds=10)
        session.add(
            TrackPoint(
                patrol_id=row.id,
                t=t,
                location=point_sql(lon, lat),
                input_lon=lon,
                input_lat=lat,
                input_crs="wgs84",
                recorded_at=t + (received_late or MINUTE),
            )
        )
    session.flush()
    return row


def indicators(client, auth, user, area, **params):
    """GET the indicators; March 2024 unless `period` or `from`/`to` say otherwise."""
    if "from" not in params:
        params.setdefault("period", MARCH)
    return client.get(
        "/api/v1/stats/indicators", query_string={"area": area, **params}, headers=auth(user)
    )


def ranking(client, auth, user, **params):
    return client.get(
        "/api/v1/stats/ranking", query_string={"period": MARCH, **params}, headers=auth(user)
    )


def ok(response) -> dict:
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def rate(value, numerator, denominator) -> dict:
    return {"value": value, "numerator": numerator, "denominator": denominator}


# --- indicators match the cases behind them -------------------------------------------------


def test_town_indicators_match_the_cases(client, auth, cases):
    body = ok(indicators(client, auth, "town_supervisor", TOWN_A))
    assert body["area"] == {"code": TOWN_A, "name": "中河街道", "level": "town"}
    assert body["period"] == {
        "label": "2024-03",
        "from": "2024-03-01",
        "to": "2024-03-31",
        "start": "2024-03-01T00:00:00+08:00",
        "end": "2024-04-01T00:00:00+08:00",
    }
    # A past month: outcomes and the overdue stock are read as of its end.
    assert body["as_of"] == "2024-04-01T00:00:00+08:00"
    assert body["counts"] == {
        "reported": 9,  # a1..a9 (a10 is February, a11 April, a12 February)
        "due": 7,  # 9 - a7 (rejected) - a8 (duplicate)
        "closed": 3,  # a1, a2, a3
        "closed_on_time": 2,  # a1 (resolved before H), a3 (on the spot); a2 was late
        "resolved": 4,  # a1, a2, a3, a4 (a5 was sent back: resolved_at cleared)
        "resolved_on_time": 3,  # a1, a3, a4 (exactly at H counts as on time)
        "handled": 5,  # the 4 resolved + a5 (returned, rework_count 1)
        "reworked": 2,  # a2, a5
        "resolved_town_or_below": 3,  # a1 grid, a2 town, a3 grid; a4 at the district
        "overdue": 4,  # a4 (3-20), a6 (3-15), a9 (3-01), a10 (3-02); a5, a11 not yet due
        "grids": 6,  # 3 communities x 2 grids
        "microgrids": 18,  # 6 grids x 3
        "microgrids_patrolled": 2,  # MG1, MG2 (MG3's patrols: unfinished, or in February)
    }
    assert body["rates"] == {
        "closure_rate": rate(0.4286, 3, 7),  # 3 / 7 = 0.428571…
        "on_time_closure_rate": rate(0.2857, 2, 7),  # 2 / 7 = 0.285714…
        "on_time_handling_rate": rate(0.75, 3, 4),  # 3 / 4
        "rework_rate": rate(0.4, 2, 5),  # 2 / 5
        "town_or_below_rate": rate(0.75, 3, 4),  # 3 / 4
        "reports_per_grid": rate(1.5, 9, 6),  # 9 / 6
        "patrol_coverage": rate(0.1111, 2, 18),  # 2 / 18 = 0.1111…
    }
    assert body["definitions"] == stats.definitions()
    assert body["definitions"]["closure_rate"] == "结案率 = closed / due"


def test_district_indicators_include_the_unrouted_queue(client, auth, cases):
    body = ok(indicators(client, auth, "admin", "330212"))
    counts = body["counts"]
    assert counts["reported"] == 17  # A 9 + B 2 + C 4 + D 1 + unrouted 1
    assert counts["due"] == 15  # A 7 + B 2 + C 4 + D 1 + unrouted 1
    assert counts["closed"] == 8  # A 3 + B 1 + C 3 + D 1
    assert counts["closed_on_time"] == 6  # A 2 + B 1 + C 2 + D 1
    assert counts["handled"] == 10  # A 5 + B 1 + C 3 + D 1
    assert counts["reworked"] == 3  # A 2 + C 1
    assert counts["overdue"] == 5  # A 4 + C 1 (c4); the unrouted case has no deadline
    assert (counts["grids"], counts["microgrids"]) == (138, 414)  # 23 towns x 6 grids x 3
    assert counts["microgrids_patrolled"] == 3  # MG1, MG2, MG_B
    assert body["rates"]["closure_rate"] == rate(0.5333, 8, 15)  # 8 / 15 = 0.5333…
    assert body["rates"]["reports_per_grid"] == rate(0.1232, 17, 138)  # 0.123188…
    assert body["rates"]["patrol_coverage"] == rate(0.0072, 3, 414)  # 0.007246…


def test_microgrid_rates_without_a_denominator_are_null(client, auth, cases):
    body = ok(indicators(client, auth, "grid_worker", MG1))
    counts = body["counts"]
    # MG1 holds a1, a2, a7, a8 (March) and a10, a11, a12 (not March).
    assert (counts["reported"], counts["due"], counts["closed"]) == (4, 2, 2)
    assert counts["closed_on_time"] == 1  # a1
    assert counts["overdue"] == 1  # a10
    assert (counts["grids"], counts["microgrids"], counts["microgrids_patrolled"]) == (0, 1, 1)
    assert body["rates"]["reports_per_grid"] == rate(None, 4, 0)  # no grid under a micro-grid
    assert body["rates"]["patrol_coverage"] == rate(1.0, 1, 1)
    assert body["rates"]["on_time_closure_rate"] == rate(0.5, 1, 2)


def test_an_empty_area_has_null_rates_not_zero(client, auth, cases):
    body = ok(indicators(client, auth, "admin", "330212109"))
    assert body["counts"]["due"] == 0
    assert body["rates"]["closure_rate"] == rate(None, 0, 0)
    assert body["rates"]["reports_per_grid"] == rate(0.0, 0, 6)  # grids exist: a true zero


def test_days_and_quarters_are_periods_too(client, auth, cases):
    # 1 to 9 March: a9 (1 March 00:00) only; a1..a8 were reported on the 10th.
    days = {"from": "2024-03-01", "to": "2024-03-09"}
    body = ok(indicators(client, auth, "admin", TOWN_A, **days))
    assert body["period"]["label"] == "2024-03-01..2024-03-09"
    assert body["counts"]["reported"] == 1
    # As of 10 March 00:00: a6 (3-15), a4 (3-20) not yet overdue; a9 (3-01), a10 (3-02) were.
    assert body["counts"]["overdue"] == 2
    quarter = ok(indicators(client, auth, "admin", TOWN_A, period="2024-Q1"))
    assert quarter["period"]["from"] == "2024-01-01"
    assert quarter["period"]["to"] == "2024-03-31"
    assert quarter["counts"]["reported"] == 11  # March's 9 + a10, a12 (February)


def test_the_default_period_is_this_month_in_china(client, auth):
    body = ok(
        client.get(
            "/api/v1/stats/indicators", query_string={"area": MG1}, headers=auth("grid_worker")
        )
    )
    today = datetime.now(UTC).astimezone(CHINA_TZ).date()
    assert body["period"]["label"] == f"{today:%Y-%m}"
    assert body["period"]["from"] == f"{today:%Y-%m}-01"


def test_the_formulas_are_documented_next_to_the_code():
    lines = {" ".join(line.split()) for line in stats.__doc__.splitlines()}
    for name, definition in stats.definitions().items():
        assert f"| {name} | {definition} |" in lines, name


# --- a case driven through the real workflow ------------------------------------------------


def test_a_case_through_the_workflow_is_counted_closed_on_time_and_reassigning_is_no_rework(
    client, auth, demo_users, db_session
):
    lon, lat = spot(db_session, MG1)
    report = client.post(
        "/api/v1/incidents",
        json={
            "client_id": str(uuid.uuid4()),
            "category": "env_garbage",
            "description": "暴露垃圾",
            "location": {"lon": lon, "lat": lat},
        },
        headers=auth("grid_worker"),
    )
    assert report.status_code == 201, report.get_json()
    case_id = report.get_json()["id"]

    def act(action, user="town_supervisor", **fields):
        response = client.post(
            f"/api/v1/incidents/{case_id}/actions",
            json={"action": action, **fields},
            headers=auth(user),
        )
        assert response.status_code == 200, response.get_json()

    act("accept")
    act("dispatch", assignee=demo_users["grid_worker"].id)
    act("start", user="grid_worker")
    act("reassign", assignee=demo_users["grid_head"].id, note="网格员请假")
    act("resolve", user="grid_head", note="已清理")
    act("verify")
    act("close")
    today = datetime.now(UTC).astimezone(CHINA_TZ).date()
    window = {"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))}
    body = ok(
        client.get(
            "/api/v1/stats/indicators",
            query_string={"area": MG1, **window},
            headers=auth("grid_worker"),
        )
    )
    counts = body["counts"]
    assert (counts["reported"], counts["due"], counts["closed"]) == (1, 1, 1)
    assert (counts["closed_on_time"], counts["resolved_town_or_below"]) == (1, 1)
    assert body["rates"]["on_time_closure_rate"] == rate(1.0, 1, 1)
    assert (counts["handled"], counts["reworked"]) == (1, 0)
    assert body["rates"]["rework_rate"] == rate(0.0, 0, 1)


# --- rankings -------------------------------------------------------------------------------


def items(body) -> list[tuple]:
    return [(i["rank"], i["code"], i["value"], i["numerator"], i["denominator"]) for i in body]


NO_CASE_TOWNS = [
    "330212005", "330212006", "330212007", "330212008", "330212009", "330212010", "330212011",
    "330212012", "330212013", "330212100", "330212101", "330212102", "330212103", "330212104",
    "330212105", "330212106", "330212107", "330212108", "330212109",
]  # fmt: skip


def test_towns_ranked_by_on_time_closure_ties_share_nulls_last(client, auth, cases):
    body = ok(ranking(client, auth, "district_supervisor", level="town"))
    assert (body["indicator"], body["order"]) == ("on_time_closure_rate", "desc")
    assert body["definition"] == "按期结案率 = closed_on_time / due"
    assert items(body["items"]) == [
        (1, TOWN_D, 1.0, 1, 1),  # 1 / 1
        (2, TOWN_B, 0.5, 1, 2),  # 1 / 2
        (2, TOWN_C, 0.5, 2, 4),  # 2 / 4 = 1 / 2: the same rank
        (4, TOWN_A, 0.2857, 2, 7),  # 2 / 7; rank 4, not 3
        *[(None, code, None, 0, 0) for code in NO_CASE_TOWNS],  # no due case: no rank
    ]
    assert body["items"][0]["name"] == "下应街道"


def test_rework_ranks_lower_first(client, auth, cases):
    body = ok(ranking(client, auth, "admin", level="town", indicator="rework_rate"))
    assert body["order"] == "asc"
    assert items(body["items"])[:4] == [
        (1, TOWN_B, 0.0, 0, 1),  # 0 / 1
        (1, TOWN_D, 0.0, 0, 1),  # 0 / 1
        (3, TOWN_C, 0.3333, 1, 3),  # c3 / (c1, c2, c3)
        (4, TOWN_A, 0.4, 2, 5),  # 2 / 5
    ]
    assert [i["rank"] for i in body["items"][4:]] == [None] * 19


def test_overdue_ranks_fewest_first_and_is_never_null(client, auth, cases):
    body = ok(ranking(client, auth, "admin", level="town", indicator="overdue"))
    ranked = items(body["items"])
    assert ranked[:21] == [
        (1, code, 0, 0, None) for code in sorted([TOWN_B, TOWN_D, *NO_CASE_TOWNS])
    ]
    assert ranked[21:] == [(22, TOWN_C, 1, 1, None), (23, TOWN_A, 4, 4, None)]


def test_a_town_supervisor_ranks_the_grids_of_their_town(client, auth, cases):
    body = ok(ranking(client, auth, "town_supervisor", level="grid"))
    assert body["parent"] is None
    assert items(body["items"]) == [
        (1, G1, 0.3333, 1, 3),  # a1 / (a1, a2, a4)
        (1, G2, 0.3333, 1, 3),  # a3 / (a3, a5, a9): equal to G1
        (3, G3, 0.0, 0, 1),  # a6 open
        (None, "330212001002002", None, 0, 0),
        (None, "330212001003001", None, 0, 0),
        (None, "330212001003002", None, 0, 0),
    ]
    # The same with the town named as parent.
    named = ok(ranking(client, auth, "town_supervisor", level="grid", parent=TOWN_A))
    assert named["items"] == body["items"]


def test_grids_ranked_by_patrol_coverage(client, auth, cases):
    body = ok(
        ranking(client, auth, "admin", level="grid", parent=TOWN_A, indicator="patrol_coverage")
    )
    assert items(body["items"])[:2] == [
        (1, G1, 0.6667, 2, 3),  # MG1, MG2 of G1's 3 micro-grids
        (2, G2, 0.0, 0, 3),
    ]
    assert [i["rank"] for i in body["items"][2:]] == [2, 2, 2, 2]


def coverage(client, auth, area=TOWN_A) -> tuple[int, dict]:
    body = ok(indicators(client, auth, "admin", area))
    return body["counts"]["microgrids_patrolled"], body["rates"]["patrol_coverage"]


def test_patrols_recorded_late_do_not_change_a_past_months_coverage(
    client, auth, cases, db_session, demo_users
):
    assert coverage(client, auth) == (2, rate(0.1111, 2, 18))  # MG1, MG2
    worker = demo_users["grid_worker"].id
    # Written today straight into the tables with March times (the server defaults stamp
    # them now): a patrol through MG3 and, on a March patrol recorded in time, points in MG4.
    lon, lat = spot(db_session, MG3)
    started_at = at(3, 9)
    patrol_id = db_session.execute(
        text(
            "INSERT INTO patrol (client_id, worker_id, started_at, finished_at)"
            " VALUES ('late-sql', :worker, :start, :end) RETURNING id"
        ),
        {"worker": worker, "start": started_at, "end": started_at + HOUR},
    ).scalar_one()
    in_time = patrol(db_session, worker, at(3, 9), [])
    lon4, lat4 = spot(db_session, MG4)
    for pid, (x, y) in ((patrol_id, (lon, lat)), (in_time.id, (lon4, lat4))):
        db_session.execute(
            text(
                "INSERT INTO track_point (patrol_id, t, location, input_lon, input_lat, input_crs)"
                " VALUES (:patrol, :t, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :lon, :lat,"
                " 'wgs84')"
            ),
            {"patrol": pid, "t": started_at + MINUTE, "lon": x, "lat": y},
        )
    # Through the ORM: a start recorded 25 h late (points in time), points received 25 h late.
    late = HOUR + DAY
    patrol(db_session, worker, at(3, 10), [spot(db_session, MG3)], created_late=late)
    patrol(db_session, worker, at(3, 10), [spot(db_session, MG4)], received_late=late)
    assert coverage(client, auth) == (2, rate(0.1111, 2, 18))
    ranked = ok(
        ranking(client, auth, "admin", level="grid", parent=TOWN_A, indicator="patrol_coverage")
    )
    assert items(ranked["items"])[:2] == [(1, G1, 0.6667, 2, 3), (2, G2, 0.0, 0, 3)]
    # Recorded 23 h late is in time: MG3 counts.
    patrol(db_session, worker, at(3, 11), [spot(db_session, MG3)], created_late=23 * HOUR)
    assert coverage(client, auth)[0] == 3
    # Points stored before the time they were received was kept (NULL) count: MG4.
    db_session.execute(
        text("UPDATE track_point SET recorded_at = NULL WHERE patrol_id = :p"), {"p": in_time.id}
    )
    assert coverage(client, auth)[0] == 4


def test_the_in_time_rule_follows_the_setting(
    client, auth, cases, db_session, demo_users, app, monkeypatch
):
    worker = demo_users["grid_worker"].id
    two_days = 2 * DAY
    patrol(db_session, worker, at(3, 10), [spot(db_session, MG3)], created_late=two_days)
    patrol(db_session, worker, at(3, 10), [spot(db_session, MG4)], received_late=two_days)
    assert coverage(client, auth)[0] == 2
    configure(monkeypatch, app, PATROL_MAX_BACKDATE_HOURS=72)
    assert coverage(client, auth)[0] == 4


# --- scope ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user, area, status",
    [
        ("admin", MG_B, 200),
        ("district_supervisor", TOWN_B, 200),
        ("town_supervisor", TOWN_A, 200),
        ("town_supervisor", G2, 200),  # under their town
        ("town_supervisor", TOWN_B, 403),  # another town
        ("town_supervisor", "330212", 403),  # above their town
        ("grid_head", G1, 200),
        ("grid_head", MG2, 200),
        ("grid_head", G2, 403),
        ("grid_worker", MG1, 200),
        ("grid_worker", G1, 403),  # the grid above their micro-grid
        ("grid_worker", MG2, 403),
        ("admin", "330212999", 404),
    ],
)
def test_indicators_only_inside_the_callers_scope(client, auth, user, area, status):
    response = indicators(client, auth, user, area)
    assert response.status_code == status, response.get_json()
    if status == 403:
        assert response.get_json()["error"] == "forbidden"
    if status == 404:
        assert response.get_json()["error"] == "area_not_found"


@pytest.mark.parametrize(
    "user, params, status, error",
    [
        ("town_supervisor", {"level": "town"}, 403, "forbidden"),  # ranking towns: not theirs
        ("town_supervisor", {"level": "grid", "parent": TOWN_B}, 403, "forbidden"),
        ("town_supervisor", {"level": "grid", "parent": "330212"}, 403, "forbidden"),
        ("grid_head", {"level": "grid"}, 403, "forbidden"),
        ("grid_worker", {"level": "grid"}, 403, "forbidden"),
        ("admin", {"level": "grid", "parent": G1}, 422, "invalid_parent"),
        ("admin", {"level": "town", "parent": TOWN_A}, 422, "invalid_parent"),
        ("admin", {"level": "grid", "parent": "330212999"}, 404, "area_not_found"),
    ],
)
def test_ranking_refusals(client, auth, user, params, status, error):
    response = ranking(client, auth, user, **params)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"] == error


def test_a_district_supervisor_ranks_every_grid(client, auth):
    body = ok(ranking(client, auth, "district_supervisor", level="grid"))
    assert len(body["items"]) == 138


def test_stats_need_a_token(client):
    response = client.get("/api/v1/stats/indicators", query_string={"area": TOWN_A})
    assert response.status_code == 401


# --- CSV ------------------------------------------------------------------------------------


def parse_csv(response) -> list[dict]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    data = response.get_data()
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_indicators_as_csv(client, auth, cases):
    response = indicators(client, auth, "town_supervisor", TOWN_A, format="csv")
    assert "Content-Length" not in response.headers  # streamed
    rows = {row["indicator"]: row for row in parse_csv(response)}
    assert list(rows) == [*stats.COUNTS, *stats.RATES]
    assert rows["due"]["value"] == "7"
    assert rows["closure_rate"] | {"definition": ""} == {
        "area_code": TOWN_A,
        "area_name": "中河街道",
        "from": "2024-03-01",
        "to": "2024-03-31",
        "as_of": "2024-04-01T00:00:00+08:00",
        "indicator": "closure_rate",
        "value": "0.4286",  # 3 / 7
        "numerator": "3",
        "denominator": "7",
        "definition": "",
    }
    assert rows["closure_rate"]["definition"] == "结案率 = closed / due"


def test_ranking_as_csv(client, auth, cases):
    response = ranking(client, auth, "admin", level="town", format="csv")
    rows = parse_csv(response)
    assert list(rows[0]) == [
        "rank", "code", "name", "indicator", "value", "numerator", "denominator", "from", "to",
    ]  # fmt: skip
    assert [(r["rank"], r["code"], r["value"]) for r in rows[:4]] == [
        ("1", TOWN_D, "1.0"),
        ("2", TOWN_B, "0.5"),
        ("2", TOWN_C, "0.5"),
        ("4", TOWN_A, "0.2857"),
    ]
    assert rows[4]["rank"] == "" and rows[4]["value"] == ""  # no value: empty cells
    assert len(rows) == 23


# --- bad parameters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, field",
    [
        ({}, "area"),
        ({"area": "abc"}, "area"),
        ({"area": TOWN_A, "period": "2024-13"}, "period"),
        ({"area": TOWN_A, "period": "2024-Q5"}, "period"),
        ({"area": TOWN_A, "period": "2024-03", "from": "2024-03-01", "to": "2024-03-02"}, "period"),
        ({"area": TOWN_A, "from": "2024-03-01"}, "to"),
        ({"area": TOWN_A, "to": "2024-03-01"}, "from"),
        ({"area": TOWN_A, "from": "2024-03-02", "to": "2024-03-01"}, "to"),
        ({"area": TOWN_A, "from": "2024-01-01", "to": "2025-01-01"}, "to"),  # 367 days
        ({"area": TOWN_A, "from": "2024-02-30", "to": "2024-03-01"}, "from"),
        ({"area": TOWN_A, "format": "xml"}, "format"),
    ],
)
def test_bad_indicator_parameters_are_422_in_the_envelope(client, auth, params, field):
    response = client.get("/api/v1/stats/indicators", query_string=params, headers=auth("admin"))
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "validation_failed"
    assert field in body["errors"]["query"], body


@pytest.mark.parametrize(
    "params, field",
    [
        ({}, "level"),
        ({"level": "community"}, "level"),
        ({"level": "town", "indicator": "happiness"}, "indicator"),
        ({"level": "town", "period": "March"}, "period"),
        ({"level": "grid", "parent": "33x"}, "parent"),
    ],
)
def test_bad_ranking_parameters_are_422_in_the_envelope(client, auth, params, field):
    response = client.get("/api/v1/stats/ranking", query_string=params, headers=auth("admin"))
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "validation_failed"
    assert field in body["errors"]["query"], body


def test_a_whole_year_is_allowed(client, auth):
    query = {"area": TOWN_A, "from": "2024-01-01", "to": "2024-12-31"}  # 366 days (leap year)
    assert ok(client.get("/api/v1/stats/indicators", query_string=query, headers=auth("admin")))
