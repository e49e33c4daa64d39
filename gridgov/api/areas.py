"""Area tree endpoints: /api/v1/areas."""

from flask import jsonify

from gridgov.api.geojson import feature, feature_collection, geojson_response, wants_geojson
from gridgov.api.input import Blueprint
from gridgov.api.paging import encode_cursor, page_limit, page_position
from gridgov.extensions import db
from gridgov.schemas.areas import (
    AreaDetailSchema,
    AreaListQuerySchema,
    AreaPageSchema,
    AreaSummarySchema,
    FormatQuerySchema,
)
from gridgov.schemas.boundaries import HistoryQuerySchema, HistorySchema
from gridgov.schemas.compiled import compile_dump
from gridgov.schemas.geojson import GeoJSONFeatureCollectionSchema, GeoJSONFeatureSchema
from gridgov.services import areas as area_service

blp = Blueprint("areas", __name__, url_prefix="/api/v1/areas", description="The area tree.")


# The map's GeoJSON source reads pages of up to 500 areas: dumps compiled from the schemas.
_dump_properties = compile_dump(AreaSummarySchema())
_dump_page = compile_dump(AreaPageSchema())


@blp.route("")
@blp.arguments(AreaListQuerySchema, location="query")
@blp.response(200, AreaPageSchema)
@blp.alt_response(
    200,
    schema=GeoJSONFeatureCollectionSchema,
    content_type="application/geo+json",
    description="The page (JSON), or with `format=geojson` a FeatureCollection.",
    success=True,
)
def list_areas(args):
    """List current areas by level, parent and bbox; `format=geojson` for a FeatureCollection."""
    limit = page_limit(args)
    position = page_position(args, code=str)
    after = position["code"] if position else None
    as_geojson = wants_geojson(args.get("format"))
    page = area_service.list_areas(
        db.session,
        level=args.get("level"),
        parent_code=args.get("parent"),
        bbox=args.get("bbox"),
        after_code=after,
        limit=limit,
        with_geometry=as_geojson,
    )
    next_cursor = encode_cursor({"code": page.items[-1].code}) if page.has_more else None
    if as_geojson:
        features = (feature(a.geometry_json, _dump_properties(a), a.code) for a in page.items)
        return geojson_response(feature_collection(features, next_cursor=next_cursor))
    return jsonify(_dump_page({"items": page.items, "next_cursor": next_cursor}))


@blp.route("/<string:code>")
@blp.arguments(FormatQuerySchema, location="query")
@blp.response(200, AreaDetailSchema)
@blp.alt_response(
    200,
    schema=GeoJSONFeatureSchema,
    content_type="application/geo+json",
    description="The area (JSON), or with `format=geojson` a Feature.",
    success=True,
)
@blp.alt_response(404, description="No such area (`area_not_found`).")
def get_area(args, code):
    """One area with its boundary; `format=geojson` for a GeoJSON Feature."""
    area = area_service.get_area(db.session, code=code)
    if wants_geojson(args.get("format")):
        return geojson_response(feature(area.geometry_json, _dump_properties(area), area.code))
    return area


@blp.route("/<string:code>/history")
@blp.arguments(HistoryQuerySchema, location="query")
@blp.response(200, HistorySchema)
@blp.alt_response(404, description="No such area (`area_not_found`).")
def get_history(args, code):
    """Every boundary revision of the area, newest first (with `geometry=true`, the shapes)."""
    area, revisions = area_service.area_history(
        db.session, code=code, with_geometry=args["geometry"]
    )
    return {"code": area.code, "retired_at": area.retired_at, "items": revisions}
