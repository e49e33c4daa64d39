"""A live server and headless Chromium for the map page's browser tests.

The server is a second app on the session's test database (the small demo district), served by
werkzeug in a background thread on a free 127.0.0.1 port. Its data is real: incidents made
here are committed, and deleted again when the module is done. Chromium is Debian's
/usr/bin/chromium, driven by Playwright; a missing browser is a failure, never a skip
(scripts/test installs it as root, or prints the apt command).
"""

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import text
from werkzeug.serving import make_server

from gridgov import create_app
from gridgov.extensions import db
from gridgov.services.demo import DEMO_PASSWORD
from gridgov.web import tiles_available

CHROMIUM = Path("/usr/bin/chromium")
# As root Chromium needs --no-sandbox; the rest keep it off this machine's closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@dataclass
class LiveServer:
    url: str
    app: object


@pytest.fixture(scope="module")
def live_server(app) -> Iterator[LiveServer]:
    """The app on a real HTTP port, on the session's test database."""
    live = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]}
    )
    assert tiles_available(live), "the map page's tiles mode needs the /tiles endpoint"
    server = make_server("127.0.0.1", 0, live, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=live)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        with live.app_context():
            db.session.remove()
            db.engine.dispose()


def login(client, username: str) -> dict[str, str]:
    """Bearer headers for a demo user, through the real login endpoint."""
    response = client.post(
        "/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


@dataclass
class MapIncident:
    id: int
    status: str
    category: str
    overdue: bool
    lon: float
    lat: float
    actions: tuple[str, ...]  # the timeline's actions, oldest first


@pytest.fixture(scope="module")
def map_incidents(live_server) -> Iterator[dict[str, MapIncident]]:
    """Three committed incidents in town_supervisor's town: accepted, overdue, dispatched."""
    live = live_server.app
    client = live.test_client()
    worker, supervisor = login(client, "grid_worker"), login(client, "town_supervisor")
    town = client.get("/api/v1/me", headers=supervisor).get_json()["areas"][0]
    with live.app_context():
        # The first grid's three micro-grids: apart on the map, close enough for one view.
        points = db.session.execute(
            text(
                "SELECT code, ST_X(ST_PointOnSurface(boundary)), ST_Y(ST_PointOnSurface(boundary))"
                " FROM area WHERE level = 'microgrid' AND code LIKE :town || '%'"
                " ORDER BY code LIMIT 3"
            ),
            {"town": town},
        ).all()
    plans = [
        ("accepted", "env_garbage", [("accept", {})]),
        ("overdue", "fire_corridor", []),
        (
            "dispatched",
            "facility_streetlight",
            [("accept", {}), ("dispatch", {"handling_unit": "街道城管中队"})],
        ),
    ]
    made: dict[str, MapIncident] = {}
    try:
        for (name, category, actions), (_code, lon, lat) in zip(plans, points, strict=True):
            response = client.post(
                "/api/v1/incidents",
                headers=worker,
                json={
                    "client_id": f"map-test-{name}",
                    "category": category,
                    "description": f"地图页面测试：{name}",
                    "location": {"lon": lon, "lat": lat, "crs": "wgs84"},
                },
            )
            assert response.status_code == 201, response.get_json()
            body = response.get_json()
            made[name] = MapIncident(
                id=body["id"],
                status=body["status"],
                category=category,
                overdue=False,
                lon=body["location"]["lon"],
                lat=body["location"]["lat"],
                actions=("report",),
            )
            for action, extra in actions:
                response = client.post(
                    f"/api/v1/incidents/{body['id']}/actions",
                    headers=supervisor,
                    json={"action": action, "note": f"测试{action}", **extra},
                )
                assert response.status_code == 200, response.get_json()
                made[name].status = response.get_json()["status"]
                made[name].actions += (action,)
        with live.app_context():
            db.session.execute(
                text("UPDATE incident SET deadline = now() - interval '2 hours' WHERE id = :id"),
                {"id": made["overdue"].id},
            )
            db.session.commit()
        made["overdue"].overdue = True
        yield made
    finally:
        ids = [incident.id for incident in made.values()]
        with live.app_context():
            # What the actions notified goes with the cases (deliveries cascade).
            db.session.execute(
                text("DELETE FROM notification WHERE incident_id = ANY(:ids)"), {"ids": ids}
            )
            db.session.execute(
                text("DELETE FROM incident_event WHERE incident_id = ANY(:ids)"), {"ids": ids}
            )
            db.session.execute(text("DELETE FROM incident WHERE id = ANY(:ids)"), {"ids": ids})
            db.session.commit()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium (a fresh profile per launch); fails when it is missing."""
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: the map page's tests need Debian's Chromium"
        " (scripts/test installs it as root; else: sudo apt-get install -y chromium)"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
