"""Vector tiles of the supervisor map: GET /tiles/{layer}/{z}/{x}/{y}.mvt.

Layers `grids` (from z11), `microgrids` (from z13) and `incidents` (from z8: per town below
z12, per grid at z12-13, single open incidents from z14), scoped to the caller; the SQL is in
gridgov.services.tiles.

HTTP:
- 200 `application/vnd.mapbox-vector-tile` with the tile; an empty tile is **204 No Content**
  (MapLibre draws nothing for it) with `X-Tile-Empty: below_min_zoom | outside_district |
  no_features`; the first two are answered without a query touching geometry.
- `ETag` on every answer and `If-None-Match` → 304. Area layers carry a weak version key (the
  newest boundary change set, the caller's scope, the tile), so a 304 costs no tile query;
  incident tiles carry a hash of their bytes (they change with every report and with the
  clock: overdue), so the tile is made and only the transfer is saved.
- `Cache-Control: private` (tiles are per user), `Vary: Authorization`; short for incidents.
- Query filters `status` (comma list), `category` (comma list of codes), `overdue=true|false` apply
  to incidents only; the area layers ignore them, so one query string may serve all sources.
- Unknown layer → 404 `layer_not_found`; z > 22 or x/y outside 0..2^z-1 → 404 `tile_not_found`;
  a bad filter → 422 `validation_failed`.

The query schema lives here, next to its only endpoint.
"""

from flask import Response, request
from marshmallow import Schema, fields, validate

from gridgov.api.input import Blueprint
from gridgov.api.security import current_user
from gridgov.extensions import db
from gridgov.models import STATUSES
from gridgov.schemas.incidents import CommaList
from gridgov.services import tiles as tile_service

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
AREA_MAX_AGE_SECONDS, INCIDENT_MAX_AGE_SECONDS = 600, 10
_BINARY = {"type": "string", "format": "binary"}
_CATEGORY_CODE = validate.Regexp(r"^[A-Za-z0-9_.-]{1,40}$")

blp = Blueprint(
    "tiles",
    __name__,
    url_prefix="/tiles",
    description="Mapbox Vector Tiles of grids, micro-grids and incidents, scoped to the caller.",
)


class CategoryList(CommaList):
    """Comma-separated category codes (letters, digits, `_`, `-`, `.`)."""

    def _deserialize(self, value, attr, data, **kwargs):
        items = super()._deserialize(value, attr, data, **kwargs)
        for item in items:
            _CATEGORY_CODE(item)
        return items


class TileQuerySchema(Schema):
    status = CommaList(
        STATUSES,
        metadata={
            "description": "Comma-separated statuses (incidents; default: the open ones).",
            "type": "string",
        },
    )
    category = CategoryList(
        metadata={"description": "Comma-separated category codes.", "type": "string"}
    )
    overdue = fields.Boolean(
        metadata={"description": "`true`: only overdue incidents; `false`: none overdue."}
    )


@blp.route("/<string:layer>/<int:z>/<int:x>/<int:y>.mvt")
@blp.arguments(TileQuerySchema, location="query")
@blp.response(200, content_type=MVT_MEDIA_TYPE)
@blp.doc(
    responses={
        "200": {
            "description": "The tile: layer `grids`/`microgrids` (code, name) or `incidents`"
            " (points: id, status, overdue, category, category_name, priority; aggregates per"
            " grid or town: code, name, level, count, overdue_count).",
            "content": {MVT_MEDIA_TYPE: {"schema": _BINARY}},
        }
    }
)
@blp.alt_response(204, description="An empty tile (`X-Tile-Empty` says why).")
@blp.alt_response(304, description="Not modified (`If-None-Match` matched the ETag).")
@blp.alt_response(404, description="`layer_not_found` or `tile_not_found`.")
def get_tile(args, layer, z, x, y):
    """One vector tile of `layer`, holding only what the caller may see."""
    filters = tile_service.TileFilters(
        statuses=args.get("status", ()),
        categories=args.get("category", ()),
        overdue=args.get("overdue"),
    )
    prepared = tile_service.prepare_tile(
        db.session, user=current_user(), layer=layer, z=z, x=x, y=y, filters=filters
    )
    area_layer = tile_service.LAYERS[layer].area_level is not None
    max_age = AREA_MAX_AGE_SECONDS if area_layer else INCIDENT_MAX_AGE_SECONDS
    headers = {
        "Cache-Control": f"private, max-age={max_age}",
        "Vary": "Authorization",
    }
    if prepared.etag is not None:  # known without making the tile
        etag, weak = prepared.etag, True
        if request.if_none_match.contains_weak(etag):
            return _answer(304, b"", etag, weak, headers)
    if prepared.empty_reason is not None:
        return _answer(204, b"", etag, weak, {**headers, "X-Tile-Empty": prepared.empty_reason})
    data = tile_service.render_tile(db.session, prepared=prepared)
    if prepared.etag is None:
        etag, weak = tile_service.content_etag(data), False
        if request.if_none_match.contains_weak(etag):
            return _answer(304, b"", etag, weak, headers)
    if not data:
        return _answer(204, b"", etag, weak, {**headers, "X-Tile-Empty": "no_features"})
    return _answer(200, data, etag, weak, headers)


def _answer(status: int, data: bytes, etag: str, weak: bool, headers: dict) -> Response:
    response = Response(data, status=status, mimetype=MVT_MEDIA_TYPE)
    response.set_etag(etag, weak=weak)
    response.headers.update(headers)
    return response
