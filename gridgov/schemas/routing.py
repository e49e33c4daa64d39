"""Schemas of the routing lookup."""

from dataclasses import dataclass
from datetime import datetime

from marshmallow import Schema, fields, post_load

from geo.levels import LEVELS
from geo.points import InputPoint
from gridgov.schemas.common import Instant
from gridgov.schemas.location import LocationSchema


@dataclass(frozen=True)
class RouteQuery:
    point: InputPoint
    at: datetime | None


class RouteQuerySchema(LocationSchema):
    # Query strings carry text: parse numbers first, then the shared point checks apply.
    lon = fields.Float(required=True, allow_nan=False, metadata={"description": "Longitude."})
    lat = fields.Float(required=True, allow_nan=False, metadata={"description": "Latitude."})
    at = Instant("Route on the map as it was then")

    @post_load
    def to_point(self, data, **kwargs) -> RouteQuery:
        return RouteQuery(point=LocationSchema.to_point(self, data), at=data.get("at"))


class AreaRefSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)


class PointSchema(Schema):
    lon = fields.Float(required=True)
    lat = fields.Float(required=True)


class _RoutingFields(Schema):
    point = fields.Nested(
        PointSchema, required=True, metadata={"description": "WGS-84 point used."}
    )
    method = fields.String(required=True, metadata={"description": "covered, nearest or unrouted"})
    distance_m = fields.Float(required=True)
    candidates = fields.Integer(
        required=True,
        metadata={
            "description": "Micro-grids covering the point; above 1 on a shared edge, where the"
            " lowest code wins."
        },
    )
    tie_break = fields.String(allow_none=True)


# Then the routed area at every level of geo.levels, finest first (null when not routed).
RoutingSchema = _RoutingFields.from_dict(
    {
        level.name: fields.Nested(
            AreaRefSchema,
            allow_none=True,
            metadata={"description": f"The {level.name} ({level.label})."},
        )
        for level in LEVELS.upward
    },
    name="RoutingSchema",
)
