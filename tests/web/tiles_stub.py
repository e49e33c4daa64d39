"""A stand-in for GET /tiles/{layer}/{z}/{x}/{y}.mvt while the real endpoint is being written.

The browser tests register it on their live server only when the app has no tiles route of
its own, so the page's tiles mode (transformRequest with the Bearer token, source layers named
after the URL's layer, incident properties id/status/overdue/category, aggregated features with
count/overdue_count at low zoom) is exercised either way. It does not scope by user.
"""

from flask import Blueprint, Response, abort
from sqlalchemy import text

from gridgov.extensions import db

MVT_MIMETYPE = "application/vnd.mapbox-vector-tile"
AGGREGATE_BELOW_ZOOM = 12
_AREA_LEVELS = {"grids": "grid", "microgrids": "microgrid"}

_AREAS_SQL = text(
    """
    WITH bounds AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
    features AS (
        SELECT a.code, a.name,
               ST_AsMVTGeom(ST_Transform(a.boundary, 3857), bounds.env, 4096, 64, true) AS geom
        FROM area a, bounds
        WHERE a.level = :level AND a.retired_at IS NULL
          AND a.boundary && ST_Transform(bounds.env, 4326)
    )
    SELECT ST_AsMVT(features, :layer, 4096, 'geom') FROM features WHERE geom IS NOT NULL
    """
)

_INCIDENTS_SQL = text(
    """
    WITH bounds AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
    features AS (
        SELECT i.id, i.status, c.code AS category,
               (i.status NOT IN ('rejected', 'duplicate', 'closed')
                AND i.deadline IS NOT NULL AND i.deadline < now()) AS overdue,
               ST_AsMVTGeom(ST_Transform(i.location, 3857), bounds.env, 4096, 64, true) AS geom
        FROM incident i JOIN category c ON c.id = i.category_id, bounds
        WHERE i.location && ST_Transform(bounds.env, 4326)
    )
    SELECT ST_AsMVT(features, 'incidents', 4096, 'geom') FROM features WHERE geom IS NOT NULL
    """
)

_AGGREGATES_SQL = text(
    """
    WITH bounds AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
    points AS (
        SELECT ST_Transform(i.location, 3857) AS g,
               (i.status NOT IN ('rejected', 'duplicate', 'closed')
                AND i.deadline IS NOT NULL AND i.deadline < now()) AS overdue
        FROM incident i, bounds
        WHERE i.location && ST_Transform(bounds.env, 4326)
          AND i.status NOT IN ('rejected', 'duplicate', 'closed')
    ),
    cells AS (
        SELECT count(*)::int AS count, (count(*) FILTER (WHERE overdue))::int AS overdue_count,
               ST_Centroid(ST_Collect(g)) AS g
        FROM points, bounds
        GROUP BY ST_SnapToGrid(g, (ST_XMax(bounds.env) - ST_XMin(bounds.env)) / 8)
    ),
    features AS (
        SELECT count, overdue_count, ST_AsMVTGeom(g, bounds.env, 4096, 64, true) AS geom
        FROM cells, bounds
    )
    SELECT ST_AsMVT(features, 'incidents', 4096, 'geom') FROM features WHERE geom IS NOT NULL
    """
)

blp = Blueprint("tiles_stub", __name__)


@blp.route("/tiles/<string:layer>/<int:z>/<int:x>/<int:y>.mvt")
def tile(layer: str, z: int, x: int, y: int) -> Response:
    if not 0 <= z <= 22 or not (0 <= x < 2**z and 0 <= y < 2**z):
        abort(404)
    params = {"z": z, "x": x, "y": y}
    if layer in _AREA_LEVELS:
        sql, params = _AREAS_SQL, {**params, "level": _AREA_LEVELS[layer], "layer": layer}
    elif layer == "incidents":
        sql = _AGGREGATES_SQL if z < AGGREGATE_BELOW_ZOOM else _INCIDENTS_SQL
    else:
        abort(404)
    data = db.session.execute(sql, params).scalar() or b""
    return Response(bytes(data), mimetype=MVT_MIMETYPE)
