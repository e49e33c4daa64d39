"""Routing: which micro-grid, grid, community, town and district a WGS-84 point belongs to.

Spatial rules (DESIGN.md §3):
- Lookup is ST_Covers on the finest level (micro-grids), so a point exactly on an edge matches;
  ST_Contains would miss it.
- A point on a shared edge or vertex is covered by several micro-grids: the LOWEST CODE wins,
  deterministically, and `candidates` reports how many there were.
- A point covered by no micro-grid (GPS drift at the district edge, the enclave, a river) goes
  to the nearest micro-grid within `max_nearest_m` metres, measured on the spheroid
  (geography), marked `nearest` with its distance; beyond that it stays `unrouted`, in the
  district's queue (district set, every lower level empty). A report is never refused for
  its location.
- The parent chain comes from foreign keys, not from more spatial queries.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

# Candidates taken by the bounding-box KNN operator before ranking by true metric distance:
# <-> orders by planar degrees, which can misorder near-equal candidates at this latitude.
NEAREST_CANDIDATES = 5
ROUTE_LEVELS = ("microgrid", "grid", "community", "town", "district")

# The point is written out in each branch rather than taken from a CTE: with `<-> pt.g` the
# planner cannot use the GiST index for the nearest-neighbour ORDER BY and sorts every
# micro-grid (16 ms instead of 1-2 ms for a point outside the district).
_POINT = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
_ROUTE_SQL = text(
    f"""
WITH covering AS (
    SELECT a.id, a.code
    FROM area a
    WHERE a.level = 'microgrid' AND a.retired_at IS NULL AND ST_Covers(a.boundary, {_POINT})
),
hit AS (
    SELECT id, 'covered'::text AS method, 0.0::float8 AS distance_m,
           (SELECT count(*) FROM covering)::int AS candidates
    FROM covering ORDER BY code LIMIT 1
),
near AS (
    SELECT id, 'nearest'::text, distance_m, 0
    FROM (
        SELECT a.id, a.code,
               ST_Distance(a.boundary::geography, {_POINT}::geography) AS distance_m
        FROM area a
        WHERE a.level = 'microgrid' AND a.retired_at IS NULL
        ORDER BY a.boundary <-> {_POINT}
        LIMIT :candidates
    ) knn
    WHERE NOT EXISTS (SELECT 1 FROM hit) AND distance_m <= :max_m
    ORDER BY distance_m, code
    LIMIT 1
),
chosen AS (SELECT * FROM hit UNION ALL SELECT * FROM near)
SELECT chosen.method, chosen.distance_m, chosen.candidates,
       m.id, m.code, m.name, g.id, g.code, g.name, c.id, c.code, c.name,
       t.id, t.code, t.name, d.id, d.code, d.name
