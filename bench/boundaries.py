"""Boundary benchmark: a one-grid redraw (dry run and apply) and a whole-district import.

Run from the project root::

    bench/run boundaries [--rounds 5]

Database: ``gridgov_bench`` as bench/harness.py provides it (district-size demo) with
1,000,000 incidents, 10 % open (bench/seed_incidents.py). Nothing is left changed: every
measured apply runs in a transaction that is rolled back after the clock stops (so the
figures exclude the final COMMIT, a few milliseconds of WAL flush).

(a) One-grid redraw: the grid with the most open incidents gets a new tiling of its
    micro-grids (same codes, new seeded Voronoi cells clipped to the grid). Measured:
    - service dry run: ``submit_changeset(dry_run=True)``: parse, validate the family in
      metres, apply inside a savepoint, preview the re-routing, roll the savepoint back;
    - service apply: ``submit_changeset(dry_run=False)``: the same, kept, plus the map lock,
      revisions, bulk re-routing with a timeline event per moved incident and the audit event;
    - raw: the same work as hand-written SQL in one transaction (overlap, gap and containment
      checks in PostGIS on the new cells, the area updates and revisions, and one UPDATE
      re-routing the open incidents of the grid), as the floor to compare against.
(b) Whole-district import: every current area (about 23,000) exported as a GeoJSON
    FeatureCollection file, then read, parsed and validated as `flask boundaries import FILE`
    does (a dry run, so it includes the preview of re-routing every open incident), against
    the raw PostGIS validity, overlap and gap checks of all families in SQL.
Targets: (a) apply under 1 s, (b) under 30 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import psycopg
import shapely
from shapely.geometry import MultiPolygon, mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from bench.harness import (  # noqa: E402
    MIN_MICROGRIDS,
    RESULTS_DIR,
    cpu_model,
    flask_cli,
    log,
    provide_database,
    read_facts,
    timed,
)
from bench.seed_incidents import ensure_incidents  # noqa: E402

# The grid with the most open incidents: the worst case for re-routing.
BUSIEST_GRID_SQL = """
SELECT g.code FROM incident i JOIN area g ON g.id = i.grid_id
WHERE i.status NOT IN ('rejected', 'duplicate', 'closed') AND g.retired_at IS NULL
GROUP BY g.code ORDER BY count(*) DESC, g.code LIMIT 1
"""

# The floor for (a): the same checks and writes in plain SQL, the new cells as WKB.
RAW_REDRAW_SQL = [
    # overlaps between the new cells (after snapping, in metres via geography)
    """
    SELECT count(*) FROM unnest(%(codes)s::text[], %(wkbs)s::bytea[]) AS a(code, wkb)
    JOIN unnest(%(codes)s::text[], %(wkbs)s::bytea[]) AS b(code, wkb) ON a.code < b.code
    WHERE ST_Area(ST_Intersection(ST_SnapToGrid(ST_GeomFromWKB(a.wkb, 4326), 5e-7),
                                  ST_SnapToGrid(ST_GeomFromWKB(b.wkb, 4326), 5e-7))::geography)
          > 1
    """,
    # gap: the grid minus the union of the new cells; containment: cells minus the grid
    """
    SELECT ST_Area(ST_Difference(g.boundary, u.geom)::geography),
           ST_Area(ST_Difference(u.geom, g.boundary)::geography)
    FROM area g, (SELECT ST_Union(ST_GeomFromWKB(wkb, 4326)) AS geom
                  FROM unnest(%(wkbs)s::bytea[]) AS c(wkb)) u
    WHERE g.code = %(grid)s
    """,
    # the areas and their revisions
    """
    WITH new AS (SELECT code, ST_Multi(ST_GeomFromWKB(wkb, 4326)) AS geom
                 FROM unnest(%(codes)s::text[], %(wkbs)s::bytea[]) AS c(code, wkb))
    UPDATE area a SET boundary = new.geom FROM new WHERE a.code = new.code
    """,
    """
    UPDATE area_revision r SET valid_to = now() FROM area a
    WHERE r.area_id = a.id AND a.code = ANY(%(codes)s) AND r.valid_to IS NULL
    """,
    """
    INSERT INTO area_revision (area_id, name, parent_id, boundary, valid_from, changeset_id)
    SELECT a.id, a.name, a.parent_id, a.boundary, now(),
           (SELECT max(id) FROM boundary_changeset)
    FROM area a WHERE a.code = ANY(%(codes)s)
    """,
    # re-route the open incidents of the grid to the covering micro-grid (lowest code)
    """
    UPDATE incident i SET microgrid_id = hit.id, version = i.version + 1
    FROM incident c CROSS JOIN LATERAL (
        SELECT a.id FROM area a
        WHERE a.level = 'microgrid' AND a.retired_at IS NULL AND ST_Covers(a.boundary, c.location)
        ORDER BY a.code LIMIT 1) hit
    WHERE c.id = i.id AND i.grid_id = (SELECT id FROM area WHERE code = %(grid)s)
      AND i.status NOT IN ('rejected', 'duplicate', 'closed') AND i.microgrid_id <> hit.id
    """,
]

# The floor for (b): validity of every area, then overlaps and gaps of every family.
RAW_DISTRICT_SQL = [
    "SELECT count(*) FILTER (WHERE NOT ST_IsValid(boundary)) FROM area WHERE retired_at IS NULL",
    """
    SELECT count(*) FROM area a JOIN area b
      ON a.parent_id = b.parent_id AND a.id < b.id AND a.boundary && b.boundary
    WHERE a.retired_at IS NULL AND b.retired_at IS NULL
      AND ST_Area(ST_Intersection(ST_SnapToGrid(a.boundary, 5e-7),
                                  ST_SnapToGrid(b.boundary, 5e-7))::geography) > 1
    """,
    """
    SELECT count(*) FROM area p
    JOIN LATERAL (SELECT ST_Union(c.boundary) AS geom FROM area c
                  WHERE c.parent_id = p.id AND c.retired_at IS NULL) u ON u.geom IS NOT NULL
    WHERE p.retired_at IS NULL AND ST_Area(ST_Difference(p.boundary, u.geom)::geography) > 1
    """,
]


def redraw_cells(grid: MultiPolygon, count: int, seed: int) -> list[MultiPolygon]:
    """`count` new Voronoi cells tiling the grid (seeded)."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = grid.bounds
    points = []
    while len(points) < count:
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if grid.contains(shapely.Point(x, y)):
            points.append((x, y))
    cells = shapely.voronoi_polygons(shapely.MultiPoint(points), extend_to=grid.envelope.buffer(1))
    # No snapping here: neighbours share the exact Voronoi edge, so they stay a clean tiling;
    # float noise along the grid boundary is what the validator snaps away.
    pieces = [shapely.intersection(cell, grid) for cell in cells.geoms]
    return [MultiPolygon(list(shapely.get_parts(p))) for p in pieces if not p.is_empty]


