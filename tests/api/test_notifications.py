"""The outbox: notifications written and rolled back with the change causing them, who gets
them (scope), and the /me/notifications and /me/devices endpoints."""

import base64
import os
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select

from gridgov.errors import PreconditionFailed
from gridgov.models import Delivery, Device, Incident, Notification, User
from gridgov.services import assignments, notifications, workflow
from gridgov.services.workflow import ActionRequest
from tests.factories import make_incident, make_user
from tests.helpers import TEST_SETTINGS, bearer, configure

MICROGRID = "330212001001001001"
COMMUNITY = "330212001001"
OTHER_COMMUNITY = "330212001002"
TOWN = "330212001"
GATEWAY = "http://127.0.0.1:9/push"


def act(session, incident, action, actor, **fields):
    return workflow.apply_action(
        session,
        actor=actor,
        incident_id=incident.id,
        request=ActionRequest(action, **fields),
        calendar=TEST_SETTINGS.calendar,
    )


def notes_of(session, user) -> list[Notification]:
    return session.scalars(
        select(Notification).where(Notification.user_id == user.id).order_by(Notification.id)
    ).all()


@pytest.fixture
def people(db_session, demo_users):
    supervisor = db_session.get(User, demo_users["town_supervisor"].id)
    worker = make_user(db_session, username="n_worker", area_code=MICROGRID)
    return supervisor, worker


def test_dispatch_writes_a_notification_and_a_delivery_per_device(db_session, people):
    supervisor, worker = people
    for _ in range(2):
        notifications.register_device(
            db_session, user=worker, kind="webhook", url=GATEWAY, gateways=("http://127.0.0.1:",)
        )
    case = make_incident(db_session, reporter=worker, microgrid_code=MICROGRID, status="accepted")
    act(db_session, case, "dispatch", supervisor, assignee_id=worker.id)
    [note] = notes_of(db_session, worker)
    assert (note.kind, note.incident_id, note.read_at) == ("dispatched", case.id, None)
    assert note.payload["status"] == "dispatched"
    assert note.idempotency_key.startswith("event:") and note.idempotency_key.endswith(
        f":user:{worker.id}"
    )
    deliveries = db_session.scalars(
        select(Delivery).where(Delivery.notification_id == note.id)
    ).all()
    assert len(deliveries) == 2 and all(d.delivered_at is None for d in deliveries)
    # The supervisor acted: they are not told about their own action.
    assert notes_of(db_session, supervisor) == []


def test_the_notification_rolls_back_with_its_change(db_session, people):
    supervisor, worker = people
    case = make_incident(db_session, reporter=worker, microgrid_code=MICROGRID, status="accepted")
    savepoint = db_session.begin_nested()
    act(db_session, case, "dispatch", supervisor, assignee_id=worker.id)
    assert len(notes_of(db_session, worker)) == 1
    savepoint.rollback()
    assert notes_of(db_session, worker) == []
    assert db_session.get(Incident, case.id).status == "accepted"
    # A refused action writes nothing either.
    with pytest.raises(PreconditionFailed):
        act(db_session, case, "dispatch", supervisor, assignee_id=worker.id, expected_version=99)
    assert notes_of(db_session, worker) == []


def test_return_tells_the_holder_and_reassign_the_new_one(db_session, people):
    supervisor, worker = people
    other = make_user(db_session, username="n_other", area_code=MICROGRID)
    case = make_incident(db_session, reporter=worker, microgrid_code=MICROGRID, status="accepted")
    act(db_session, case, "dispatch", supervisor, assignee_id=worker.id)
    act(db_session, case, "resolve", worker, note="done")
    act(db_session, case, "return", supervisor, note="not done")
    assert [n.kind for n in notes_of(db_session, worker)] == ["dispatched", "returned"]
    act(db_session, case, "dispatch", supervisor, assignee_id=worker.id)
    act(db_session, case, "reassign", supervisor, assignee_id=other.id, note="away")
    [note] = notes_of(db_session, other)
    assert (note.kind, note.payload["action"]) == ("dispatched", "reassign")


def test_escalation_tells_the_supervisors_of_that_level_in_the_cases_area(db_session, people):
    supervisor, worker = people
    here = make_user(db_session, username="n_here", role="supervisor", area_code=COMMUNITY)
    there = make_user(db_session, username="n_there", role="supervisor", area_code=OTHER_COMMUNITY)
    gone = make_user(db_session, username="n_gone", role="supervisor", area_code=COMMUNITY)
    gone.is_active = False
    case = make_incident(
        db_session, reporter=worker, microgrid_code=MICROGRID, handler_id=worker.id
    )
    act(db_session, case, "escalate", worker, note="需要协调")
    assert [n.kind for n in notes_of(db_session, here)] == ["escalated"]
    assert notes_of(db_session, there) == [] and notes_of(db_session, gone) == []
    # Town level next: the town's supervisor, not the community's.
    act(db_session, case, "escalate", here, note="再上报")
    assert len(notes_of(db_session, here)) == 1
    assert [n.payload["handling_level"] for n in notes_of(db_session, supervisor)] == ["town"]


