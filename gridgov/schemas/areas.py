"""Schemas of the area endpoints."""

from marshmallow import Schema, fields, validate

from gridgov.models import AREA_LEVELS
from gridgov.schemas.common import BBox, GeoJSONText, PageQuerySchema

FORMATS = ("json", "geojson")
CODE_PATTERN = r"^[0-9]{6,18}$"


class FormatQuerySchema(Schema):
    format = fields.String(
        validate=validate.OneOf(FORMATS),
        metadata={"description": "geojson also chosen by `Accept: application/geo+json`."},
    )


class AreaListQuerySchema(PageQuerySchema, FormatQuerySchema):
    level = fields.String(validate=validate.OneOf(AREA_LEVELS))
    parent = fields.String(
        validate=validate.Regexp(CODE_PATTERN), metadata={"description": "Direct parent code."}
    )
    bbox = BBox(metadata={"description": "minlon,minlat,maxlon,maxlat (WGS-84)."})


class AreaSummarySchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    level = fields.String(required=True)
    parent = fields.String(allow_none=True)


class AreaPageSchema(Schema):
    items = fields.List(fields.Nested(AreaSummarySchema), required=True)
    next_cursor = fields.String(allow_none=True)


class AreaDetailSchema(AreaSummarySchema):
    geometry = GeoJSONText(
        attribute="geometry_json", metadata={"description": "GeoJSON MultiPolygon (RFC 7946)."}
    )
