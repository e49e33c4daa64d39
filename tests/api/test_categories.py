"""Categories: the phones' list, and admins adding and changing categories and time limits.

A new time limit is data only: the admin sets it through the API and the next report's
deadline follows it, with no code change.
"""

from datetime import datetime

import pytest
from sqlalchemy import select

from gridgov.models import AuditEvent
from gridgov.settings import settings
from tests.api.test_errors import assert_envelope

LIMITS = {
    "accept": {"amount": 3, "unit": "working_hours"},
    "handle": {"amount": 2, "unit": "working_days"},
    "verify": {"amount": 1, "unit": "working_days"},
}
NEW = {"code": "shared_bikes", "name": "共享单车乱停放", "group": "市容环境", "time_limits": LIMITS}


def report(category: str, client_id: str) -> dict:
    return {
        "client_id": client_id,
        "category": category,
        "description": "人行道上堆满共享单车",
        "location": {"lon": 121.5435, "lat": 29.8605, "crs": "wgs84"},
    }


def create(client, auth, body=None):
    return client.post("/api/v1/categories", json=body or NEW, headers=auth("admin"))


def due_after(app, answer: dict, amount, unit: str) -> datetime:
    with app.app_context():
        start = datetime.fromisoformat(answer["reported_at"])
        return settings().calendar.add(start, amount, unit)


def test_a_new_category_with_its_limits_is_reportable_at_once(app, client, auth):
    created = create(client, auth)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["time_limits"] == LIMITS
    assert created.get_json()["default_priority"] == "normal"
    listed = client.get("/api/v1/categories", headers=auth("grid_worker")).get_json()["items"]
    assert "shared_bikes" in {c["code"] for c in listed}

    answer = client.post(
        "/api/v1/incidents", json=report("shared_bikes", "bikes-1"), headers=auth("grid_worker")
    ).get_json()
    assert datetime.fromisoformat(answer["deadline"]) == due_after(app, answer, 3, "working_hours")


def test_a_changed_limit_applies_to_new_reports_and_not_to_running_deadlines(app, client, auth):
    create(client, auth)
    worker = auth("grid_worker")
    before = client.post(
        "/api/v1/incidents", json=report("shared_bikes", "bikes-2"), headers=worker
    ).get_json()
    changed = client.patch(
        "/api/v1/categories/shared_bikes",
        json={"time_limits": {**LIMITS, "accept": {"amount": 0.5, "unit": "working_days"}}},
        headers=auth("admin"),
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["time_limits"]["accept"] == {"amount": 0.5, "unit": "working_days"}

    after = client.post(
        "/api/v1/incidents", json=report("shared_bikes", "bikes-3"), headers=worker
    ).get_json()
    assert datetime.fromisoformat(after["deadline"]) == due_after(app, after, 0.5, "working_days")
    kept = client.get(f"/api/v1/incidents/{before['id']}", headers=worker).get_json()
    assert kept["deadline"] == before["deadline"]


def test_a_priority_override_wins_for_that_priority(app, client, auth):
    overrides = {"urgent": {"accept": {"amount": 1, "unit": "working_hours"}}}
    create(client, auth, {**NEW, "time_limits": {**LIMITS, "priority_overrides": overrides}})
    answer = client.post(
        "/api/v1/incidents",
        json={**report("shared_bikes", "bikes-4"), "priority": "urgent"},
        headers=auth("grid_worker"),
    ).get_json()
    assert datetime.fromisoformat(answer["deadline"]) == due_after(app, answer, 1, "working_hours")


@pytest.mark.parametrize(
    "limits, field",
    [
        ({**LIMITS, "rest": {"amount": 1, "unit": "working_days"}}, "rest"),
        ({**LIMITS, "accept": {"amount": 0, "unit": "working_hours"}}, "accept"),
        ({**LIMITS, "accept": {"amount": -2, "unit": "working_hours"}}, "accept"),
        ({**LIMITS, "accept": {"amount": 1e9, "unit": "working_hours"}}, "accept"),
        ({**LIMITS, "accept": {"amount": "NaN", "unit": "working_hours"}}, "accept"),
        ({**LIMITS, "accept": {"amount": 2, "unit": "hours"}}, "accept"),
        ({**LIMITS, "accept": {"amount": 2}}, "accept"),
        ({**LIMITS, "priority_overrides": {"asap": {}}}, "priority_overrides"),
        ({**LIMITS, "priority_overrides": {"urgent": {"later": {}}}}, "priority_overrides"),
    ],
)
def test_invalid_time_limits_are_422_and_nothing_changes(client, auth, limits, field):
    refused = create(client, auth, {**NEW, "time_limits": limits})
    body = assert_envelope(refused, 422, "validation_failed")
    assert field in body["errors"]["json"]["time_limits"]
    assert (
        client.patch(
            "/api/v1/categories/fire_corridor", json={"time_limits": limits}, headers=auth("admin")
        ).status_code
        == 422
    )
    listed = client.get("/api/v1/categories", headers=auth("admin")).get_json()["items"]
    assert "shared_bikes" not in {c["code"] for c in listed}


def test_only_admins_change_categories(client, auth):
    for user in ("grid_worker", "town_supervisor"):
        assert_envelope(
            client.post("/api/v1/categories", json=NEW, headers=auth(user)), 403, "forbidden"
        )
        assert_envelope(
            client.patch(
                "/api/v1/categories/fire_corridor", json={"name": "x"}, headers=auth(user)
            ),
            403,
            "forbidden",
        )


def test_unknown_and_duplicate_codes(client, auth):
    assert_envelope(
        client.patch("/api/v1/categories/no_such", json={"name": "x"}, headers=auth("admin")),
        404,
        "category_not_found",
    )
    create(client, auth)
    assert_envelope(create(client, auth), 409, "category_exists")
    assert_envelope(create(client, auth, {**NEW, "code": "Bad Code"}), 422, "validation_failed")


def test_a_deactivated_category_leaves_the_list_and_refuses_reports(client, auth):
    answer = client.patch(
        "/api/v1/categories/fire_corridor", json={"active": False}, headers=auth("admin")
    )
    assert answer.get_json()["active"] is False
    listed = client.get("/api/v1/categories", headers=auth("grid_worker")).get_json()["items"]
    assert "fire_corridor" not in {c["code"] for c in listed}
    refused = client.post(
        "/api/v1/incidents", json=report("fire_corridor", "off-1"), headers=auth("grid_worker")
    )
    assert_envelope(refused, 422, "unknown_category")


def test_changes_are_audited_and_date_the_open311_service_list(client, auth, db_session):
    def services_changeset():
        return client.get("/open311/v2/discovery.json").get_json()["changeset"]

    before = services_changeset()
    client.patch(
        "/api/v1/categories/fire_corridor", json={"name": "消防通道占用"}, headers=auth("admin")
    )
    assert services_changeset() > before
    event = db_session.scalar(
        select(AuditEvent)
        .where(AuditEvent.action == "category_update")
        .order_by(AuditEvent.id.desc())
    )
    assert event.target == "fire_corridor"
    assert event.data["after"] == {"name": "消防通道占用"}
    assert event.data["before"]["name"] != "消防通道占用"