def test_the_overdue_job_escalates_with_notifications(db_session, people):
    _supervisor, worker = people
    here = make_user(db_session, username="n_cron", role="supervisor", area_code=COMMUNITY)
    case = make_incident(
        db_session,
        reporter=worker,
        microgrid_code=MICROGRID,
        deadline=datetime.now(UTC) - timedelta(hours=1),
    )
    report = workflow.escalate_overdue(db_session, calendar=TEST_SETTINGS.calendar)
    assert case.id in {i for i, _, _ in report.escalated}
    [note] = notes_of(db_session, here)
    assert note.payload["note"] == "Escalated automatically: overdue."


def test_nobody_is_told_about_a_case_outside_their_scope(db_session, people, monkeypatch):
    _supervisor, worker = people
    here = make_user(db_session, username="n_scope", role="supervisor", area_code=COMMUNITY)
    case = make_incident(
        db_session, reporter=worker, microgrid_code=MICROGRID, handler_id=worker.id
    )
    # Whatever picks the recipients, the scope rule has the last word.
    monkeypatch.setattr(
        notifications, "incident_scope", lambda session, user: Incident.id != case.id
    )
    act(db_session, case, "escalate", worker, note="x")
    assert notes_of(db_session, here) == []


def test_assignments_created_and_ended_tell_their_user(db_session, demo_users, people):
    admin = db_session.get(User, demo_users["admin"].id)
    _, worker = people
    view = assignments.create_assignment(
        db_session, actor=admin, user_id=worker.id, area_code="330212001001001002", duty="part_time"
    )
    assignments.end_assignment(db_session, actor=admin, assignment_id=view.id)
    assignments.end_assignment(db_session, actor=admin, assignment_id=view.id)  # a no-op
    notes = notes_of(db_session, worker)
    assert [(n.kind, n.payload["change"]) for n in notes] == [
        ("assignment_changed", "created"),
        ("assignment_changed", "ended"),
    ]
    assert {n.assignment_id for n in notes} == {view.id}


def test_one_key_one_notification(db_session, people):
    _, worker = people
    first = notifications.notify(
        db_session, user_id=worker.id, kind="dispatched", key="k-1", payload={}
    )
    again = notifications.notify(
        db_session, user_id=worker.id, kind="dispatched", key="k-1", payload={"x": 1}
    )
    assert first is not None and again is None
    assert len(notes_of(db_session, worker)) == 1


# --- the API --------------------------------------------------------------------------------


def test_list_page_filter_and_mark_read(app, client, db_session, people):
    _, worker = people
    ids = [
        notifications.notify(
            db_session, user_id=worker.id, kind="dispatched", key=f"api-{i}", payload={"i": i}
        )
        for i in range(5)
    ]
    headers = bearer(app, worker)
    first = client.get("/api/v1/me/notifications?limit=2", headers=headers)
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    assert [n["id"] for n in first.get_json()["items"]] == ids[:-3:-1]
    cursor = first.get_json()["next_cursor"]
    rest = client.get(f"/api/v1/me/notifications?cursor={cursor}", headers=headers).get_json()
    assert [n["id"] for n in rest["items"]] == ids[2::-1] and rest["next_cursor"] is None
    marked = client.post("/api/v1/me/notifications/read", json={"ids": ids[:2]}, headers=headers)
    assert marked.get_json() == {"marked": 2}
    unread = client.get("/api/v1/me/notifications?unread=true", headers=headers).get_json()
    assert {n["id"] for n in unread["items"]} == set(ids[2:])
    up_to = client.post("/api/v1/me/notifications/read", json={"up_to": ids[3]}, headers=headers)
    assert up_to.get_json() == {"marked": 2}
    read = client.get("/api/v1/me/notifications?unread=false", headers=headers).get_json()
    assert len(read["items"]) == 4 and all(n["read_at"] for n in read["items"])


def test_others_notifications_are_neither_listed_nor_marked(app, client, db_session, people):
    supervisor, worker = people
    theirs = notifications.notify(
        db_session, user_id=worker.id, kind="dispatched", key="theirs", payload={}
    )
    headers = bearer(app, supervisor)
    assert client.get("/api/v1/me/notifications", headers=headers).get_json()["items"] == []
    marked = client.post("/api/v1/me/notifications/read", json={"ids": [theirs]}, headers=headers)
    assert marked.get_json() == {"marked": 0}
    assert db_session.get(Notification, theirs).read_at is None


