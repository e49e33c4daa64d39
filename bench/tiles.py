"""Tile benchmark: GET /tiles/{layer}/{z}/{x}/{y}.mvt against its raw ST_AsMVT statement.

Run from the project root::

    .venv/bin/python bench/tiles.py [--passes 3] [--z14-tiles 300] [--http-passes 1]

Database: ``gridgov_bench`` exactly as bench/harness.py provides it (private cluster or
DATABASE_URL's server, migrated, district-size demo), plus 1,000,000 incidents, 10 % open,
from bench/seed_incidents.py (loaded once, kept).

For every user (a town supervisor, the district supervisor, the admin), layer (grids,
micro-grids, incidents) and zoom (12, 14), over a fixed tile set (every z12 tile touching the
user's area, i.e. the district or the town; the z14 tiles touching it, a seeded sample of at most
--z14-tiles), each tile is drawn, in this order, by

- service: ``gridgov.services.tiles.prepare_tile`` + ``render_tile`` in-process (the scope
  look-ups included, on the app's SQLAlchemy session, one transaction per tile);
- raw: the very statement text and parameters the service just built, run through one
  autocommit psycopg connection (``conn.execute(sql, params)``), nothing else: the floor;
- app: the whole Flask stack in-process through the test client (token check, user load,
  query parsing, headers);
- http (``--http-passes``, default 1): gunicorn serving ``wsgi:app`` on 127.0.0.1, one
  request at a time on a fresh connection (connect time included).

One warm-up pass, then ``--passes`` measured passes; p50/p99 are over all measured tiles of
all passes. Figures go to stdout and ``bench/results/tiles-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import psycopg  # noqa: E402

from bench.harness import (  # noqa: E402
    BENCH_DB,
    MIN_MICROGRIDS,
    RESULTS_DIR,
    cpu_count,
    cpu_model,
    flask_cli,
    loadavg,
    log,
    login,
    percentile,
    provide_database,
    read_facts,
    request_once,
    start_server,
    wait_until_ready,
)
from bench.seed_incidents import ensure_incidents  # noqa: E402

USERS = ("town_supervisor", "district_supervisor", "admin")
LAYERS = ("grids", "microgrids", "incidents")
ZOOMS = (12, 14)
P50_TARGET_MS = 50.0
# "No slower than raw": the service's p50 within 10 % of the raw statement's, plus the fixed
# cost of its look-ups (boundary version, the caller's assignments) of about a millisecond.
RATIO_SLACK, FIXED_SLACK_MS = 1.10, 1.0


@dataclass
class Series:
    """Latencies (ms) of one path for one (user, layer, zoom)."""

    samples: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        """n, p50, p99, max."""
        values = sorted(self.samples)
        return {
            "n": len(values),
            "p50_ms": round(percentile(values, 50), 3),
            "p99_ms": round(percentile(values, 99), 3),
            "max_ms": round(values[-1], 3) if values else None,
        }


def tiles_touching(conn: psycopg.Connection, code: str, z: int) -> list[tuple[int, int]]:
    """Every tile of zoom z whose envelope intersects the area `code`."""
    rows = conn.execute(
        """
        WITH a AS (SELECT boundary, ST_Transform(boundary, 3857)::box2d AS box
                   FROM area WHERE code = %(code)s),
        range AS (
            SELECT floor((ST_XMin(box) + 20037508.342789244) / (40075016.68557849 / 2 ^ %(z)s))
                       ::int AS x0,
                   floor((ST_XMax(box) + 20037508.342789244) / (40075016.68557849 / 2 ^ %(z)s))
                       ::int AS x1,
                   floor((20037508.342789244 - ST_YMax(box)) / (40075016.68557849 / 2 ^ %(z)s))
                       ::int AS y0,
                   floor((20037508.342789244 - ST_YMin(box)) / (40075016.68557849 / 2 ^ %(z)s))
                       ::int AS y1
            FROM a
        )
        SELECT x, y FROM range, a,
             generate_series(range.x0, range.x1) AS x, generate_series(range.y0, range.y1) AS y
        WHERE ST_Intersects(a.boundary, ST_Transform(ST_TileEnvelope(%(z)s, x, y), 4326))
        ORDER BY x, y
        """,
        {"code": code, "z": z},
    ).fetchall()
    return [(x, y) for x, y in rows]


def index_state(conn: psycopg.Connection) -> list[str]:
    """Names of the incident table's indexes."""
    rows = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'incident' ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


