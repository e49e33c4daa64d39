"""An input point from a phone: lon/lat in a declared coordinate system, checked and converted.

Validation goes through geo.points (NaN, range, swapped lon/lat: stable error codes) and the
conversion to WGS-84 through geo.crs; a field error reads "<code>: <reason>", and the error
envelope carries that code.
"""

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from geo.crs import SUPPORTED_CRS
from geo.points import InputPoint, PointError, parse_input_point


class LocationSchema(Schema):
    lon = fields.Raw(required=True, metadata={"type": "number", "description": "Longitude."})
    lat = fields.Raw(required=True, metadata={"type": "number", "description": "Latitude."})
    crs = fields.String(
        load_default="wgs84",
        validate=validate.OneOf(SUPPORTED_CRS),
        metadata={"description": "Coordinate system of lon/lat; stored as WGS-84."},
    )
    accuracy_m = fields.Float(
        allow_none=True, validate=validate.Range(min=0, max=100_000), allow_nan=False
    )

    @validates_schema
    def check_point(self, data, **kwargs):
        if {"lon", "lat", "crs"} - set(data):
            return  # the missing field is already reported
        try:
            parse_input_point(data["lon"], data["lat"], data["crs"])
        except PointError as error:
            field = error.field or "lon"
            raise ValidationError(f"{error.code}: {error.message}", field_name=field) from error

    @post_load
    def to_point(self, data, **kwargs) -> InputPoint:
        return parse_input_point(data["lon"], data["lat"], data["crs"], data.get("accuracy_m"))