def run_raw(conn: psycopg.Connection, params: dict) -> None:
    """The raw redraw statements in one transaction (the caller rolls back)."""
    for statement in RAW_REDRAW_SQL:
        cursor = conn.execute(statement, params)
        if cursor.description:
            cursor.fetchall()


def measure_redraw(app, db, rounds: int, seed: int) -> dict:
    """(a): service dry run, service apply and raw SQL for a one-grid redraw."""
    from gridgov.extensions import db as sqla
    from gridgov.models import Area
    from gridgov.services import boundaries as svc
    from gridgov.settings import settings
    from gridgov.spatial import from_db

    with psycopg.connect(db.libpq_url, autocommit=True) as conn:
        grid_code = conn.execute(BUSIEST_GRID_SQL).fetchone()[0]
        open_in_grid = conn.execute(
            "SELECT count(*) FROM incident i JOIN area g ON g.id = i.grid_id WHERE g.code = %s"
            " AND i.status NOT IN ('rejected', 'duplicate', 'closed')",
            (grid_code,),
        ).fetchone()[0]
    with app.app_context():
        grid = from_db(
            sqla.session.scalar(sqla.select(Area.boundary).where(Area.code == grid_code))
        )
        codes = sorted(
            sqla.session.scalars(
                sqla.select(Area.code).where(
                    Area.code.like(grid_code + "%"),
                    Area.level == "microgrid",
                    Area.retired_at.is_(None),
                )
            )
        )
        cells = redraw_cells(grid, len(codes), seed)
        sqla.session.remove()
    features = [
        {
            "type": "Feature",
            "geometry": mapping(cell),
            "properties": {"code": code, "parent": grid_code},
        }
        for code, cell in zip(codes, cells, strict=True)
    ]
    config = settings(app)
    options = dict(tolerances=config.tolerances, max_nearest_m=config.routing_nearest_max_m)
    times: dict[str, list[float]] = {"dry_run": [], "apply": [], "raw": []}
    moved = None
    for round_no in range(rounds + 1):  # round 0 warms caches and is not counted
        with app.app_context():
            ms_dry, result = timed(
                lambda: svc.submit_changeset(
                    sqla.session,
                    actor=None,
                    features=features,
                    options=svc.ChangeSetOptions(dry_run=True, **options),
                )
            )
            if not result.valid:
                raise SystemExit(f"bench: the redraw does not validate: {result.problems[:3]}")
            sqla.session.rollback()
            ms_apply, result = timed(
                lambda: svc.submit_changeset(
                    sqla.session,
                    actor=None,
                    features=features,
                    options=svc.ChangeSetOptions(dry_run=False, **options),
                )
            )
            moved = result.impact.moved_open_incidents
            sqla.session.rollback()
            sqla.session.remove()
        params = {
            "codes": codes,
            "wkbs": [shapely.to_wkb(c) for c in cells],
            "grid": grid_code,
        }
        with psycopg.connect(db.libpq_url) as conn:
            ms_raw, _ = timed(lambda conn=conn, params=params: run_raw(conn, params))
            conn.rollback()
        if round_no:
            times["dry_run"].append(ms_dry)
            times["apply"].append(ms_apply)
            times["raw"].append(ms_raw)
        log(
            f"redraw round {round_no}: dry {ms_dry:.0f} ms, apply {ms_apply:.0f} ms,"
            f" raw {ms_raw:.0f} ms"
        )
    return {
        "grid": grid_code,
        "microgrids": len(codes),
        "open_incidents_in_grid": open_in_grid,
        "moved_open_incidents": moved,
        "p50_ms": {k: statistics.median(v) for k, v in times.items()},
        "max_ms": {k: max(v) for k, v in times.items()},
    }


