"""GET /api/v1/route: the spatial lookup of a point."""

from dataclasses import asdict

from flask import current_app
from flask_smorest import Blueprint

from gridgov.extensions import db
from gridgov.schemas.routing import RouteAtQuerySchema, RouteQuerySchema, RoutingSchema
from gridgov.services import routing as routing_service

blp = Blueprint("routing", __name__, url_prefix="/api/v1", description="Spatial routing.")


def routing_body(routing: routing_service.Routing) -> dict:
    """The routing as API.md shows it (also embedded in incidents)."""
    body = asdict(routing)
    body["point"] = {"lon": body.pop("lon"), "lat": body.pop("lat")}
    body["tie_break"] = "lowest_code" if routing.candidates > 1 else None
    return body


@blp.route("/route")
@blp.arguments(RouteQuerySchema, location="query")
@blp.arguments(RouteAtQuerySchema, location="query")
@blp.response(200, RoutingSchema)
def route(point, when):
    """Route a point (any supported crs) to its micro-grid, grid, community, town, district."""
    if when.get("at"):
        routing = routing_service.route_point_at(
            db.session, lon=point.lon, lat=point.lat, at=when["at"]
        )
        return routing_body(routing)
    routing = routing_service.route_point(
        db.session,
        lon=point.lon,
        lat=point.lat,
        max_nearest_m=current_app.config["ROUTING_NEAREST_MAX_M"],
    )
    return routing_body(routing)
