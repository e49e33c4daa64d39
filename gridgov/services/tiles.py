"""Vector tiles (Mapbox Vector Tile) of the supervisor map: grids, micro-grids and incidents.

Every tile is ONE SQL statement (ST_TileEnvelope → ST_AsMVTGeom → ST_AsMVT); the statement
text and its parameters are built here (`prepare_tile`) and run through the driver as they are
(`render_tile`), so bench/tiles.py runs the very same text through psycopg.

Geometry:
- Index lookup in WGS-84: `geom && ST_Transform(ST_TileEnvelope(z, x, y), 4326)` uses the GiST
  index on the stored column; only the rows found are transformed to EPSG:3857. A Web Mercator
  rectangle is a lon/lat rectangle, so the lookup box is exact (no false misses).
- Area outlines are simplified (ST_SimplifyPreserveTopology, about one screen pixel of a
  512 px tile at that zoom, in EPSG:3857 metres), then clipped and quantised by ST_AsMVTGeom
  (EXTENT units a tile, a BUFFER so outlines join across tile edges; it repairs polygons made
  invalid by quantisation).
- Incidents: from POINT_MIN_ZOOM on, one point per incident; below it one point per grid
  (GRID_AGGREGATE_MIN_ZOOM and up) or per town, at ST_PointOnSurface of the area, carrying
  `count` and `overdue_count`. Counts go by the routing columns (incident.grid_id/town_id),
  not by location, so a grid's count is whole even when the grid spans several tiles; each
  area is placed in the one tile that holds its label point (half-open bounds: west and north
  edges in, east and south edges out), so no count is drawn twice. Points are likewise drawn
  in exactly one tile.

Scope:
- incidents: `gridgov.services.scope.incident_scope` (the one rule), compiled into the text.
- areas: admin all; a supervisor the areas whose code starts with an assigned area's code
  (the subtree); a worker that too, plus the ancestors of an assigned area (the grid of an
  assigned micro-grid).

Which incidents: open ones (`incident_queries.open_condition`) unless `statuses` says
otherwise; `categories` (codes) and `overdue` narrow further. `overdue` is
`incident_queries.overdue_condition` at the request's time.

Empty tiles are answered without a query touching geometry below a layer's minimum zoom and
outside the district's bounding box (plus OUTSIDE_MARGIN_DEG). Unrouted reports far outside the
district are therefore not drawn on tiles; they wait in the district queue (the list API).
"""

import hashlib
import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from geo.levels import LEVELS
from gridgov.errors import NotFound
from gridgov.models import STATUSES, TERMINAL_STATUSES, User
from gridgov.services.incident_queries import open_condition, overdue_condition
from gridgov.services.scope import assigned_area_ids_by_level, incident_scope

MAX_ZOOM = 22
EXTENT = 4096  # MVT units per tile side
BUFFER = 64  # units drawn past the tile edge (outlines join across tiles)
POINT_MIN_ZOOM = 14  # individual incidents from here on
GRID_AGGREGATE_MIN_ZOOM = 12  # below POINT_MIN_ZOOM: per grid from here, per town below
SIMPLIFY_PIXELS = 1.0  # tolerance in pixels of a 512 px tile
OUTSIDE_MARGIN_DEG = 0.02  # about 2 km: the district's bbox grown by this before "outside"
# Bump when the SQL's output changes shape: area ETags are version keys, not content hashes.
TILE_FORMAT_VERSION = 1
WEB_MERCATOR_WIDTH = 2 * 20037508.342789244  # EPSG:3857 metres
OPEN_STATUSES = tuple(s for s in STATUSES if s not in TERMINAL_STATUSES)


@dataclass(frozen=True)
class Layer:
    name: str
    min_zoom: int
    area_level: str | None = None  # set for the area layers


