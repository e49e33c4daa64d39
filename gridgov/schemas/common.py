"""Fields and schemas shared by several endpoints."""

import json
import math
from datetime import UTC, date, datetime

from marshmallow import Schema, ValidationError, fields, missing, validate

# The largest ids the primary keys hold (`integer`: users, assignments; `bigint`: incidents,
# patrols). A bigger number is no id at all: 404 in a URL (gridgov/api/converters.py), 422 in
# a query or body; never a database "out of range" error.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

# The instants and days the API accepts. Wide enough for any real record, narrow enough that the
# arithmetic done on them (an offset applied, a day or a window added, PostgreSQL's range) never
# leaves Python's datetime range: 0001-01-01T00:00+14:00 and 9999-12-31 were 500s.
EARLIEST_DAY, LATEST_DAY = date(1900, 1, 1), date(2999, 12, 31)
EARLIEST = datetime.combine(EARLIEST_DAY, datetime.min.time(), UTC)
LATEST = datetime.combine(LATEST_DAY, datetime.max.time(), UTC)
OUT_OF_RANGE = f"out_of_range: must lie between {EARLIEST_DAY} and {LATEST_DAY}."


def check_instant(value: datetime) -> datetime:
    """`value` (aware) if it lies between EARLIEST and LATEST, else a ValidationError."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(OUT_OF_RANGE) from None
    if not EARLIEST <= utc <= LATEST:
        raise ValidationError(OUT_OF_RANGE)
    return value


def check_day(value: date) -> date:
    """`value` if it lies between EARLIEST_DAY and LATEST_DAY, else a ValidationError."""
    if not EARLIEST_DAY <= value <= LATEST_DAY:
        raise ValidationError(OUT_OF_RANGE)
    return value


class Instant(fields.AwareDateTime):
    """An ISO 8601 date-time with an offset, between 1900 and 2999. Every request schema uses
    this instead of marshmallow's DateTime fields (tests/api/test_input.py checks)."""

    def __init__(self, description: str = "", **kwargs) -> None:
        if description:
            kwargs.setdefault("metadata", {})["description"] = (
                f"{description} (ISO 8601 with offset)."
            )
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> datetime:
        return check_instant(super()._deserialize(value, attr, data, **kwargs))


class Day(fields.Date):
    """An ISO 8601 date (YYYY-MM-DD) between 1900 and 2999 (the Date of request schemas)."""

    def _deserialize(self, value, attr, data, **kwargs) -> date:
        return check_day(super()._deserialize(value, attr, data, **kwargs))


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


class Inline(fields.Nested):
    """A nested object of the answer built from the dumped object's own attributes (a flat
    view shown in parts, like an incident's location)."""

    def get_value(self, obj, attr, accessor=None, default=missing):
        """The dumped object itself."""
        return obj


class GeoJSONText(fields.Dict):
    """A GeoJSON geometry the database rendered as text (ST_AsGeoJSON, `attribute` names it),
    dumped as the object; absent from the answer when there is none."""

    def get_value(self, obj, attr, accessor=None, default=missing):
        """The text, or missing when empty."""
        return super().get_value(obj, attr, accessor, default) or missing

    def _serialize(self, value, attr, obj, **kwargs):
        return json.loads(value)


class PageQuerySchema(Schema):
    cursor = fields.String(metadata={"description": "Opaque cursor from a previous page."})
    # The default and the maximum are settings (GRIDGOV_PAGE_SIZE_*), applied by api/paging.py.
    limit = fields.Integer(
        validate=validate.Range(min=1, max=INT32_MAX),
        metadata={
            "description": "Items per page: by default GRIDGOV_PAGE_SIZE_DEFAULT (50), at most"
            " GRIDGOV_PAGE_SIZE_MAX (500)."
        },
    )
