"""A new area level is the registry (geo.levels) and a migration: nothing else changes.

The service runs in a child process whose registry has a `building` level under the
micro-grid. Inside one transaction that is rolled back at the end, the child applies what the
level's migration would (the incident's `building_id` column, the area checks the models now
generate, longer codes), then through the HTTP API: draws a building with a boundary change
set (which re-routes the case reported there before), reports into it, looks the point up now and
at an instant, reads the case as a worker assigned only to the building, draws the building
tile layer and reads the map page's level list. The parent asserts on what the child saw.

What it does not show: the partial GiST index of the finest level (the migration would add
one for buildings; the lookup works without it, on the index of all areas), people's duty
rules (gridgov.services.people lets workers be assigned to grids and micro-grids; the child
inserts the building assignment directly) and the demo tree (geo.demo_district has one
branching factor per level).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from geo.levels import LEVELS, Level, LevelRegistry

ROOT = Path(__file__).resolve().parents[2]
BUILDING = Level(
    "building", 21, "microgrid", "building_id", "楼栋", tile_layer="buildings", tile_min_zoom=15
)
EXTENDED = LevelRegistry((*LEVELS.levels, BUILDING))


def test_a_level_under_the_microgrid_needs_only_the_registry_and_a_migration(app):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    env = {**os.environ, "GRIDGOV_ENV": "test", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.api.test_area_levels", url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    building, microgrid = seen["building"], seen["microgrid"]
    assert building == microgrid + "001"

    # Reported before the building existed: points go to the finest level, so nothing took
    # it (the district's queue), and the answer already names the new level, empty.
    assert seen["before"]["method"] == "unrouted"
    assert seen["before"]["building"] is None
    # The change set that drew the building re-routed that open case into it.
    assert {"from": None, "to": building, "count": 1} in seen["moves"]
    assert seen["rerouted"]["building"]["code"] == building
    # Intake, the lookup and the lookup at an instant route to the building, and the
    # parent chain above it is the micro-grid's.
    for answer in (seen["reported"], seen["route"], seen["route_at"]):
        assert answer["method"] == "covered"
        assert answer["building"] == {"code": building, "name": "1号楼"}
        assert answer["microgrid"]["code"] == microgrid
        assert answer["grid"]["code"] == microgrid[:15]
        assert answer["district"]["code"] == microgrid[:6]
    assert list(seen["route"])[-len(EXTENDED) :] == list(reversed(EXTENDED.names))
    # Scope: a worker assigned to the building alone sees the case there, not one elsewhere.
    assert seen["scope"] == {"in_building": 200, "elsewhere": 404}
    assert seen["tile"] == 200
    assert [level["name"] for level in seen["map_levels"]] == list(EXTENDED.names)


def _probe(url: str) -> dict:
    """In the child: the service on the EXTENDED registry, all in one rolled-back transaction."""
    import geo.levels

    geo.levels.LEVELS = EXTENDED  # before anything else reads the registry

    import math
    import re
    import uuid
    from datetime import UTC, datetime

    from sqlalchemy import func, select, text
    from sqlalchemy.schema import AddConstraint

    from gridgov import create_app
    from gridgov.extensions import db, lookups
    from gridgov.models import Area, Assignment, Incident, User
    from tests.helpers import bearer

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        engine = db.engines[None]
        connection = engine.connect()
        transaction = connection.begin()
        connection.execute(text("SET LOCAL lock_timeout = '10s'"))
        # The migration a new level takes.
        checks = {"ck_area_level_known", "ck_area_code_length"}
        connection.execute(text("ALTER TABLE area ALTER COLUMN code TYPE varchar(21)"))
        connection.execute(
            text(f"ALTER TABLE area DROP CONSTRAINT {', DROP CONSTRAINT '.join(checks)}")
        )
        for constraint in Area.__table__.constraints:
            if f"ck_area_{constraint.name}" in checks:
                connection.execute(AddConstraint(constraint))
        connection.execute(
            text("ALTER TABLE incident ADD COLUMN building_id integer REFERENCES area (id)")
        )
        db.engines[None] = connection
        lookups.bind(app, connection.connection.driver_connection)
        try:
            session = db.session
            users = {u.username: u for u in session.scalars(select(User))}
            admin, worker = bearer(app, users["admin"]), bearer(app, users["grid_worker"])
            client = app.test_client()
            microgrid = session.scalar(
                select(Area).where(Area.level == "microgrid").order_by(Area.code).limit(1)
            )
            other = session.scalar(
                select(Area).where(Area.level == "microgrid").order_by(Area.code.desc()).limit(1)
            )
            geometry = json.loads(session.scalar(func.ST_AsGeoJSON(microgrid.boundary)))

            def spot(area):
                point = func.ST_PointOnSurface(area.boundary)
                return session.execute(select(func.ST_X(point), func.ST_Y(point))).one()

            lon, lat = spot(microgrid)

            def report(at, user=admin):
                body = {
                    "client_id": str(uuid.uuid4()),
                    "category": "env_garbage",
                    "description": "楼道堆放杂物",
                    "location": {"lon": at[0], "lat": at[1]},
                }
                answer = client.post("/api/v1/incidents", json=body, headers=user)
                assert answer.status_code == 201, answer.get_json()
                return answer.get_json()

            before = report((lon, lat))
            building = microgrid.code + "001"
            feature = {
                "type": "Feature",
                "geometry": geometry,
                "properties": {"code": building, "parent": microgrid.code, "name": "1号楼"},
            }
            changed = client.post(
                "/api/v1/boundaries/changes",
                json={"type": "FeatureCollection", "features": [feature]},
                query_string={"dry_run": "false"},
                headers=admin,
            )
            assert changed.status_code in (200, 201), changed.get_json()
            rerouted = client.get(f"/api/v1/incidents/{before['id']}", headers=admin).get_json()
            reported = report((lon, lat))
            elsewhere = report(spot(other))
            route = client.get(f"/api/v1/route?lon={lon}&lat={lat}", headers=worker).get_json()
            now = datetime.now(UTC).isoformat()
            route_at = client.get(
                "/api/v1/route", query_string={"lon": lon, "lat": lat, "at": now}, headers=worker
            ).get_json()

            resident = User(username="building_worker", display_name="楼栋", role="worker")
            resident.password_hash = "!"
            session.add(resident)
            session.flush()
            building_id = session.scalar(select(Area.id).where(Area.code == building))
            session.add(
                Assignment(
                    user_id=resident.id, area_id=building_id, duty="full_time", active_from=now
                )
            )
            session.flush()
            assert session.get(Incident, reported["id"]).building_id == building_id
            as_resident = bearer(app, resident)
            scope = {
                "in_building": client.get(
                    f"/api/v1/incidents/{reported['id']}", headers=as_resident
                ).status_code,
                "elsewhere": client.get(
                    f"/api/v1/incidents/{elsewhere['id']}", headers=as_resident
                ).status_code,
            }
            z = 16
            x = int((lon + 180) / 360 * 2**z)
            y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
            tile = client.get(f"/tiles/buildings/{z}/{x}/{y}.mvt", headers=admin).status_code
            page = client.get("/map").get_data(as_text=True)
            map_levels = json.loads(re.search(r"data-levels='([^']*)'", page).group(1))
            return {
                "microgrid": microgrid.code,
                "building": building,
                "before": before["routing"],
                "moves": changed.get_json()["impact"]["moves"],
                "rerouted": rerouted["routing"],
                "reported": reported["routing"],
                "route": route,
                "route_at": route_at,
                "scope": scope,
                "tile": tile,
                "map_levels": map_levels,
            }
        finally:
            lookups.bind(app, None)
            db.session.remove()
            transaction.rollback()
            connection.close()
            db.engines[None] = engine


if __name__ == "__main__":
    print(json.dumps(_probe(sys.argv[1]), ensure_ascii=False))
