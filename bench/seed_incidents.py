"""Bulk-load benchmark incidents into gridgov_bench, fast, in SQL (INSERT … SELECT).

    from bench.seed_incidents import ensure_incidents
    ensure_incidents(db)              # db: bench.harness.Database (or a database URL)

or from the project root: ``.venv/bin/python bench/seed_incidents.py [--total N]``.

What the rows look like (all marked ``source = 'bench'``, reporter ``bench_reporter``):

- location: a random point inside a random current micro-grid (ST_GeneratePoints, seeded,
  one call per micro-grid and batch), routed ``covered`` to it; the grid, community, town and
  district come from the micro-grid's parent chain by join (and the ``original_*`` columns
  equal them);
- ``open_share`` of them open (reported, accepted, dispatched, in_progress, resolved,
  verified, returned), reported in the last 45 days, current deadline from 1 day ago to 4 days
  ahead, so about a quarter of the open ones are overdue; the rest terminal (95 % closed, 5 %
  rejected), reported over the last 12 months, with accept/resolve/close times and no
  running clock;
- category uniform over the category table (priority its default), ``client_id``
  ``bench-<n>`` and ``content_hash`` md5 of it (unique per reporter).

Idempotent and resumable: it counts the ``source = 'bench'`` rows and inserts only the missing
ones (row numbers count+1..total) in batches of ``batch`` rows, each its own transaction with a
progress line; nothing is inserted when the count is already there. Then VACUUM ANALYZE of the
incident table. A session advisory lock keeps two benchmarks from seeding at the same time.
Draws are deterministic for a given seed and batch (``setseed`` at the start of each batch).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import psycopg  # noqa: E402

SOURCE = "bench"
REPORTER = "bench_reporter"
LOCK_KEY = 7_021_901  # pg_advisory_lock key of the seeding

_INSERT = """
WITH mg AS (
    SELECT row_number() OVER (ORDER BY m.code) AS k, m.id AS microgrid_id, g.id AS grid_id,
           c.id AS community_id, t.id AS town_id, d.id AS district_id, m.boundary
    FROM area m
    JOIN area g ON g.id = m.parent_id
    JOIN area c ON c.id = g.parent_id
    JOIN area t ON t.id = c.parent_id
    JOIN area d ON d.id = t.parent_id
    WHERE m.level = 'microgrid' AND m.retired_at IS NULL
),
cats AS (
    SELECT row_number() OVER (ORDER BY id) AS k, id, default_priority FROM category
),
picks AS (
    SELECT n,
           1 + floor(random() * (SELECT count(*) FROM mg))::int AS mg_k,
           1 + floor(random() * (SELECT count(*) FROM cats))::int AS cat_k,
           random() < %(open_share)s AS is_open,
           random() AS r_status, random() AS r_time, random() AS r_clock
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS n
),
per_mg AS (
    SELECT mg_k, array_agg(n ORDER BY n) AS ns FROM picks GROUP BY mg_k
),
points AS (
    SELECT per_mg.ns[coalesce(d.path[1], 1)] AS n, d.geom
    FROM per_mg
    JOIN mg ON mg.k = per_mg.mg_k,
    LATERAL ST_Dump(ST_GeneratePoints(
        mg.boundary, cardinality(per_mg.ns),
        1 + ((%(seed)s::bigint * 7919 + %(lo)s::bigint * 31 + mg.k) %% 2000000000)::int
    )) AS d
),
rows AS (
    SELECT p.n, p.is_open, p.r_clock, pt.geom, mg.*, cats.id AS category_id,
           cats.default_priority,
           CASE WHEN p.is_open THEN
                (ARRAY['reported', 'accepted', 'dispatched', 'in_progress', 'resolved',
                       'verified', 'returned'])[1 + floor(p.r_status * 7)::int]
                WHEN p.r_status < 0.95 THEN 'closed' ELSE 'rejected' END AS status,
           now() - p.r_time * CASE WHEN p.is_open THEN interval '45 days'
                                   ELSE interval '365 days' END AS created_at
    FROM picks p
    JOIN points pt ON pt.n = p.n
    JOIN mg ON mg.k = p.mg_k
    JOIN cats ON cats.k = p.cat_k
)
INSERT INTO incident (
    client_id, reporter_id, content_hash, source, category_id, priority, description, status,
    resolved_on_site, occurred_at, location, input_lon, input_lat, input_crs, accuracy_m,
    routing_method, routing_distance_m, routing_candidates,
    microgrid_id, grid_id, community_id, town_id, district_id,
    original_microgrid_id, original_grid_id, original_town_id, original_routing_method,
    handling_level, resolved_level, accepted_at, resolved_at, closed_at,
    deadline, handle_deadline, created_at, updated_at
)
SELECT 'bench-' || n, %(reporter)s, md5('bench-' || n), 'bench', category_id, default_priority,
       'bench incident', status,
       false, created_at - interval '10 minutes', geom, ST_X(geom), ST_Y(geom), 'wgs84', 10,
       'covered', 0, 1,
       microgrid_id, grid_id, community_id, town_id, district_id,
       microgrid_id, grid_id, town_id, 'covered',
       'grid',
       CASE WHEN status = 'closed' THEN 'grid' END,
       CASE WHEN status NOT IN ('reported', 'rejected') THEN created_at + interval '30 minutes' END,
       CASE WHEN status IN ('resolved', 'verified', 'closed')
            THEN created_at + (1 + r_clock * 72) * interval '1 hour' END,
       CASE WHEN status = 'closed' THEN created_at + (5 + r_clock * 72) * interval '1 hour' END,
       CASE WHEN is_open THEN greatest(created_at + interval '1 hour',
                                       now() + (r_clock - 0.2) * interval '5 days') END,
       CASE WHEN status NOT IN ('reported', 'rejected') THEN created_at + interval '2 days' END,
       created_at,
       created_at
