"""GET /api/v1/route: the spatial lookup of a point."""

from flask import Response, jsonify

from gridgov.api.input import Blueprint
from gridgov.extensions import db, lookups
from gridgov.schemas.routing import RouteQuery, RouteQuerySchema, RoutingSchema
from gridgov.services import changesets as changeset_service
from gridgov.services import routing as routing_service
from gridgov.settings import settings

blp = Blueprint("routing", __name__, url_prefix="/api/v1", description="Spatial routing.")


def routing_body(routing: routing_service.Routing) -> dict:
    """The routing as API.md shows it (also embedded in incidents)."""
    # Built by hand rather than with dataclasses.asdict, which deep-copies every value: this
    # is the hot path of the phones' map.
    body = {
        "point": {"lon": routing.lon, "lat": routing.lat},
        "method": routing.method,
        "distance_m": routing.distance_m,
        "candidates": routing.candidates,
        "tie_break": "lowest_code" if routing.candidates > 1 else None,
    }
    for level in routing_service.ROUTE_LEVELS:
        area = routing.area(level)
        body[level] = {"code": area.code, "name": area.name} if area else None
    return body


# The hot path of the phones' map, so two shortcuts: one schema instance for every request
# (given a class, webargs builds a new instance and deep-copies its fields on each call), and
# the body is returned as JSON directly (flask-smorest passes a Response through): it is
# built field by field above, RoutingSchema documents it and the tests compare the two.
@blp.route("/route")
@blp.arguments(RouteQuerySchema(), location="query")
@blp.response(200, RoutingSchema)
def route(query: RouteQuery) -> Response:
    """Route a point (any supported crs) to its micro-grid, grid, community, town, district."""
    point = query.point
    if query.at:
        # The map of that instant, scheduled change sets included (services/changesets.py).
        routing = changeset_service.route_at(db.session, lon=point.lon, lat=point.lat, at=query.at)
    else:
        routing = lookups.run(
            routing_service.route_point,
            lon=point.lon,
            lat=point.lat,
            max_nearest_m=settings().routing_nearest_max_m,
        )
    return jsonify(routing_body(routing))
