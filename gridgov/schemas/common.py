"""Fields and schemas shared by several endpoints."""

import math

from marshmallow import Schema, fields, validate

# The largest ids the primary keys hold (`integer`: users, assignments; `bigint`: incidents,
# patrols). A bigger number is no id at all: 404 in a URL (gridgov/api/converters.py), 422 in
# a query or body; never a database "out of range" error.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


class BBox(fields.Field):
    """`minlon,minlat,maxlon,maxlat` in WGS-84 degrees."""

    default_error_messages = {
        "invalid": "Expected minlon,minlat,maxlon,maxlat as four numbers.",
        "range": "Longitudes must be within [-180, 180] and latitudes within [-90, 90].",
        "order": "min must not exceed max.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            numbers = tuple(float(part) for part in value.split(","))
        except ValueError as exc:
            raise self.make_error("invalid") from exc
        if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
            raise self.make_error("invalid")
        minlon, minlat, maxlon, maxlat = numbers
        if not (-180 <= minlon <= 180 and -180 <= maxlon <= 180):
            raise self.make_error("range")
        if not (-90 <= minlat <= 90 and -90 <= maxlat <= 90):
            raise self.make_error("range")
        if minlon > maxlon or minlat > maxlat:
            raise self.make_error("order")
        return numbers

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else ",".join(str(v) for v in value)


def page_limit_field(default: int, maximum: int) -> fields.Integer:
    """A `limit` query field bounded by the configured page size."""
    return fields.Integer(load_default=default, validate=validate.Range(min=1, max=maximum))


class PageQuerySchema(Schema):
    cursor = fields.String(metadata={"description": "Opaque cursor from a previous page."})
    limit = page_limit_field(50, 500)