@pytest.mark.parametrize(
    "body",
    [{}, {"ids": [1], "up_to": 1}, {"ids": []}, {"ids": ["1"]}, {"up_to": 2**63}],
)
def test_mark_read_refuses_what_it_cannot_do(app, client, people, body):
    _, worker = people
    response = client.post("/api/v1/me/notifications/read", json=body, headers=bearer(app, worker))
    assert response.status_code == 422


def test_a_forged_cursor_is_a_422(app, client, people):
    _, worker = people
    response = client.get(
        "/api/v1/me/notifications?cursor=eyJpZCI6ImEifQ", headers=bearer(app, worker)
    )
    assert (response.status_code, response.get_json()["error"]) == (422, "invalid_cursor")


def test_devices_register_and_remove(app, client, db_session, people):
    supervisor, worker = people
    headers = bearer(app, worker)
    created = client.post(
        "/api/v1/me/devices", json={"kind": "webhook", "url": GATEWAY}, headers=headers
    )
    assert created.status_code == 201, created.get_json()
    device = created.get_json()
    assert device["url"] == GATEWAY and len(device["secret"]) == 64
    # Someone else's device is not found; one's own is removed once.
    other = client.delete(f"/api/v1/me/devices/{device['id']}", headers=bearer(app, supervisor))
    assert (other.status_code, other.get_json()["error"]) == (404, "device_not_found")
    assert client.delete(f"/api/v1/me/devices/{device['id']}", headers=headers).status_code == 204
    assert db_session.get(Device, device["id"]) is None
    assert client.delete(f"/api/v1/me/devices/{device['id']}", headers=headers).status_code == 404


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://10.0.0.1/push", "gateway_not_allowed"),
        ("http://127.0.0.1:80@evil.example/push", "gateway_not_allowed"),
        ("ftp://127.0.0.1:21/push", "validation_failed"),
        ("not a url", "validation_failed"),
    ],
)
def test_a_device_must_point_at_an_allowed_gateway(app, client, people, url, error):
    _, worker = people
    response = client.post(
        "/api/v1/me/devices", json={"kind": "webhook", "url": url}, headers=bearer(app, worker)
    )
    assert (response.status_code, response.get_json()["error"]) == (422, error)


def _subscription(endpoint: str) -> dict:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )
    keys = {"p256dh": _b64(point), "auth": _b64(os.urandom(16))}
    return {"endpoint": endpoint, "keys": keys, "expirationTime": None}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_web_push_subscription_needs_a_vapid_key(app, client, people, monkeypatch):
    _, worker = people
    headers = bearer(app, worker)
    body = {"kind": "webpush", "subscription": _subscription("http://127.0.0.1:9/wp")}
    refused = client.post("/api/v1/me/devices", json=body, headers=headers)
    assert (refused.status_code, refused.get_json()["error"]) == (422, "webpush_not_configured")
    private = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    configure(
        monkeypatch,
        app,
        VAPID_PRIVATE_KEY=_b64(private.to_bytes(32, "big")),
        VAPID_SUBJECT="mailto:ops@example.org",
    )
    created = client.post("/api/v1/me/devices", json=body, headers=headers)
    assert created.status_code == 201, created.get_json()
    device = created.get_json()
    assert (device["kind"], device["url"], device["secret"]) == (
        "webpush",
        "http://127.0.0.1:9/wp",
        None,
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"kind": "webpush", "url": GATEWAY}, "validation_failed"),
        ({"kind": "webhook", "subscription": "S"}, "validation_failed"),
        ({"kind": "webhook", "url": GATEWAY, "subscription": "S"}, "validation_failed"),
        (
            {"kind": "webpush", "subscription": "S", "keys": {"auth": "AAAA"}},
            "invalid_subscription",
        ),
        (
            {"kind": "webpush", "subscription": "S", "keys": {"p256dh": "x" * 87}},
            "invalid_subscription",
        ),
        (
            {"kind": "webpush", "subscription": "S", "endpoint": "http://10.1.1.1/wp"},
            "gateway_not_allowed",
        ),
    ],
)
def test_a_web_push_subscription_that_cannot_be_used_is_refused(
    app, client, people, monkeypatch, body, error
):
    configure(monkeypatch, app, VAPID_PRIVATE_KEY=_b64(b"\x01" * 32), VAPID_SUBJECT="mailto:a@b.c")
    _, worker = people
    body = dict(body)
    if body.get("subscription") == "S":
        subscription = _subscription("http://127.0.0.1:9/wp")
        subscription["keys"] |= body.pop("keys", {})
        subscription["endpoint"] = body.pop("endpoint", subscription["endpoint"])
        body["subscription"] = subscription
    response = client.post("/api/v1/me/devices", json=body, headers=bearer(app, worker))
    assert (response.status_code, response.get_json()["error"]) == (422, error)