FROM rows
"""


def log(msg: str) -> None:
    """Progress line on stderr."""
    print(f"[seed] {msg}", file=sys.stderr, flush=True)


def _libpq_url(db) -> str:
    url = db if isinstance(db, str) else db.libpq_url
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql://" + url[len(prefix) :]
    return url


def _reporter_id(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT id FROM app_user WHERE username = %s", (REPORTER,)).fetchone()
    if row:
        return row[0]
    return conn.execute(
        "INSERT INTO app_user (username, display_name, password_hash, role)"
        " VALUES (%s, 'benchmark reporter', '!', 'worker') RETURNING id",
        (REPORTER,),
    ).fetchone()[0]


def ensure_incidents(
    db, total: int = 1_000_000, open_share: float = 0.10, seed: int = 2024, batch: int = 100_000
) -> int:
    """Top the benchmark incidents (source 'bench') up to `total`; return how many there are."""
    if not (0 <= open_share <= 1 and total >= 0 and batch > 0):
        raise ValueError("open_share in [0, 1], total >= 0 and batch > 0")
    with psycopg.connect(_libpq_url(db), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            have = conn.execute(
                "SELECT count(*) FROM incident WHERE source = %s", (SOURCE,)
            ).fetchone()[0]
            if have >= total:
                log(f"{have:,} benchmark incidents already there (wanted {total:,}): skipped")
                return have
            if not conn.execute("SELECT 1 FROM area WHERE level = 'microgrid' LIMIT 1").fetchone():
                raise SystemExit("seed: no micro-grids; load the demo district first")
            reporter = _reporter_id(conn)
            log(f"{have:,} there; inserting {total - have:,} in batches of {batch:,}")
            started = time.monotonic()
            # Row numbers go on after the highest one there (client_id bench-<n> stays unique).
            lo = (
                1
                + conn.execute(
                    "SELECT coalesce(max(substr(client_id, 7)::bigint), 0) FROM incident"
                    " WHERE source = %s",
                    (SOURCE,),
                ).fetchone()[0]
            )
            first, last = lo, lo + (total - have) - 1
            while lo <= last:
                hi = min(last, lo + batch - 1)
                t0 = time.monotonic()
                with conn.transaction():
                    conn.execute("SELECT setseed(%s)", (((seed * 7919 + lo) % 1999) / 1000 - 1,))
                    conn.execute(
                        _INSERT,
                        {
                            "lo": lo,
                            "hi": hi,
                            "seed": seed,
                            "open_share": open_share,
                            "reporter": reporter,
                        },
                    )
                now = time.monotonic()
                log(
                    f"{have + hi - first + 1:,}/{total:,} ({hi - lo + 1:,} rows in"
                    f" {now - t0:.1f} s, {now - started:.0f} s so far)"
                )
                lo = hi + 1
            log("VACUUM ANALYZE incident")
            conn.execute("VACUUM ANALYZE incident")
            log(f"done in {time.monotonic() - started:.0f} s")
            return total
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def main(argv=None) -> int:
    """Command line: set up gridgov_bench as bench/harness.py provides it, then seed."""
    from bench.harness import MIN_MICROGRIDS, flask_cli, provide_database, read_facts

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--open-share", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--instance",
        type=Path,
        default=Path(os.environ.get("GRIDGOV_INSTANCE_DIR", PROJECT_ROOT / "instance")),
    )
    args = parser.parse_args(argv)
    db = provide_database(args.instance)
    try:
        flask_cli(db, "db", "upgrade")
        flask_cli(db, "demo", "load", "--size", "district", "--if-empty")
        if read_facts(db).area_counts["microgrid"] < MIN_MICROGRIDS:
            raise SystemExit("seed: gridgov_bench holds the small demo; drop it and run again")
        ensure_incidents(db, total=args.total, open_share=args.open_share, seed=args.seed)
    finally:
        if db.cluster is not None and db.started_cluster:
            db.cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
