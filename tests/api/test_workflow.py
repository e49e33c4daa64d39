"""The closed loop through the API: every transition and refusal, versions, timeline, lists,
tasks and the escalation job."""

import uuid

import pytest
from sqlalchemy import select

from gridgov.extensions import db
from gridgov.models import Area
from gridgov.spatial import from_db

WORKER_MICROGRID = "330212001001001001"


@pytest.fixture(scope="module")
def spot(app):
    with app.app_context():
        boundary = db.session.scalar(select(Area.boundary).where(Area.code == WORKER_MICROGRID))
        db.session.remove()
    point = from_db(boundary).representative_point()
    return point.x, point.y


@pytest.fixture
def api(client, auth, spot):
    """Small verbs over the test client: report(), act(), get()."""

    class Api:
        def report(self, user="grid_worker", **extra):
            body = {
                "client_id": str(uuid.uuid4()),
                "category": "env_garbage",
                "description": "暴露垃圾",
                "location": {"lon": spot[0], "lat": spot[1]},
                **extra,
            }
            response = client.post("/api/v1/incidents", json=body, headers=auth(user))
            assert response.status_code == 201, response.get_json()
            return response.get_json()

        def act(self, incident_id, action, user="town_supervisor", headers=None, **fields):
            return client.post(
                f"/api/v1/incidents/{incident_id}/actions",
                json={"action": action, **fields},
                headers={**auth(user), **(headers or {})},
            )

        def get(self, incident_id, user="town_supervisor"):
            return client.get(f"/api/v1/incidents/{incident_id}", headers=auth(user))

    return Api()


def ok(response, status=None):
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    if status:
        assert body["status"] == status
    return body


def test_the_whole_loop_with_rework(api, demo_users):
    case = api.report()
    worker = demo_users["grid_worker"].id
    assert ok(api.act(case["id"], "accept"), "accepted")["deadline"]
    ok(api.act(case["id"], "dispatch", assignee=worker), "dispatched")
    ok(api.act(case["id"], "start", user="grid_worker"), "in_progress")
    resolved = ok(api.act(case["id"], "resolve", user="grid_worker", note="清理完毕"), "resolved")
    assert resolved["resolved_level"] == "grid"
    returned = ok(api.act(case["id"], "return", note="还有残留"), "returned")
    assert returned["rework_count"] == 1
    ok(api.act(case["id"], "dispatch", assignee=worker), "dispatched")
    ok(api.act(case["id"], "resolve", user="grid_worker", note="已彻底清理"), "resolved")
    ok(api.act(case["id"], "verify"), "verified")
    closed = ok(api.act(case["id"], "close"), "closed")
    assert closed["deadline"] is None
    assert closed["version"] == 10


def test_reject_and_duplicate_end_the_case(api):
    first, second, third = api.report(), api.report(), api.report()
    assert api.act(first["id"], "reject").get_json()["error"] == "missing_fields"
    ok(api.act(first["id"], "reject", note="不属于网格事项"), "rejected")
    dup = ok(api.act(second["id"], "duplicate", duplicate_of=third["id"]), "duplicate")
    assert dup["duplicate_of"] == third["id"]
    assert dup["deadline"] is None


def test_submission_suggests_nearby_open_reports_of_the_same_category(api):
    first = api.report()
    second = api.report()
    assert first["id"] in [d["id"] for d in second["possible_duplicates"]]
    other_category = api.report(category="fire_corridor")
    assert first["id"] not in [d["id"] for d in other_category["possible_duplicates"]]


@pytest.mark.parametrize(
    "fields, error",
    [
        ({}, "missing_fields"),  # duplicate needs duplicate_of
        ({"duplicate_of": 999999999}, "invalid_duplicate"),
    ],
)
def test_duplicate_needs_a_visible_original(api, fields, error):
    case = api.report()
    response = api.act(case["id"], "duplicate", **fields)
    assert response.status_code == 422
    assert response.get_json()["error"] == error


def test_duplicate_of_itself_is_refused(api):
    case = api.report()
    response = api.act(case["id"], "duplicate", duplicate_of=case["id"])
    assert response.get_json()["error"] == "invalid_duplicate"


@pytest.mark.parametrize(
    "action, fields",
    [("dispatch", {}), ("resolve", {}), ("return", {}), ("escalate", {}), ("comment", {})],
)
def test_required_fields_are_enforced(api, demo_users, action, fields):
    case = api.report()
    ok(api.act(case["id"], "accept"))
    if action in ("resolve", "return"):
        ok(api.act(case["id"], "dispatch", handling_unit="城管中队"))
    if action == "return":
        ok(api.act(case["id"], "resolve", note="done"))
    response = api.act(case["id"], action, **fields)
    assert response.status_code == 422
    assert response.get_json()["error"] == "missing_fields"


