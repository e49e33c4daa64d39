"""Listing (filters, paging, GeoJSON), tasks, the escalation job and concurrent actions."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select, text

from config import Config
from gridgov.models import IncidentEvent
from gridgov.services import workflow
from gridgov.services.calendar import load_calendar
from tests.factories import make_incident
from tests.helpers import bearer

MG_A = "330212001001001001"  # grid_worker's micro-grid, town 330212001
MG_A2 = "330212001001002001"  # same town, another grid
MG_B = "330212002001001001"  # another town
CASE_NAMES = ("a_open", "a_overdue", "a_fire", "a_closed", "b_open", "unrouted")


@pytest.fixture
def cases(db_session, demo_users):
    """A handful of incidents in known places and states."""
    reporter = demo_users["grid_worker"]
    past = datetime.now(UTC) - timedelta(hours=2)
    return {
        "a_open": make_incident(db_session, reporter=reporter, microgrid_code=MG_A),
        "a_overdue": make_incident(
            db_session, reporter=reporter, microgrid_code=MG_A, deadline=past
        ),
        "a_fire": make_incident(
            db_session, reporter=reporter, microgrid_code=MG_A2, category_code="fire_ebike"
        ),
        "a_closed": make_incident(
            db_session, reporter=reporter, microgrid_code=MG_A, status="closed"
        ),
        "b_open": make_incident(db_session, reporter=demo_users["admin"], microgrid_code=MG_B),
        "unrouted": make_incident(db_session, reporter=demo_users["admin"]),
    }


def ids(response):
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def test_list_is_scoped_and_newest_first(client, auth, cases):
    town = ids(client.get("/api/v1/incidents?limit=500", headers=auth("town_supervisor")))
    mine = {cases[k].id for k in ("a_open", "a_overdue", "a_fire", "a_closed")}
    assert mine <= set(town)
    assert cases["b_open"].id not in town and cases["unrouted"].id not in town
    assert town == sorted(town, reverse=True)
    district = ids(client.get("/api/v1/incidents?limit=500", headers=auth("district_supervisor")))
    assert {c.id for c in cases.values()} <= set(district)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=closed", {"a_closed"}),
        ("status=reported,closed", set(CASE_NAMES)),
        ("category=fire_ebike", {"a_fire"}),
        ("area=330212001001002", {"a_fire"}),
        (f"area={MG_A}", {"a_open", "a_overdue", "a_closed"}),
        ("overdue=true", {"a_overdue"}),
    ],
)
def test_filters(client, auth, cases, query, expected):
    found = set(ids(client.get(f"/api/v1/incidents?{query}&limit=500", headers=auth("admin"))))
    assert {name for name, case in cases.items() if case.id in found} == expected


def test_bbox_and_date_filters(client, auth, cases, db_session):
    lon, lat = db_session.execute(
        text("SELECT ST_X(location), ST_Y(location) FROM incident WHERE id = :id"),
        {"id": cases["b_open"].id},
    ).one()
    bbox = f"{lon - 1e-4},{lat - 1e-4},{lon + 1e-4},{lat + 1e-4}"
    found = ids(client.get(f"/api/v1/incidents?bbox={bbox}", headers=auth("admin")))
    assert cases["b_open"].id in found and cases["a_open"].id not in found
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    query = {"from": future}
    assert ids(client.get("/api/v1/incidents", query_string=query, headers=auth("admin"))) == []


def test_cursor_pages_cover_everything_once(client, auth, cases):
    seen, cursor = [], None
    for _ in range(50):
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/v1/incidents", query_string=query, headers=auth("town_supervisor"))
        seen += [item["id"] for item in body.get_json()["items"]]
        cursor = body.get_json()["next_cursor"]
        if not cursor:
            break
    everything = ids(client.get("/api/v1/incidents?limit=500", headers=auth("town_supervisor")))
    assert seen == everything


def test_geojson_list(client, auth, cases):
    response = client.get("/api/v1/incidents?format=geojson&status=closed", headers=auth("admin"))
    body = response.get_json()
    assert response.mimetype == "application/geo+json"
    assert body["type"] == "FeatureCollection"
    feature = next(f for f in body["features"] if f["id"] == cases["a_closed"].id)
    assert feature["geometry"]["type"] == "Point"
    assert feature["properties"]["status"] == "closed"


@pytest.mark.parametrize(
    "query", ["status=open", "overdue=maybe", "from=yesterday", "area=12", "cursor=%%%"]
)
def test_bad_list_queries_are_422(client, auth, query):
    response = client.get(f"/api/v1/incidents?{query}", headers=auth("admin"))
    assert response.status_code == 422


def test_unknown_area_filter_is_404(client, auth):
    response = client.get("/api/v1/incidents?area=330212999", headers=auth("admin"))
    assert response.get_json()["error"] == "area_not_found"


def test_tasks(client, auth, cases, db_session, demo_users):
    cases["a_open"].status = "dispatched"
    cases["a_open"].handler_id = demo_users["grid_worker"].id
    db_session.flush()
    worker = ids(client.get("/api/v1/me/tasks", headers=auth("grid_worker")))
    assert worker == [cases["a_open"].id]
    supervisor = ids(client.get("/api/v1/me/tasks", headers=auth("town_supervisor")))
    assert cases["a_overdue"].id == supervisor[0]  # the most urgent first
    assert cases["a_closed"].id not in supervisor and cases["a_open"].id not in supervisor


def test_escalation_job_is_idempotent(db_session, cases):
    calendar = load_calendar(Config.WORK_CALENDAR_FILE)
    first = workflow.escalate_overdue(db_session, calendar=calendar)
    assert [e[0] for e in first.escalated] == [cases["a_overdue"].id]
    assert first.escalated[0][1:] == ("grid", "community")
    assert cases["a_overdue"].deadline > datetime.now(UTC)
    second = workflow.escalate_overdue(db_session, calendar=calendar)
    assert second.escalated == []
    events = db_session.scalars(
        select(IncidentEvent).where(
            IncidentEvent.incident_id == cases["a_overdue"].id, IncidentEvent.action == "escalate"
        )
    ).all()
    assert len(events) == 1 and events[0].actor_id is None and events[0].data["auto"] is True


def test_escalation_cli_prints_what_it_did(app, db_session, cases):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["incidents", "escalate-overdue"])
    assert first.exit_code == 0, first.output
    assert f"escalated incident {cases['a_overdue'].id}: grid -> community" in first.output
    second = runner.invoke(args=["incidents", "escalate-overdue"])
    assert "0 escalated" in second.output


def test_two_supervisors_at_once_cannot_both_succeed(app, demo_users):
    """Real concurrency: committed data, one connection per request."""
    from gridgov.extensions import db

    with app.app_context():
        case = make_incident(db.session, reporter=demo_users["grid_worker"], microgrid_code=MG_A)
        db.session.commit()
        case_id = case.id
        db.session.remove()
    supervisors = [demo_users["town_supervisor"], demo_users["district_supervisor"]]
    barrier = threading.Barrier(2)
    answers = []

    def accept(user):
        client = app.test_client()
        barrier.wait()
        response = client.post(
            f"/api/v1/incidents/{case_id}/actions",
            json={"action": "accept"},
            headers={**bearer(app, user), "If-Match": f'"{case_id}-1"'},
        )
        answers.append(response.status_code)

    threads = [threading.Thread(target=accept, args=(user,)) for user in supervisors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        assert sorted(answers) in ([200, 409], [200, 412])
        with engine.connect() as conn:
            version = conn.execute(
                text("SELECT version FROM incident WHERE id = :id"), {"id": case_id}
            ).scalar()
            accepts = conn.execute(
                text(
                    "SELECT count(*) FROM incident_event WHERE incident_id = :id"
                    " AND action = 'accept'"
                ),
                {"id": case_id},
            ).scalar()
        assert (version, accepts) == (2, 1)
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("DELETE FROM incident_event WHERE incident_id = :id"), {"id": case_id}
            )
            conn.execute(text("DELETE FROM incident WHERE id = :id"), {"id": case_id})
        engine.dispose()