# An outline layer for every level of geo.levels that names one, then the incidents.
LAYERS = {
    **{
        level.tile_layer: Layer(level.tile_layer, level.tile_min_zoom, level.name)
        for level in LEVELS
        if level.tile_layer
    },
    "incidents": Layer("incidents", 8),
}


@dataclass(frozen=True)
class TileFilters:
    statuses: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    overdue: bool | None = None  # True: only overdue ones; False: only those not overdue


@dataclass(frozen=True)
class PreparedTile:
    """What a tile needs: the statement (None when empty without one) and what is known first."""

    layer: str
    z: int
    x: int
    y: int
    kind: str  # polygons, points, grid, town, or empty
    sql: str | None = None
    params: dict = field(default_factory=dict)
    etag: str | None = None  # a version key known before rendering (area layers, empties)
    empty_reason: str | None = None  # below_min_zoom, outside_district


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a tile in WGS-84 degrees."""
    n = 2**z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)


def check_tile(layer: str, z: int, x: int, y: int) -> Layer:
    """The layer of a tile address; NotFound for an unknown layer or an impossible tile."""
    spec = LAYERS.get(layer)
    if spec is None:
        raise NotFound(
            f"No tile layer {layer!r}; the layers are {', '.join(LAYERS)}.",
            code="layer_not_found",
            details={"layers": list(LAYERS)},
        )
    if not (0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z):
        raise NotFound(
            f"No tile {z}/{x}/{y}: z must be 0-{MAX_ZOOM} and x, y 0 to 2^z - 1.",
            code="tile_not_found",
        )
    return spec


# --------------------------------------------------------------------------- district bounds

_bounds_lock = threading.Lock()
_bounds_cache: dict[tuple[str, int], tuple[float, float, float, float] | None] = {}


def boundary_version(session: Session) -> int:
    """The map's version: the newest boundary change set (every area write makes one)."""
    return session.execute(text("SELECT coalesce(max(id), 0) FROM boundary_changeset")).scalar()


def district_bounds(session: Session, *, version: int) -> tuple[float, float, float, float] | None:
    """Bounding box of the current district(s) in degrees, cached per database and version."""
    key = (session.get_bind().engine.url.render_as_string(hide_password=True), version)
    with _bounds_lock:
        if key in _bounds_cache:
            return _bounds_cache[key]
    row = session.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM ("
            " SELECT ST_Extent(boundary) AS e FROM area"
            f" WHERE level = '{LEVELS.root.name}' AND retired_at IS NULL) s"
        )
    ).one()
    bounds = None if row[0] is None else tuple(float(v) for v in row)
    with _bounds_lock:
        if len(_bounds_cache) > 16:
            _bounds_cache.clear()
        _bounds_cache[key] = bounds
    return bounds


def _outside(tile: tuple[float, float, float, float], bounds) -> bool:
    if bounds is None:
        return True
    west, south, east, north = tile
    m = OUTSIDE_MARGIN_DEG
    return (
        east < bounds[0] - m
        or west > bounds[2] + m
        or north < bounds[1] - m
        or south > bounds[3] + m
    )


# --------------------------------------------------------------------------- SQL

# The tile in EPSG:3857 (for ST_AsMVTGeom) and its lookup box in WGS-84 (for the GiST index).
# Written out where used rather than in a CTE: both functions are immutable, so the planner
# folds them into constants and estimates the spatial selectivity from the column statistics.
_ENVELOPE = "ST_TileEnvelope(%(z)s, %(x)s, %(y)s)"
_LOOKUP = "ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326)"


def _in_tile(geometry: str) -> str:
    """SQL: a point in the tile itself, half-open, so each point lands in exactly one tile."""
    return (
        f"{geometry} && {_LOOKUP} AND ST_X({geometry}) < ST_XMax({_LOOKUP})"
        f" AND ST_Y({geometry}) > ST_YMin({_LOOKUP})"
    )


