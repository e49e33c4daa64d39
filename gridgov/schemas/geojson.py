"""GeoJSON (RFC 7946) answers as documented in the OpenAPI document.

Documentation only: gridgov.api.geojson builds the documents. Endpoints that answer
`application/geo+json` (`format=geojson` or `Accept: application/geo+json`) list these as the
alternative content of their 200 response.
"""

from marshmallow import INCLUDE, Schema, fields, validate


class GeoJSONFeatureSchema(Schema):
    class Meta:
        unknown = INCLUDE  # RFC 7946 allows foreign members

    type = fields.String(required=True, validate=validate.Equal("Feature"))
    id = fields.Raw(metadata={"description": "The area code or incident id."})
    geometry = fields.Dict(required=True, allow_none=True)
    properties = fields.Dict(required=True, allow_none=True)


class GeoJSONFeatureCollectionSchema(Schema):
    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, validate=validate.Equal("FeatureCollection"))
    features = fields.List(fields.Nested(GeoJSONFeatureSchema), required=True)
    next_cursor = fields.String(metadata={"description": "Present when there are more."})