def export_district(db, path: Path, shift_deg: float = 0.0) -> int:
    """Write every current area as a GeoJSON FeatureCollection file (built in SQL); with
    `shift_deg`, every area moved by that much, so that each one counts as changed."""
    with psycopg.connect(db.libpq_url, autocommit=True) as conn:
        document = conn.execute(
            """
            SELECT json_build_object('type', 'FeatureCollection', 'features',
                   json_agg(json_build_object(
                       'type', 'Feature',
                       'geometry',
                       ST_AsGeoJSON(ST_Translate(a.boundary, %(shift)s, %(shift)s), 9)::json,
                       'properties', json_build_object('code', a.code, 'name', a.name,
                                                       'parent', p.code))
                   ORDER BY a.code))
            FROM area a LEFT JOIN area p ON p.id = a.parent_id WHERE a.retired_at IS NULL
            """,
            {"shift": shift_deg},
        ).fetchone()[0]
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return len(document["features"])


def measure_district(app, db, path: Path) -> dict:
    """(b): read + parse + validate the whole district file, against raw SQL checks."""
    from gridgov.extensions import db as sqla
    from gridgov.services import boundaries as svc
    from gridgov.settings import settings

    stages: list[tuple[str, float]] = []
    started = time.perf_counter()

    def progress(stage: str, done: int, total: int) -> None:
        if done == total:
            stages.append((stage, time.perf_counter() - started))

    with app.app_context():
        ms, result = timed(
            lambda: svc.submit_changeset(
                sqla.session,
                actor=None,
                features=json.loads(path.read_text(encoding="utf-8"))["features"],
                options=svc.ChangeSetOptions(
                    dry_run=True,
                    tolerances=settings(app).tolerances,
                    max_nearest_m=settings(app).routing_nearest_max_m,
                ),
                progress=progress,
            )
        )
        sqla.session.rollback()
        sqla.session.remove()
    with psycopg.connect(db.libpq_url, autocommit=True) as conn:
        ms_raw, _ = timed(lambda: [conn.execute(sql).fetchall() for sql in RAW_DISTRICT_SQL])
    return {
        "features": len(json.loads(path.read_text(encoding="utf-8"))["features"]),
        "valid": result.valid,
        "problems": len(result.problems),
        "open_incidents_previewed": result.impact.moved_open_incidents,
        "service_ms": ms,
        "raw_ms": ms_raw,
        "stages_s": stages,
    }