def measure_in_process(db_url: str, libpq_url: str, plan: dict, args) -> tuple[dict, dict]:
    """service / raw / app latencies per (user, layer, z); plus consistency checks."""
    os.environ["DATABASE_URL"] = db_url
    from sqlalchemy import select

    from gridgov import create_app
    from gridgov.api.security import access_token_for
    from gridgov.extensions import db
    from gridgov.models import User

    app = create_app()
    results: dict = {}
    checks = {"byte_mismatches": 0, "app_status": {}}
    with app.app_context():
        users = {}
        for username in USERS:
            user = db.session.scalar(select(User).where(User.username == username))
            token = access_token_for(user)
            db.session.expunge(user)  # detached: read once, like current_user() in a request
            users[username] = (user, {"Authorization": f"Bearer {token}"})
    with psycopg.connect(libpq_url, autocommit=True) as raw:
        for username in USERS:
            user, headers = users[username]
            for layer in LAYERS:
                for z in ZOOMS:
                    tiles = plan[username][z]
                    series = {name: Series() for name in ("service", "raw", "app")}
                    sizes: list[int] = []
                    for pass_no in range(args.passes + 1):
                        target = series if pass_no > 0 else None  # pass 0 warms up
                        with app.app_context():
                            _service_and_raw(db, raw, user, layer, z, tiles, target, sizes, checks)
                        _whole_app(app, headers, layer, z, tiles, target, checks)
                    results[(username, layer, z)] = {
                        "tiles": len(tiles),
                        "empty_share": round(sizes.count(0) / max(1, len(sizes)), 3),
                        "mean_kb": round(sum(sizes) / max(1, len(sizes)) / 1024, 2),
                        **{name: s.summary() for name, s in series.items()},
                    }
                    r = results[(username, layer, z)]
                    log(
                        f"{username:<20} {layer:<10} z{z}: service p50 {r['service']['p50_ms']}"
                        f" ms, raw p50 {r['raw']['p50_ms']} ms, app p50 {r['app']['p50_ms']} ms"
                    )
    return results, checks


def _service_and_raw(db, raw, user, layer, z, tiles, series, sizes, checks) -> None:
    """Per tile: the service call on the app's session, then its statement via psycopg."""
    from gridgov.services import tiles as tile_service

    perf = time.perf_counter
    for x, y in tiles:
        t0 = perf()
        prepared = tile_service.prepare_tile(db.session, user=user, layer=layer, z=z, x=x, y=y)
        data = tile_service.render_tile(db.session, prepared=prepared)
        t1 = perf()
        db.session.rollback()  # one transaction per tile, as in a request
        raw_data = b""
        t2 = perf()
        if prepared.sql is not None:
            row = raw.execute(prepared.sql, prepared.params).fetchone()
            raw_data = bytes(row[0]) if row and row[0] else b""
        t3 = perf()
        checks["byte_mismatches"] += raw_data != data
        if series is not None:
            series["service"].samples.append((t1 - t0) * 1000)
            series["raw"].samples.append((t3 - t2) * 1000)
            sizes.append(len(data))


def _whole_app(app, headers, layer, z, tiles, series, checks) -> None:
    """Per tile: GET through the Flask test client (each request its own app context)."""
    client = app.test_client()
    for x, y in tiles:
        t0 = time.perf_counter()
        response = client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", headers=headers)
        response.get_data()
        elapsed = (time.perf_counter() - t0) * 1000
        key = str(response.status_code)
        checks["app_status"][key] = checks["app_status"].get(key, 0) + 1
        if series is not None:
            series["app"].samples.append(elapsed)


def measure_http(db, plan: dict, args, stamp: str) -> dict:
    """Sequential GETs against gunicorn serving wsgi:app (fresh connection per request)."""
    from gridgov.services.demo import DEMO_PASSWORD

    server = start_server("tiles", "wsgi:app", db, args, RESULTS_DIR / f"tiles-{stamp}-http.log")
    results: dict = {}
    try:
        wait_until_ready(server, "/healthz")
        for username in USERS:
            token = login(server.port, username, DEMO_PASSWORD)
            headers = {"Authorization": f"Bearer {token}"}
            for layer in LAYERS:
                for z in ZOOMS:
                    series = Series()
                    statuses: dict[str, int] = {}
                    for pass_no in range(args.http_passes + 1):
                        for x, y in plan[username][z]:
                            t0 = time.perf_counter()
                            status, _ = request_once(
                                server.port, "GET", f"/tiles/{layer}/{z}/{x}/{y}.mvt", None, headers
                            )
                            elapsed = (time.perf_counter() - t0) * 1000
                            if pass_no > 0:
                                series.samples.append(elapsed)
                                statuses[str(status)] = statuses.get(str(status), 0) + 1
                    results[(username, layer, z)] = {**series.summary(), "statuses": statuses}
    finally:
        server.stop()
    return results


