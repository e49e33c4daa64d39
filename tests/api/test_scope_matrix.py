"""Role × area × endpoint: nobody reads or writes outside their scope, guessed ids included.

One scoping function (gridgov.services.scope) serves every endpoint; this matrix proves each
endpoint goes through it. Expected visibility is written out by hand, not computed.
"""

import io

import pytest
from PIL import Image

from gridgov.services import photos as photo_service
from tests.factories import make_incident, make_user
from tests.helpers import bearer, configure

MG_A = "330212001001001001"  # grid_worker's micro-grid (grid 330212001001001, town 330212001)
MG_A_OTHER_GRID = "330212001001002001"  # same town and community, another grid
MG_B = "330212002001001001"  # town 330212002

# who → the incidents they may see
VISIBLE = {
    "admin": {"a", "a_other_grid", "b", "unrouted"},
    "district_supervisor": {"a", "a_other_grid", "b", "unrouted"},
    "town_supervisor": {"a", "a_other_grid"},
    "town_b_supervisor": {"b"},
    "grid_head": {"a"},
    "grid_worker": {"a"},
    "worker_b": {"b"},
}


@pytest.fixture
def world(app, db_session, demo_users, tmp_path, monkeypatch):
    users = dict(demo_users)
    users["town_b_supervisor"] = make_user(
        db_session, username="sup_b", role="supervisor", area_code="330212002"
    )
    users["worker_b"] = make_user(
        db_session, username="worker_b", role="worker", area_code=MG_B, duty="full_time"
    )
    reporter = users["admin"]
    incidents = {
        "a": make_incident(db_session, reporter=reporter, microgrid_code=MG_A),
        "a_other_grid": make_incident(
            db_session, reporter=reporter, microgrid_code=MG_A_OTHER_GRID
        ),
        "b": make_incident(db_session, reporter=reporter, microgrid_code=MG_B),
        "unrouted": make_incident(db_session, reporter=reporter),
    }
    configure(monkeypatch, app, UPLOAD_DIR=tmp_path)
    photos = {}
    for name, incident in incidents.items():
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (len(name) * 20, 0, 0)).save(buffer, "PNG")
        photo = photo_service.store_photo(
            db_session,
            data=buffer.getvalue(),
            uploader=reporter,
            upload_dir=tmp_path,
            max_bytes=1_000_000,
        )
        photo_service.attach_photos(
            db_session, incident_id=incident.id, photo_ids=[photo.id], reporter_id=reporter.id
        )
        photos[name] = photo.id
    return users, incidents, photos


@pytest.mark.parametrize("who", sorted(VISIBLE))
def test_reads(app, client, world, who):
    users, incidents, photos = world
    headers = bearer(app, users[who])
    listed = {
        item["id"]
        for item in client.get("/api/v1/incidents?limit=500", headers=headers).get_json()["items"]
    }
    for name, incident in incidents.items():
        visible = name in VISIBLE[who]
        expected = 200 if visible else 404
        assert (incident.id in listed) == visible, (who, name, "list")
        get = client.get(f"/api/v1/incidents/{incident.id}", headers=headers)
        assert get.status_code == expected, (who, name, "get")
        timeline = client.get(f"/api/v1/incidents/{incident.id}/timeline", headers=headers)
        assert timeline.status_code == expected, (who, name, "timeline")
        photo = client.get(f"/api/v1/photos/{photos[name]}", headers=headers)
        assert photo.status_code == expected, (who, name, "photo")
        if not visible:
            assert get.get_json()["error"] == "incident_not_found"


@pytest.mark.parametrize("who", sorted(VISIBLE))
def test_writes(app, client, world, db_session, who):
    users, incidents, _ = world
    headers = bearer(app, users[who])
    for name, incident in incidents.items():
        response = client.post(
            f"/api/v1/incidents/{incident.id}/actions",
            json={"action": "comment", "note": "probe"},
            headers=headers,
        )
        assert response.status_code == (200 if name in VISIBLE[who] else 404), (who, name)


def test_area_filters_cannot_widen_a_scope(app, client, world):
    users, incidents, _ = world
    headers = bearer(app, users["grid_worker"])
    for area in ("330212002", "330212", MG_B):
        items = client.get(f"/api/v1/incidents?area={area}", headers=headers).get_json()["items"]
        assert incidents["b"].id not in {item["id"] for item in items}


def test_guessed_ids_reveal_nothing(app, client, world):
    users, incidents, photos = world
    headers = bearer(app, users["worker_b"])
    hidden = client.get(f"/api/v1/incidents/{incidents['a'].id}", headers=headers)
    unknown = client.get("/api/v1/incidents/987654321", headers=headers)
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.get_json()["error"] == unknown.get_json()["error"] == "incident_not_found"
    hidden_photo = client.get(f"/api/v1/photos/{photos['a']}", headers=headers)
    unknown_photo = client.get(f"/api/v1/photos/{'0' * 32}", headers=headers)
    assert hidden_photo.get_json() == unknown_photo.get_json()


def test_reporters_and_holders_see_their_own(app, client, world, db_session):
    users, incidents, _ = world
    incidents["b"].handler_id = users["grid_worker"].id
    db_session.flush()
    headers = bearer(app, users["grid_worker"])
    assert client.get(f"/api/v1/incidents/{incidents['b'].id}", headers=headers).status_code == 200


def _reads(client, headers, incident_id, photo_id) -> list[int]:
    return [
        client.get(f"/api/v1/incidents/{incident_id}", headers=headers).status_code,
        client.get(f"/api/v1/incidents/{incident_id}/timeline", headers=headers).status_code,
        client.get(f"/api/v1/photos/{photo_id}", headers=headers).status_code,
    ]


def _act(client, headers, incident_id, **body):
    return client.post(f"/api/v1/incidents/{incident_id}/actions", json=body, headers=headers)


def test_a_worker_of_another_town_is_never_made_holder_so_never_reads(app, client, world):
    users, incidents, photos = world
    supervisor = bearer(app, users["town_supervisor"])
    case = incidents["a"].id
    assert _act(client, supervisor, case, action="accept").status_code == 200
    refused = _act(client, supervisor, case, action="dispatch", assignee=users["worker_b"].id)
    assert refused.status_code == 422
    assert refused.get_json()["error"] == "invalid_assignee"
    assert _reads(client, bearer(app, users["worker_b"]), case, photos["a"]) == [404] * 3


def test_a_holder_reassigned_away_stops_reading(app, client, world, db_session):
    users, incidents, photos = world
    # On duty in another micro-grid of the case's grid: a holder, but not otherwise in scope.
    holder = make_user(db_session, username="holder", area_code="330212001001001002")
    supervisor, as_holder = bearer(app, users["town_supervisor"]), bearer(app, holder)
    case = incidents["a"].id
    assert _reads(client, as_holder, case, photos["a"]) == [404] * 3
    assert _act(client, supervisor, case, action="accept").status_code == 200
    assert _act(client, supervisor, case, action="dispatch", assignee=holder.id).status_code == 200
    assert _reads(client, as_holder, case, photos["a"]) == [200] * 3
    moved = _act(
        client,
        supervisor,
        case,
        action="reassign",
        assignee=users["grid_worker"].id,
        note="改派",
    )
    assert moved.status_code == 200, moved.get_json()
    assert _reads(client, as_holder, case, photos["a"]) == [404] * 3
    assert _reads(client, bearer(app, users["grid_worker"]), case, photos["a"]) == [200] * 3