def main(argv=None) -> int:
    """Set up, measure, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--instance", type=Path, default=PROJECT_ROOT / "instance")
    args = parser.parse_args(argv)
    db = provide_database(args.instance)
    try:
        flask_cli(db, "db", "upgrade")
        flask_cli(db, "demo", "load", "--size", "district", "--if-empty")
        facts = read_facts(db)
        if facts.area_counts["microgrid"] < MIN_MICROGRIDS:
            raise SystemExit("bench: gridgov_bench holds the small demo; drop it and run again")
        ensure_incidents(db, total=args.incidents, open_share=0.10, seed=args.seed)
        from gridgov import create_app

        app = create_app({"SQLALCHEMY_DATABASE_URI": db.url})
        redraw = measure_redraw(app, db, args.rounds, args.seed)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        district = {}
        # The same survey again (every upsert a no-op), and one where every area moved by
        # 0.2 mm (every area changed: the worst case for validation, writes and re-routing).
        for variant, shift in (("identical", 0.0), ("every area changed", 2e-9)):
            path = RESULTS_DIR / f"district-boundaries-{variant.split()[0]}.geojson"
            log(f"exported {export_district(db, path, shift)} areas to {path}")
            district[variant] = measure_district(app, db, path)
    finally:
        if db.cluster is not None and db.started_cluster:
            db.cluster.stop()
    ratio = redraw["p50_ms"]["apply"] / redraw["p50_ms"]["raw"]
    print(
        f"machine: {cpu_model()}; PostgreSQL {facts.server_version}; areas {facts.area_counts};"
        f" incidents {args.incidents:,} (10 % open)"
    )
    print(
        f"(a) one-grid redraw of {redraw['grid']} ({redraw['microgrids']} micro-grids,"
        f" {redraw['open_incidents_in_grid']} open incidents, {redraw['moved_open_incidents']}"
        f" re-routed), p50 of {args.rounds} rounds:"
    )
    print(f"    service dry run {redraw['p50_ms']['dry_run']:8.0f} ms")
    print(
        f"    service apply   {redraw['p50_ms']['apply']:8.0f} ms   target < 1000 ms:"
        f" {'yes' if redraw['p50_ms']['apply'] < 1000 else 'NO'}"
    )
    print(f"    raw SQL         {redraw['p50_ms']['raw']:8.0f} ms   service/raw {ratio:.1f}x")
    for variant, d in district.items():
        print(
            f"(b) whole district import ({variant}), {d['features']} areas,"
            f" valid={d['valid']} ({d['problems']} problems):"
        )
        print(
            f"    service (read, parse, validate, dry-run apply) {d['service_ms'] / 1000:6.1f} s"
            f"   target < 30 s: {'yes' if d['service_ms'] < 30_000 else 'NO'}"
        )
        print(
            f"    raw SQL checks                                 {d['raw_ms'] / 1000:6.1f} s"
            f"   service/raw {d['service_ms'] / d['raw_ms']:.1f}x"
        )
        print("    stages: " + ", ".join(f"{s} at {t:.1f} s" for s, t in d["stages_s"]))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS_DIR / f"boundaries-{stamp}.json"
    out.write_text(json.dumps({"redraw": redraw, "district": district}, indent=2, default=str))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
