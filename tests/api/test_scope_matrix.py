"""Role × area × endpoint: nobody reads or writes outside their scope, guessed ids included.

One scoping function (gridgov.services.scope) serves every endpoint; this matrix proves each
endpoint goes through it. Expected visibility is written out by hand, not computed.
"""

import io

import pytest
from PIL import Image

from gridgov.services import photos as photo_service
from tests.factories import make_incident, make_user
from tests.helpers import bearer

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
def world(app, db_session, demo_users, tmp_path):
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
    app.config["UPLOAD_DIR"] = tmp_path
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