def verdicts(row: dict, z: int) -> dict:
    """p50 < 50 ms at z14 and the service no slower than its raw statement."""
    service, raw = row["service"]["p50_ms"], row["raw"]["p50_ms"]
    return {
        "ratio_service_raw_p50": round(service / raw, 2) if raw else None,
        "overhead_p50_ms": round(service - raw, 2),
        "p50_under_50ms": service < P50_TARGET_MS if z == 14 else None,
        "no_slower_than_raw": service <= raw * RATIO_SLACK + FIXED_SLACK_MS,
    }


HEAD = (
    "{:<10} {:>2} {:<19} {:>5} {:>5} {:>6} | {:>7} {:>7} | {:>7} {:>7} | {:>5} {:>5} |"
    " {:>7} {:>7} | {:>7} {:>7} | {}"
)


def print_report(report: dict) -> None:
    """The table on stdout."""
    m, d = report["machine"], report["database"]
    print(
        f"machine: nproc {m['nproc']}, {m['cpu_model']} | PostgreSQL {d['server_version']}"
        f" | {d['postgis']}"
    )
    print(
        f"database: {d['url']} ({d['where']}); areas: "
        + ", ".join(f"{k} {v:,}" for k, v in d["area_counts"].items())
    )
    print(
        f"incidents: {d['incidents']:,} ({d['open_incidents']:,} open,"
        f" {d['overdue_incidents']:,} overdue); incident indexes: {', '.join(d['indexes'])}"
    )
    c = report["config"]
    print(f"load average (1, 5, 15 min) at start / end: {m['loadavg_start']} / {m['loadavg_end']}")
    print(
        f"passes: {c['passes']} measured after 1 warm-up (http: {c['http_passes']}); tiles:"
        f" {c['tile_counts']}"
    )
    print(
        "service = prepare_tile+render_tile in-process; raw = the same statement via psycopg;"
        " app = Flask test client; http = gunicorn, sequential, new connection per request"
    )
    print(
        HEAD.format(
            "layer", "z", "user", "tiles", "empty", "mean KB",
            "svc p50", "svc p99", "raw p50", "raw p99", "ratio", "+ms",
            "app p50", "app p99", "http p50", "http p99", "z14 p50<50 / no slower than raw",
        )
    )  # fmt: skip
    for row in report["rows"]:
        http = row.get("http") or {}
        v = row["verdict"]
        flag = (
            ("yes" if v["p50_under_50ms"] else "NO") + " / "
            if v["p50_under_50ms"] is not None
            else "- / "
        ) + ("yes" if v["no_slower_than_raw"] else "NO")
        print(
            HEAD.format(
                row["layer"], row["z"], row["user"], row["tiles"],
                f"{row['empty_share']:.0%}", f"{row['mean_kb']:.1f}",
                f"{row['service']['p50_ms']:.2f}", f"{row['service']['p99_ms']:.2f}",
                f"{row['raw']['p50_ms']:.2f}", f"{row['raw']['p99_ms']:.2f}",
                f"{v['ratio_service_raw_p50']}", f"{v['overhead_p50_ms']:.1f}",
                f"{row['app']['p50_ms']:.2f}", f"{row['app']['p99_ms']:.2f}",
                f"{http['p50_ms']:.2f}" if http else "-", f"{http['p99_ms']:.2f}" if http else "-",
                flag,
            )
        )  # fmt: skip
    checks = report["checks"]
    print(
        f"checks: raw bytes == service bytes for every tile: {checks['byte_mismatches'] == 0}"
        f" ({checks['byte_mismatches']} mismatches); app statuses {checks['app_status']};"
        f" http statuses {checks.get('http_status', '-')}"
    )


def parse_args(argv=None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=3, help="measured passes over the tiles")
    parser.add_argument("--http-passes", type=int, default=1, help="0 skips the gunicorn part")
    parser.add_argument("--z14-tiles", type=int, default=300, help="sample size at z14")
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--open-share", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (http part)")
    parser.add_argument(
        "--instance",
        type=Path,
        default=Path(os.environ.get("GRIDGOV_INSTANCE_DIR", PROJECT_ROOT / "instance")),
    )
    args = parser.parse_args(argv)
    args.worker_class = "sync"  # for bench.harness.start_server
    if not (1 <= args.passes <= 50 and 0 <= args.http_passes <= 50 and args.z14_tiles >= 1):
        parser.error("--passes in [1, 50], --http-passes in [0, 50], --z14-tiles >= 1")
    return args


