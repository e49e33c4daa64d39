"""What the workbench reads: allowed actions, working time left, the deadline queue, counts."""

import base64
from datetime import UTC, datetime, timedelta

from gridgov.models import Incident
from gridgov.services.workflow import ACTIONS


def allowed(body):
    return {a["action"]: a["required"] for a in body["allowed_actions"]}


def test_allowed_actions_follow_the_state_machine_for_each_user(api, demo_users):
    case = api.report()
    supervisor = allowed(case := api.get(case["id"]).get_json())
    assert supervisor == {
        "accept": [],
        "reject": ["note"],
        "duplicate": ["duplicate_of"],
        "escalate": ["note"],
        "comment": ["note"],
    }
    # The reporter (a worker who does not hold it) may only comment.
    assert allowed(api.get(case["id"], user="grid_worker").get_json()) == {"comment": ["note"]}
    api.act(case["id"], "accept")
    worker = demo_users["grid_worker"].id
    dispatched = api.act(case["id"], "dispatch", assignee=worker).get_json()
    assert set(allowed(dispatched)) == {"reassign", "start", "resolve", "escalate", "comment"}
    assert allowed(dispatched)["reassign"] == ["note", "assignee_or_handling_unit"]
    held = allowed(api.get(case["id"], user="grid_worker").get_json())
    assert held == {"start": [], "resolve": ["note"], "escalate": ["note"], "comment": ["note"]}
    # The grid head, on duty there but not holding it, only comments.
    assert set(allowed(api.get(case["id"], user="grid_head").get_json())) == {"comment"}


def test_every_action_not_listed_is_refused_and_every_listed_one_runs(api, demo_users, db_session):
    """Exhaustively, from each status a case goes through, for a supervisor and the holder."""
    worker = demo_users["grid_worker"].id
    path = [("accept", {}), ("dispatch", {"assignee": worker}), ("start", {})]
    path += [("resolve", {"note": "好了"}), ("verify", {}), ("close", {})]
    case = api.report()
    for step, fields in path:
        for user in ("town_supervisor", "grid_worker"):
            body = api.get(case["id"], user=user).get_json()
            listed = allowed(body)
            for action in ACTIONS:
                if action in listed:
                    continue
                refused = api.act(case["id"], action, user=user, note="n", assignee=worker)
                assert refused.status_code in (403, 409, 422), (body["status"], user, action)
            # Comment is always listed; it runs without changing the status.
            assert api.act(case["id"], "comment", user=user, note="看过").status_code == 200
        actor = "grid_worker" if step in ("start", "resolve") else "town_supervisor"
        assert step in allowed(api.get(case["id"], user=actor).get_json())
        assert api.act(case["id"], step, user=actor, **fields).status_code == 200
    assert allowed(api.get(case["id"]).get_json()) == {"comment": ["note"]}


def test_escalate_is_not_offered_at_the_district(api, db_session):
    case = api.report()
    db_session.get(Incident, case["id"]).handling_level = "district"
    db_session.flush()
    assert "escalate" not in allowed(api.get(case["id"], user="district_supervisor").get_json())


def test_working_hours_left_counts_the_calendar_and_goes_negative_when_overdue(api, db_session):
    case = api.report()
    left = api.get(case["id"]).get_json()["deadline_working_hours_left"]
    assert 0 <= left <= 1  # env_garbage is accepted within 1 working hour
    incident = db_session.get(Incident, case["id"])
    # Back to a Monday of the past whose working day was worked through (no holiday then).
    incident.deadline = datetime(2026, 11, 16, 1, 30, tzinfo=UTC)  # 09:30 China time
    db_session.flush()
    body = api.get(case["id"]).get_json()
    assert body["overdue"] and body["deadline_working_hours_left"] < -7
    assert body["handle_deadline"] is None


def _queue(client, auth, user="town_supervisor", **query):
    query = {"sort": "deadline", "limit": 3, **query}
    items, cursor = [], None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/incidents", query_string=params, headers=auth(user))
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def test_the_deadline_queue_puts_overdue_first_and_pages_without_gaps(
    api, client, auth, db_session
):
    cases = [api.report() for _ in range(7)]
    now = datetime.now(UTC)
    deadlines = [now - timedelta(days=2), now - timedelta(hours=1), None, now + timedelta(days=1)]
    deadlines += [now - timedelta(hours=1), None, now + timedelta(hours=3)]
    for case, deadline in zip(cases, deadlines, strict=True):
        db_session.get(Incident, case["id"]).deadline = deadline
    db_session.flush()
    ids = {c["id"] for c in cases}
    queue = [item for item in _queue(client, auth) if item["id"] in ids]
    keys = [(item["deadline"] is None, item["deadline"] or "", item["id"]) for item in queue]
    assert len(queue) == 7 and keys == sorted(keys)
    assert [item["overdue"] for item in queue] == [True, True, True, False, False, False, False]
    assert queue[-1]["deadline"] is None and queue[-2]["deadline"] is None


def test_queue_filters_by_handling_level_and_reporter_and_counts_per_status(
    api, client, auth, demo_users
):
    head = demo_users["grid_head"].id
    mine = api.report(user="grid_head")
    other = api.report()
    api.act(other["id"], "escalate", note="需社区协调")
    by_head = _queue(client, auth, reporter=head)
    assert mine["id"] in {i["id"] for i in by_head} and all(
        i["reporter_id"] == head for i in by_head
    )
    community = _queue(client, auth, handling_level="community")
    assert {i["id"] for i in community} >= {other["id"]}
    assert all(i["handling_level"] == "community" for i in community)
    counts = client.get(
        "/api/v1/incidents/counts", query_string={"reporter": head}, headers=auth("town_supervisor")
    ).get_json()
    assert counts["by_status"].get("reported", 0) >= 1
    assert counts["total"] == sum(counts["by_status"].values()) == len(by_head)
    bad = client.get(
        "/api/v1/incidents",
        query_string={"handling_level": "moon"},
        headers=auth("town_supervisor"),
    )
    assert bad.status_code == 422


def test_a_forged_deadline_cursor_is_refused(client, auth):
    forged = base64.urlsafe_b64encode(b'{"due":99999999999999999999,"id":1}').decode()
    response = client.get(
        "/api/v1/incidents",
        query_string={"sort": "deadline", "cursor": forged.rstrip("=")},
        headers=auth("town_supervisor"),
    )
    assert response.status_code == 422
    assert response.get_json()["error"] == "invalid_cursor"