AREA_TILE_SQL = f"""
WITH features AS (
    SELECT a.code, a.name,
           ST_AsMVTGeom(
               ST_SimplifyPreserveTopology(ST_Transform(a.boundary, 3857), %(tolerance)s),
               {_ENVELOPE}, {EXTENT}, {BUFFER}, true) AS geom
    FROM area a
    WHERE a.level = '{{level}}' AND a.retired_at IS NULL
      AND a.boundary && {_LOOKUP}
      AND {{scope}}
    ORDER BY a.code
)
SELECT ST_AsMVT(features, '{{layer}}', {EXTENT}, 'geom') FROM features WHERE geom IS NOT NULL
"""

INCIDENT_POINT_TILE_SQL = f"""
WITH features AS (
    SELECT incident.id AS fid, incident.id, incident.status,
           coalesce({{overdue}}, false) AS overdue,
           category.code AS category, category.name AS category_name, incident.priority,
           ST_AsMVTGeom(ST_Transform(incident.location, 3857), {_ENVELOPE},
                        {EXTENT}, {BUFFER}, true) AS geom
    FROM incident JOIN category ON category.id = incident.category_id
    WHERE {_in_tile("incident.location")}
      AND {{conditions}}
    ORDER BY incident.id
)
SELECT ST_AsMVT(features, 'incidents', {EXTENT}, 'geom', 'fid') FROM features
"""

# Materialized CTEs: the areas placed in the tile and their counts are computed once each.
INCIDENT_AGGREGATE_TILE_SQL = f"""
WITH placed AS MATERIALIZED (
    SELECT candidates.* FROM (
        SELECT a.id, a.code, a.name, ST_PointOnSurface(a.boundary) AS label
        FROM area a
        WHERE a.level = '{{level}}' AND a.retired_at IS NULL AND a.boundary && {_LOOKUP}
    ) candidates
    WHERE {_in_tile("candidates.label")}
),
counts AS MATERIALIZED (
    SELECT incident.{{level}}_id AS area_id, count(*) AS count,
           count(*) FILTER (WHERE {{overdue}}) AS overdue_count
    FROM incident
    WHERE incident.{{level}}_id = ANY(ARRAY(SELECT id FROM placed)) AND {{conditions}}
    GROUP BY incident.{{level}}_id
),
features AS (
    SELECT placed.code, placed.name, '{{level}}' AS level, counts.count, counts.overdue_count,
           ST_AsMVTGeom(ST_Transform(placed.label, 3857), {_ENVELOPE},
                        {EXTENT}, {BUFFER}, true) AS geom
    FROM placed JOIN counts ON counts.area_id = placed.id
    ORDER BY placed.code
)
SELECT ST_AsMVT(features, 'incidents', {EXTENT}, 'geom') FROM features
"""

_DIALECT = postgresql.dialect()


def sql_literal(condition: ColumnElement) -> str:
    """A SQLAlchemy condition as PostgreSQL text with its values inlined (pyformat-safe)."""
    compiled = condition.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True})
    # The statement runs with pyformat parameters: a literal % must be doubled.
    return str(compiled).replace("%", "%%")


def _tolerance(z: int) -> float:
    return WEB_MERCATOR_WIDTH / 2**z / 512 * SIMPLIFY_PIXELS


def _area_scope(session: Session, user: User) -> tuple[str, list[int], str]:
    """(SQL condition on `a`, assigned area ids, scope key for the ETag)."""
    if user.role == "admin":
        return "true", [], "admin"
    ids = sorted(
        area_id
        for ids in assigned_area_ids_by_level(session, user_id=user.id).values()
        for area_id in ids
    )
    key = f"{user.role}:{','.join(map(str, ids))}"
    if not ids:
        return "false", [], key
    match = "a.code LIKE s.code || '%%'"
    if user.role == "worker":  # and the grid (and above) of an assigned micro-grid
        match = f"({match} OR s.code LIKE a.code || '%%')"
    scope = f"EXISTS (SELECT 1 FROM area s WHERE s.id = ANY(%(assigned)s) AND {match})"
    return scope, ids, key