def main(argv=None) -> int:
    """Set up, measure, print and save; always stop what was started."""
    args = parse_args(argv)
    started = time.monotonic()
    loadavg_start = loadavg()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)

    def on_sigterm(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    db = provide_database(args.instance)
    try:
        flask_cli(db, "db", "upgrade")
        flask_cli(db, "demo", "load", "--size", "district", "--if-empty")
        facts = read_facts(db)
        if facts.area_counts["microgrid"] < MIN_MICROGRIDS:
            raise SystemExit(f"bench: {BENCH_DB} holds the small demo; drop it and run again")
        ensure_incidents(db, total=args.incidents, open_share=args.open_share, seed=args.seed)
        with psycopg.connect(db.libpq_url, autocommit=True) as conn:
            district = conn.execute(
                "SELECT code FROM area WHERE level = 'district' AND retired_at IS NULL"
                " ORDER BY code LIMIT 1"
            ).fetchone()[0]
            town = conn.execute(
                "SELECT a.code FROM assignment s JOIN app_user u ON u.id = s.user_id"
                " JOIN area a ON a.id = s.area_id"
                " WHERE u.username = 'town_supervisor' AND s.active_to IS NULL LIMIT 1"
            ).fetchone()[0]
            rng = random.Random(args.seed)
            plan: dict = {}
            for username in USERS:
                code = town if username == "town_supervisor" else district
                z14 = tiles_touching(conn, code, 14)
                if len(z14) > args.z14_tiles:
                    z14 = sorted(rng.sample(z14, args.z14_tiles))
                plan[username] = {12: tiles_touching(conn, code, 12), 14: z14}
            counts = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE status NOT IN"
                " ('rejected', 'duplicate', 'closed')), count(*) FILTER (WHERE status NOT IN"
                " ('rejected', 'duplicate', 'closed') AND deadline < now()) FROM incident"
            ).fetchone()
            postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
            indexes = index_state(conn)
        log("measuring in-process (service, raw, app)")
        rows_in, checks = measure_in_process(db.url, db.libpq_url, plan, args)
        http = {}
        if args.http_passes:
            log("measuring over HTTP (gunicorn)")
            http = measure_http(db, plan, args, stamp)
            statuses: dict[str, int] = {}
            for result in http.values():
                for status, n in result["statuses"].items():
                    statuses[status] = statuses.get(status, 0) + n
            checks["http_status"] = statuses
    finally:
        if db.cluster is not None and db.started_cluster:
            log("stopping the private cluster (this run started it)")
            db.cluster.stop()
    rows = []
    for layer in LAYERS:
        for z in ZOOMS:
            for username in USERS:
                row = rows_in[(username, layer, z)]
                rows.append(
                    {
                        "layer": layer,
                        "z": z,
                        "user": username,
                        **row,
                        "http": http.get((username, layer, z)),
                        "verdict": verdicts(row, z),
                    }
                )
    report = {
        "timestamp": stamp,
        "machine": {
            "nproc": cpu_count(),
            "cpu_model": cpu_model(),
            "python": platform.python_version(),
            "loadavg_start": loadavg_start,
            "loadavg_end": loadavg(),
        },
        "database": {
            "where": db.where,
            "url": db.shown_url,
            "server_version": facts.server_version,
            "postgis": f"PostGIS {postgis}",
            "area_counts": facts.area_counts,
            "incidents": counts[0],
            "open_incidents": counts[1],
            "overdue_incidents": counts[2],
            "indexes": indexes,
        },
        "config": {
            "passes": args.passes,
            "http_passes": args.http_passes,
            "workers": args.workers,
            "seed": args.seed,
            "tile_counts": {u: {z: len(t) for z, t in plan[u].items()} for u in USERS},
            "users": {"town_supervisor": town, "district_supervisor": district, "admin": "all"},
            "targets": {
                "p50_z14_ms": P50_TARGET_MS,
                "no_slower_than_raw": f"service p50 <= raw p50 * {RATIO_SLACK} + {FIXED_SLACK_MS}",
            },
        },
        "rows": rows,
        "checks": checks,
        "total_s": round(time.monotonic() - started, 1),
    }
    print_report(report)
    out = RESULTS_DIR / f"tiles-{stamp}.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\nresults: {out.relative_to(PROJECT_ROOT)}  (run took {report['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)