@pytest.mark.parametrize(
    "status_path, action",
    [
        ([], "dispatch"),
        ([], "resolve"),
        ([], "verify"),
        ([], "close"),
        ([], "start"),
        ([("accept", {})], "accept"),
        ([("accept", {})], "verify"),
        ([("reject", {"note": "n"})], "accept"),
        ([("reject", {"note": "n"})], "escalate"),
    ],
)
def test_transitions_not_allowed_from_the_status_are_409(api, status_path, action):
    case = api.report()
    for step, fields in status_path:
        ok(api.act(case["id"], step, **fields))
    response = api.act(case["id"], action, note="x", assignee=1, duplicate_of=1)
    assert response.status_code == 409
    assert response.get_json()["error"] == "invalid_transition"


@pytest.mark.parametrize("action", ["accept", "reject", "duplicate", "dispatch", "verify"])
def test_workers_cannot_run_the_loop(api, action):
    case = api.report()
    response = api.act(case["id"], action, user="grid_worker", note="n", duplicate_of=1)
    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"


def test_only_the_handler_among_workers_may_start_and_resolve(api, demo_users):
    case = api.report()
    ok(api.act(case["id"], "accept"))
    ok(api.act(case["id"], "dispatch", assignee=demo_users["grid_worker"].id))
    assert api.act(case["id"], "start", user="grid_head").status_code == 403
    ok(api.act(case["id"], "start", user="grid_worker"))


def test_a_worker_may_comment_on_what_they_see(api):
    case = api.report()
    body = ok(api.act(case["id"], "comment", user="grid_head", note="现场已拍照"), "reported")
    assert body["version"] == 1  # a comment is not a change of the case


def test_resolved_on_site_needs_verification(api):
    case = api.report(resolved_on_site=True)
    assert case["status"] == "resolved"
    assert case["resolved_level"] == "grid"
    ok(api.act(case["id"], "verify"), "verified")
    ok(api.act(case["id"], "close"), "closed")


def test_escalation_climbs_to_the_district_and_stops(api):
    case = api.report()
    levels = [
        ok(api.act(case["id"], "escalate", note="需要上级协调"))["handling_level"] for _ in range(3)
    ]
    assert levels == ["community", "town", "district"]
    response = api.act(case["id"], "escalate", note="again")
    assert response.status_code == 409
    ok(api.act(case["id"], "accept"))
    ok(api.act(case["id"], "dispatch", handling_unit="区城管局"))
    assert ok(api.act(case["id"], "resolve", note="ok"))["resolved_level"] == "district"


def test_stale_if_match_is_412_and_changes_nothing(api):
    case = api.report()
    etag = api.get(case["id"]).headers["ETag"]
    ok(api.act(case["id"], "accept", headers={"If-Match": etag}))
    stale = api.act(case["id"], "dispatch", handling_unit="u", headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.get_json()["error"] == "version_mismatch"
    assert api.get(case["id"]).get_json()["status"] == "accepted"
    by_body = api.act(case["id"], "dispatch", handling_unit="u", expected_version=1)
    assert by_body.status_code == 412
    garbage = api.act(case["id"], "dispatch", handling_unit="u", headers={"If-Match": '"x"'})
    assert garbage.get_json()["error"] == "invalid_if_match"


def test_timeline_records_every_change_in_order(api, client, auth):
    case = api.report()
    ok(api.act(case["id"], "accept"))
    ok(api.act(case["id"], "comment", note="hello"))
    ok(api.act(case["id"], "dispatch", handling_unit="城管中队", note="请处理"))
    items = client.get(
        f"/api/v1/incidents/{case['id']}/timeline", headers=auth("town_supervisor")
    ).get_json()["items"]
    assert [(i["action"], i["from_status"], i["to_status"]) for i in items] == [
        ("report", None, "reported"),
        ("accept", "reported", "accepted"),
        ("comment", "accepted", "accepted"),
        ("dispatch", "accepted", "dispatched"),
    ]
    assert [i["actor"] for i in items] == ["grid_worker"] + ["town_supervisor"] * 3
    assert items[3]["data"] == {"assignee": None, "handling_unit": "城管中队"}
    assert items[3]["note"] == "请处理"


def test_rework_keeps_the_first_handling_deadline(api, demo_users, db_session):
    """On-time indicators measure against the deadline set at acceptance: rework is late."""
    from gridgov.models import Incident

    case = api.report()
    ok(api.act(case["id"], "accept"))
    first = db_session.get(Incident, case["id"]).handle_deadline
    ok(api.act(case["id"], "dispatch", handling_unit="城管中队"))
    ok(api.act(case["id"], "resolve", note="done"))
    ok(api.act(case["id"], "return", note="not done"))
    db_session.expire_all()
    incident = db_session.get(Incident, case["id"])
    assert incident.handle_deadline == first
    assert incident.deadline >= first  # the rework round has a clock of its own