def _incident_conditions(session: Session, user: User, filters: TileFilters, now: datetime):
    """(SQL conditions on `incident`, the overdue expression, extra parameters)."""
    params: dict = {}
    parts = []
    open_sql = sql_literal(open_condition())
    if filters.statuses:
        parts.append("incident.status = ANY(%(statuses)s)")
        params["statuses"] = list(filters.statuses)
        if all(s in OPEN_STATUSES for s in filters.statuses):
            parts.append(open_sql)  # lets the planner use partial indexes on open cases
    else:
        parts.append(open_sql)
    if filters.categories:
        parts.append(
            "incident.category_id IN"
            " (SELECT c.id FROM category c WHERE c.code = ANY(%(categories)s))"
        )
        params["categories"] = list(filters.categories)
    overdue_sql = sql_literal(overdue_condition(now))
    if filters.overdue is True:
        parts.append(overdue_sql)
    elif filters.overdue is False:
        parts.append(f"NOT coalesce({overdue_sql}, false)")
    parts.append(f"({sql_literal(incident_scope(session, user=user))})")
    return " AND ".join(parts), overdue_sql, params


def _etag(*parts: object) -> str:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=12).hexdigest()


def content_etag(data: bytes) -> str:
    """The ETag of a rendered tile: a hash of its bytes."""
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def prepare_tile(
    session: Session,
    *,
    user: User,
    layer: str,
    z: int,
    x: int,
    y: int,
    filters: TileFilters | None = None,
    now: datetime | None = None,
) -> PreparedTile:
    """Check the tile address and build the one statement that draws it for `user`."""
    spec = check_tile(layer, z, x, y)
    base = {"layer": layer, "z": z, "x": x, "y": y}
    if z < spec.min_zoom:
        etag = _etag("empty", TILE_FORMAT_VERSION, layer, z)
        return PreparedTile(**base, kind="empty", etag=etag, empty_reason="below_min_zoom")
    version = boundary_version(session)
    if _outside(tile_bounds(z, x, y), district_bounds(session, version=version)):
        etag = _etag("outside", TILE_FORMAT_VERSION, layer, version)
        return PreparedTile(**base, kind="empty", etag=etag, empty_reason="outside_district")
    params: dict = {"z": z, "x": x, "y": y}
    if spec.area_level is not None:
        scope, assigned, scope_key = _area_scope(session, user)
        params.update(margin=BUFFER / EXTENT, tolerance=_tolerance(z))
        if assigned:
            params["assigned"] = assigned
        sql = AREA_TILE_SQL.format(level=spec.area_level, layer=layer, scope=scope)
        etag = _etag("area", TILE_FORMAT_VERSION, layer, z, x, y, version, scope_key)
        return PreparedTile(**base, kind="polygons", sql=sql, params=params, etag=etag)
    conditions, overdue_sql, extra = _incident_conditions(
        session, user, filters or TileFilters(), now or datetime.now(UTC)
    )
    params.update(margin=0.0, **extra)
    if z >= POINT_MIN_ZOOM:
        sql = INCIDENT_POINT_TILE_SQL.format(conditions=conditions, overdue=overdue_sql)
        return PreparedTile(**base, kind="points", sql=sql, params=params)
    level = "grid" if z >= GRID_AGGREGATE_MIN_ZOOM else "town"
    sql = INCIDENT_AGGREGATE_TILE_SQL.format(
        level=level, conditions=conditions, overdue=overdue_sql
    )
    return PreparedTile(**base, kind=level, sql=sql, params=params)


def render_tile(session: Session, *, prepared: PreparedTile) -> bytes:
    """Run a prepared tile's statement: the MVT bytes (empty when nothing is in the tile)."""
    if prepared.sql is None:
        return b""
    data = session.connection().exec_driver_sql(prepared.sql, prepared.params).scalar()
    return bytes(data) if data else b""
