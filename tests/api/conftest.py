"""Fixtures of the API tests: a point in the demo worker's micro-grid, small case verbs."""

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
