"""The closed loop through the API: every transition and refusal, versions, timeline, lists,
tasks and the escalation job."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.api.conftest import WORKER_MICROGRID
from tests.factories import make_assignment, make_incident, make_user
from tests.helpers import bearer


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


# --- who may hold a case, and taking it back ------------------------------------------------

GRID = "330212001001001"  # the reports' grid (WORKER_MICROGRID's), community 330212001001
NEIGHBOUR_GRID_MG = "330212001001002001"  # the same community, another grid
OTHER_COMMUNITY_MG = "330212001002001001"  # the same town, another community
OTHER_TOWN_MG = "330212002001001001"  # town 330212002


def refused_assignee(response):
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["error"] == "invalid_assignee"
    return body


@pytest.mark.parametrize(
    "worker_area, reachable_at",
    [
        ("330212001001001002", "grid"),  # another micro-grid of the case's grid
        (GRID, "grid"),
        (NEIGHBOUR_GRID_MG, "community"),
        (OTHER_COMMUNITY_MG, "town"),
        (OTHER_TOWN_MG, "district"),
    ],
)
def test_a_case_goes_only_to_people_of_its_handling_area(
    api, db_session, worker_area, reachable_at
):
    worker = make_user(db_session, username="elsewhere", area_code=worker_area)
    case = api.report()
    ok(api.act(case["id"], "accept"))
    for level in ("grid", "community", "town", "district"):
        response = api.act(case["id"], "dispatch", assignee=worker.id, user="district_supervisor")
        if level == reachable_at:
            assert ok(response, "dispatched")["handler_id"] == worker.id
            return
        body = refused_assignee(response)
        assert body["details"]["handling_level"] == level
        assert "not on duty" in body["message"]
        assert "escalate" in body["message"]
        ok(api.act(case["id"], "escalate", note="需要上级协调", user="district_supervisor"))
    pytest.fail("never reachable")


def test_a_town_supervisor_cannot_hand_a_case_to_a_worker_of_another_town(api, db_session):
    worker_b = make_user(db_session, username="worker_b", area_code=OTHER_TOWN_MG)
    case = api.report()
    ok(api.act(case["id"], "accept"))
    body = refused_assignee(api.act(case["id"], "dispatch", assignee=worker_b.id))
    assert body["details"] == {"area": GRID, "handling_level": "grid"}
    assert body["errors"] == {"assignee": [f"Not on duty in the case's area {GRID}."]}
    after = api.get(case["id"]).get_json()
    assert (after["status"], after["handler_id"], after["version"]) == ("accepted", None, 2)


@pytest.mark.parametrize(
    "username, area, allowed",
    [
        ("town_supervisor", None, True),  # the case's town, above its grid
        ("district_supervisor", None, True),
        ("community_sup", "330212001001", True),  # the case's community
        ("other_community_sup", "330212001002", False),
        ("other_town_sup", "330212002", False),
        ("admin", None, False),  # admins run the loop but never hold a case
    ],
)
def test_supervisors_above_the_area_may_hold_a_case(
    api, db_session, demo_users, username, area, allowed
):
    if area is None:
        assignee = demo_users[username]
    else:
        assignee = make_user(db_session, username=username, role="supervisor", area_code=area)
    case = api.report()
    ok(api.act(case["id"], "accept"))
    response = api.act(case["id"], "dispatch", assignee=assignee.id)
    if allowed:
        assert ok(response)["handler_id"] == assignee.id
    else:
        refused_assignee(response)


def test_an_unrouted_case_is_handled_in_the_whole_district(api, db_session, demo_users):
    # Even one left at grid level: with no grid, its area is the district.
    for level in ("district", "grid"):
        case = make_incident(
            db_session, reporter=demo_users["admin"], status="accepted", handling_level=level
        )
        response = api.act(
            case.id, "dispatch", assignee=demo_users["grid_worker"].id, user="district_supervisor"
        )
        assert ok(response)["handler_id"] == demo_users["grid_worker"].id


def test_only_people_on_duty_now_may_hold_a_case(api, db_session):
    now = datetime.now(UTC)
    gone = make_user(db_session, username="gone", area_code=WORKER_MICROGRID)
    gone.is_active = False
    ended = make_user(db_session, username="ended")
    make_assignment(
        db_session, user=ended, area_code=WORKER_MICROGRID, active_to=now - timedelta(hours=1)
    )
    not_yet = make_user(db_session, username="not_yet")
    make_assignment(
        db_session, user=not_yet, area_code=WORKER_MICROGRID, active_from=now + timedelta(days=1)
    )
    unassigned = make_user(db_session, username="unassigned")
    db_session.flush()
    case = api.report()
    ok(api.act(case["id"], "accept"))
    for user in (gone, ended, not_yet, unassigned):
        refused_assignee(api.act(case["id"], "dispatch", assignee=user.id))
    refused_assignee(api.act(case["id"], "dispatch", assignee=987654))


def timeline(client, auth, case_id):
    response = client.get(f"/api/v1/incidents/{case_id}/timeline", headers=auth("town_supervisor"))
    return response.get_json()["items"]


@pytest.mark.parametrize("started", [False, True])
def test_reassign_moves_the_case_without_rework_or_a_new_deadline(
    api, client, auth, demo_users, db_session, started
):
    worker, head = demo_users["grid_worker"].id, demo_users["grid_head"].id
    case = api.report()
    ok(api.act(case["id"], "accept"))
    dispatched = ok(api.act(case["id"], "dispatch", assignee=worker), "dispatched")
    if started:
        # Starting does not restart the handling clock either.
        assert (
            ok(api.act(case["id"], "start", user="grid_worker"))["deadline"]
            == (dispatched["deadline"])
        )
    before = api.get(case["id"]).get_json()
    moved = ok(api.act(case["id"], "reassign", assignee=head, note="网格员请假"), "dispatched")
    assert moved["handler_id"] == head
    assert moved["rework_count"] == before["rework_count"] == 0
    assert moved["deadline"] == dispatched["deadline"]
    assert moved["version"] == before["version"] + 1
    event = timeline(client, auth, case["id"])[-1]
    assert (event["action"], event["from_status"], event["to_status"]) == (
        "reassign",
        "in_progress" if started else "dispatched",
        "dispatched",
    )
    assert event["data"] == {
        "assignee": head,
        "handling_unit": None,
        "previous_assignee": worker,
        "previous_handling_unit": None,
    }
    assert event["note"] == "网格员请假"
    # The new holder works it; the old one no longer may.
    assert api.act(case["id"], "start", user="grid_worker").status_code == 403
    restarted = ok(api.act(case["id"], "start", user="grid_head"), "in_progress")
    assert restarted["deadline"] == dispatched["deadline"]


def test_reassign_takes_a_case_from_a_deactivated_holder(api, client, auth, app, db_session):
    holder = make_user(db_session, username="holder", area_code="330212001001001002")
    case = api.report()
    ok(api.act(case["id"], "accept"))
    ok(api.act(case["id"], "dispatch", assignee=holder.id))
    started = client.post(
        f"/api/v1/incidents/{case['id']}/actions",
        json={"action": "start"},
        headers=bearer(app, holder),
    )
    assert started.status_code == 200, started.get_json()
    deactivated = client.patch(
        f"/api/v1/users/{holder.id}", json={"is_active": False}, headers=auth("admin")
    )
    assert deactivated.status_code == 200, deactivated.get_json()
    # Nobody may be handed a case by a holder who left, but a supervisor may take it back.
    body = ok(api.act(case["id"], "reassign", handling_unit="街道城管中队", note="人员离职"))
    assert (body["status"], body["handler_id"], body["handling_unit"]) == (
        "dispatched",
        None,
        "街道城管中队",
    )
    assert timeline(client, auth, case["id"])[-1]["data"]["previous_assignee"] == holder.id


def test_reassign_refusals(api, demo_users):
    worker, head = demo_users["grid_worker"].id, demo_users["grid_head"].id
    case = api.report()
    ok(api.act(case["id"], "accept"))
    ok(api.act(case["id"], "dispatch", assignee=worker))
    for user in ("grid_worker", "grid_head"):  # the holder included
        response = api.act(case["id"], "reassign", assignee=head, note="n", user=user)
        assert response.status_code == 403
        assert response.get_json()["error"] == "forbidden"
    for fields in ({"assignee": head}, {"note": "n"}):
        response = api.act(case["id"], "reassign", **fields)
        assert response.get_json()["error"] == "missing_fields"
    same = refused_assignee(api.act(case["id"], "reassign", assignee=worker, note="n"))
    assert "already held" in same["message"]
    refused_assignee(api.act(case["id"], "reassign", assignee=demo_users["admin"].id, note="n"))
    assert api.get(case["id"]).get_json()["handler_id"] == worker


@pytest.mark.parametrize(
    "steps",
    [
        [],
        [("accept", {})],
        [("accept", {}), ("dispatch", {"handling_unit": "u"}), ("resolve", {"note": "n"})],
        [
            ("accept", {}),
            ("dispatch", {"handling_unit": "u"}),
            ("resolve", {"note": "n"}),
            ("return", {"note": "n"}),
        ],
        [("reject", {"note": "n"})],
    ],
)
def test_reassign_from_other_statuses_is_409(api, demo_users, steps):
    case = api.report()
    for step, fields in steps:
        ok(api.act(case["id"], step, **fields))
    response = api.act(case["id"], "reassign", assignee=demo_users["grid_head"].id, note="n")
    assert response.status_code == 409
    assert response.get_json()["error"] == "invalid_transition"


def test_the_openapi_document_lists_reassign(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "reassign" in spec["components"]["schemas"]["Action"]["properties"]["action"]["enum"]


def test_a_case_lists_its_possible_duplicates_for_the_supervisor(api, client, auth):
    first = api.report()
    second = api.report()
    other_category = api.report(category="fire_corridor")
    answer = client.get(
        f"/api/v1/incidents/{second['id']}/duplicates", headers=auth("town_supervisor")
    )
    assert answer.status_code == 200
    items = answer.get_json()["items"]
    assert first["id"] in [d["id"] for d in items]
    assert {"id", "status", "distance_m", "reported_at"} <= set(items[0])
    assert other_category["id"] not in [d["id"] for d in items]
    # Only earlier reports count: the first has none of the later ones.
    later = client.get(
        f"/api/v1/incidents/{first['id']}/duplicates", headers=auth("town_supervisor")
    ).get_json()["items"]
    assert second["id"] not in [d["id"] for d in later]


def test_possible_duplicates_of_a_case_outside_scope_are_404(app, api, client, db_session):
    case = api.report()
    other_town = make_user(db_session, username="sup_b", role="supervisor", area_code="330212002")
    answer = client.get(
        f"/api/v1/incidents/{case['id']}/duplicates", headers=bearer(app, other_town)
    )
    assert answer.status_code == 404
    assert answer.get_json()["error"] == "incident_not_found"