FROM chosen
JOIN area m ON m.id = chosen.id
JOIN area g ON g.id = m.parent_id
JOIN area c ON c.id = g.parent_id
JOIN area t ON t.id = c.parent_id
JOIN area d ON d.id = t.parent_id
"""
)


class Executor(Protocol):
    """What runs the routing statement: the Session, or a lookup connection (gridgov.lookups)."""

    def execute(self, statement: TextClause, params: dict[str, Any], /) -> Any:
        """Run `statement`; the result gives rows as tuples through fetchone()."""


@dataclass(frozen=True)
class AreaRef:
    id: int
    code: str
    name: str


@dataclass(frozen=True)
class Routing:
    lon: float
    lat: float
    method: str
    distance_m: float
    candidates: int
    microgrid: AreaRef | None = None
    grid: AreaRef | None = None
    community: AreaRef | None = None
    town: AreaRef | None = None
    district: AreaRef | None = None

    def area_id(self, level: str) -> int | None:
        """Id of the routed area at `level`, or None when unrouted."""
        area = getattr(self, level)
        return area.id if area else None


def route_point(session: Executor, *, lon: float, lat: float, max_nearest_m: float) -> Routing:
    """Route a WGS-84 point to its micro-grid and parents (covered, nearest or unrouted).

    `session` is the request's Session (intake routes inside its transaction) or a lookup
    connection (GET /route); both give rows as tuples through fetchone().
    """
    row = session.execute(
        _ROUTE_SQL,
        {"lon": lon, "lat": lat, "max_m": max_nearest_m, "candidates": NEAREST_CANDIDATES},
    ).fetchone()
    if row is None:
        district = _queue_district(session)
        return Routing(
            lon=lon, lat=lat, method="unrouted", distance_m=0.0, candidates=0, district=district
        )
    method, distance_m, candidates, *ids_codes_names = row
    areas = {
        level: AreaRef(*ids_codes_names[i * 3 : i * 3 + 3]) for i, level in enumerate(ROUTE_LEVELS)
    }
    return Routing(
        lon=lon,
        lat=lat,
        method=method,
        distance_m=round(distance_m, 2),
        candidates=candidates,
        **areas,
    )


def routing_columns(routing: Routing) -> dict:
    """The incident columns that record a routing (its current one)."""
    columns = {f"{level}_id": routing.area_id(level) for level in ROUTE_LEVELS}
    columns.update(
        routing_method=routing.method,
        routing_distance_m=routing.distance_m,
        routing_candidates=routing.candidates,
    )
    return columns


def original_routing_columns(routing: Routing) -> dict:
    """The incident columns that keep the routing a report first got."""
    return {
        "original_microgrid_id": routing.area_id("microgrid"),
        "original_grid_id": routing.area_id("grid"),
        "original_town_id": routing.area_id("town"),
        "original_routing_method": routing.method,
    }


# An unrouted report waits in the district's queue; the tree has one district root.
_QUEUE_DISTRICT_SQL = text(
    "SELECT id, code, name FROM area WHERE level = 'district' AND retired_at IS NULL"
    " ORDER BY code LIMIT 1"
)


def _queue_district(session: Executor) -> AreaRef | None:
    row = session.execute(_QUEUE_DISTRICT_SQL, {}).fetchone()
    return AreaRef(*row) if row else None


# The same lookup on the map as it was at a past instant: boundaries from the revisions valid
# then. Codes never change nor get reused, so the parent chain follows the code prefixes.
_ROUTE_AT_SQL = text(
    """
WITH pt AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g),
covering AS (
    SELECT a.id, a.code
    FROM area_revision r JOIN area a ON a.id = r.area_id, pt
    WHERE a.level = 'microgrid' AND r.valid_from <= :at
      AND (r.valid_to IS NULL OR r.valid_to > :at) AND ST_Covers(r.boundary, pt.g)
)
SELECT (SELECT count(*) FROM covering)::int, m.id, m.code, m.name, g.id, g.code, g.name,
       c.id, c.code, c.name, t.id, t.code, t.name, d.id, d.code, d.name
FROM (SELECT * FROM covering ORDER BY code LIMIT 1) hit
JOIN area m ON m.id = hit.id
JOIN area g ON g.code = left(m.code, 15)
JOIN area c ON c.code = left(m.code, 12)
JOIN area t ON t.code = left(m.code, 9)
JOIN area d ON d.code = left(m.code, 6)
"""
)


def route_point_at(session: Session, *, lon: float, lat: float, at: datetime) -> Routing:
    """Route a WGS-84 point on the map as it was at `at` (covered or unrouted, no fallback)."""
    row = session.execute(_ROUTE_AT_SQL, {"lon": lon, "lat": lat, "at": at}).first()
    if row is None:
        return Routing(lon=lon, lat=lat, method="unrouted", distance_m=0.0, candidates=0)
    candidates, *ids_codes_names = row
    areas = {
        level: AreaRef(*ids_codes_names[i * 3 : i * 3 + 3]) for i, level in enumerate(ROUTE_LEVELS)
    }
    return Routing(
        lon=lon, lat=lat, method="covered", distance_m=0.0, candidates=candidates, **areas
    )
