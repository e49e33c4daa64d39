"""Routing: which area at every level of geo.levels (micro-grid … district) a WGS-84 point is in.

Spatial rules (DESIGN.md §3), each written once below as SQL generated from the level registry
(`covered_sql`, `chain_sql`, and the nearest branch of ROUTE_SQL) and used by the lookup
(GET /route), intake (POST /incidents) and the re-routing of open cases after a boundary change
(gridgov.services.boundaries):
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
- The finest level is the registry's leaf: a new level under the micro-grid is routed to with
  no change here.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any, Protocol

from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

from geo.levels import LEVELS

# Candidates taken by the bounding-box KNN operator before ranking by true metric distance:
# <-> orders by planar degrees, which can misorder near-equal candidates at this latitude.
NEAREST_CANDIDATES = 5
# The routed levels, finest first, as the statements below return them.
ROUTE_LEVELS = tuple(level.name for level in LEVELS.upward)

# The point is written out in each branch rather than taken from a CTE: with `<-> pt.g` the
# planner cannot use the GiST index for the nearest-neighbour ORDER BY and sorts every
# micro-grid (16 ms instead of 1-2 ms for a point outside the district).
POINT_PARAMS = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
_CURRENT_LEAF = f"a.level = '{LEVELS.leaf.name}' AND a.retired_at IS NULL"
# The map as it was at :at: boundaries from the revisions valid then.
_REVISIONS_AT = (
    "area_revision r JOIN area a ON a.id = r.area_id",
    f"a.level = '{LEVELS.leaf.name}' AND r.valid_from <= :at"
    " AND (r.valid_to IS NULL OR r.valid_to > :at)",
    "r.boundary",
)


def covered_sql(point: str, *, at: bool = False) -> str:
    """SQL of the covered rule: (id, candidates) of the lowest-code finest area covering `point`.

    `point` is an SQL expression (the request's parameters, or an incident's location);
    `candidates` counts every area covering it (2+ on a shared edge). With `at`, the map of the
    revisions valid at `:at` (an area retired since still counts), else the current map.
    """
    source, condition, boundary = _REVISIONS_AT if at else ("area a", _CURRENT_LEAF, "a.boundary")
    # count(*) OVER () is computed before the LIMIT: every covering area is counted.
    return (
        f"SELECT a.id, count(*) OVER ()::int AS candidates FROM {source}"
        f" WHERE {condition} AND ST_Covers({boundary}, {point}) ORDER BY a.code LIMIT 1"
    )


def chain_sql(leaf_id: str, *, columns: Sequence[str] = ("id", "code", "name")) -> tuple[str, str]:
    """(select list, joins) of the parent chain of the finest area whose id is `leaf_id`.

    The joins follow the parent foreign keys from `l0` (the finest area) up to the root (codes
    extend their parent's, so this is also the code-prefix chain); the select list gives the
    `columns` of each level's area, finest first.
    """
    aliases = [f"l{i}" for i in range(len(LEVELS))]
    selected = ", ".join(f"{alias}.{column}" for alias in aliases for column in columns)
    joins = [f"JOIN area l0 ON l0.id = {leaf_id}"] + [
        f"JOIN area {alias} ON {alias}.id = {child}.parent_id" for child, alias in pairwise(aliases)
    ]
    return selected, " ".join(joins)


_CHAIN_SELECT, _CHAIN_JOINS = chain_sql("chosen.id")
# The lookup of GET /route and of intake: covered, else the nearest within :max_m.
ROUTE_SQL = text(
    f"""
WITH hit AS (
    SELECT id, 'covered'::text AS method, 0.0::float8 AS distance_m, candidates
    FROM ({covered_sql(POINT_PARAMS)}) covered
),
near AS (
    SELECT id, 'nearest'::text, distance_m, 0
    FROM (
        SELECT a.id, a.code,
               ST_Distance(a.boundary::geography, {POINT_PARAMS}::geography) AS distance_m
        FROM area a
        WHERE {_CURRENT_LEAF}
        ORDER BY a.boundary <-> {POINT_PARAMS}
        LIMIT :candidates
    ) knn
    WHERE NOT EXISTS (SELECT 1 FROM hit) AND distance_m <= :max_m
    ORDER BY distance_m, code
    LIMIT 1
),
chosen AS (SELECT * FROM hit UNION ALL SELECT * FROM near)
SELECT chosen.method, chosen.distance_m, chosen.candidates, {_CHAIN_SELECT}
FROM chosen {_CHAIN_JOINS}
"""
)
_AT_SELECT, _AT_JOINS = chain_sql("hit.id")
# The same covered rule on the map as it was at a past instant (no nearest fallback).
ROUTE_AT_SQL = text(
    f"SELECT hit.candidates, {_AT_SELECT}"
    f" FROM ({covered_sql(POINT_PARAMS, at=True)}) hit {_AT_JOINS}"
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
    # The routed area at each level of geo.levels (None: not routed that far).
    areas: dict[str, AreaRef | None] = field(default_factory=lambda: dict.fromkeys(ROUTE_LEVELS))

    def area(self, level: str) -> AreaRef | None:
        """The routed area at `level`, or None."""
        return self.areas.get(level)

    def area_id(self, level: str) -> int | None:
        """Id of the routed area at `level`, or None when unrouted."""
        area = self.areas.get(level)
        return area.id if area else None


def _chain_areas(ids_codes_names) -> dict[str, AreaRef]:
    """The parent chain as a chain_sql select list returned it: (id, code, name) finest first."""
    return {
        level: AreaRef(*ids_codes_names[i * 3 : i * 3 + 3]) for i, level in enumerate(ROUTE_LEVELS)
    }


def route_point(session: Executor, *, lon: float, lat: float, max_nearest_m: float) -> Routing:
    """Route a WGS-84 point to its finest area and parents (covered, nearest or unrouted).

    `session` is the request's Session (intake routes inside its transaction) or a lookup
    connection (GET /route); both give rows as tuples through fetchone().
    """
    row = session.execute(
        ROUTE_SQL,
        {"lon": lon, "lat": lat, "max_m": max_nearest_m, "candidates": NEAREST_CANDIDATES},
    ).fetchone()
    if row is None:
        district = _queue_district(session)
        return Routing(
            lon=lon,
            lat=lat,
            method="unrouted",
            distance_m=0.0,
            candidates=0,
            areas={**dict.fromkeys(ROUTE_LEVELS), LEVELS.root.name: district},
        )
    method, distance_m, candidates, *ids_codes_names = row
    return Routing(
        lon=lon,
        lat=lat,
        method=method,
        distance_m=round(distance_m, 2),
        candidates=candidates,
        areas=_chain_areas(ids_codes_names),
    )


def routing_columns(routing: Routing) -> dict:
    """The incident columns that record a routing (its current one)."""
    columns = {level.column: routing.area_id(level.name) for level in LEVELS}
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
    f"SELECT id, code, name FROM area WHERE level = '{LEVELS.root.name}' AND retired_at IS NULL"
    " ORDER BY code LIMIT 1"
)


def _queue_district(session: Executor) -> AreaRef | None:
    row = session.execute(_QUEUE_DISTRICT_SQL, {}).fetchone()
    return AreaRef(*row) if row else None


def route_point_at(session: Session, *, lon: float, lat: float, at: datetime) -> Routing:
    """Route a WGS-84 point on the map as it was at `at` (covered or unrouted, no fallback)."""
    row = session.execute(ROUTE_AT_SQL, {"lon": lon, "lat": lat, "at": at}).first()
    if row is None:
        return Routing(lon=lon, lat=lat, method="unrouted", distance_m=0.0, candidates=0)
    candidates, *ids_codes_names = row
    return Routing(
        lon=lon,
        lat=lat,
        method="covered",
        distance_m=0.0,
        candidates=candidates,
        areas=_chain_areas(ids_codes_names),
    )
