"""Incident downloads: GET /api/v1/exports/incidents.csv and incidents.geojson.

Scoped like every incident read (the caller's incident_scope) and filtered like the incident
list (area, from, to, status, category; bbox and overdue too). The body is streamed: rows
leave a server-side cursor in batches and go out as they are written, so memory stays flat
whatever the size of the export (gridgov/services/exports.py).
"""

from datetime import UTC, datetime

from flask import Response, stream_with_context
from flask_smorest import Blueprint

from gridgov.api.incidents import incident_filters, work_calendar
from gridgov.api.security import current_user
from gridgov.extensions import db
from gridgov.schemas.incidents import IncidentListQuerySchema
from gridgov.services import exports as export_service

blp = Blueprint("exports", __name__, url_prefix="/api/v1", description="Data exports.")

FILTER_FIELDS = ("status", "category", "area", "bbox", "overdue", "reported_from", "reported_to")
ExportQuerySchema = IncidentListQuerySchema(only=FILTER_FIELDS)


def _download(chunks, *, mimetype: str, args: dict, extension: str) -> Response:
    stamp = datetime.now(UTC).astimezone(work_calendar().tz).strftime("%Y%m%d-%H%M")
    name = f"incidents-{args.get('area', 'all')}-{stamp}.{extension}"
    # stream_with_context keeps the request (and its database session) alive while the
    # generator runs after the view has returned.
    response = Response(stream_with_context(chunks), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"  # case data: never kept by a proxy
    response.headers["X-Accel-Buffering"] = "no"  # let a reverse proxy pass chunks on
    return response


@blp.route("/exports/incidents.csv")
@blp.arguments(ExportQuerySchema, location="query")
@blp.response(
    200,
    content_type="text/csv",
    description="CSV, UTF-8 with a BOM, one header row; streamed.",
)
def export_csv(args):
    """The incidents in the caller's scope as CSV (opens in Excel with Chinese intact)."""
    rows = export_service.export_rows(
        db.session, user=current_user(), filters=incident_filters(args)
    )
    chunks = export_service.csv_chunks(rows, tz=work_calendar().tz)
    return _download(chunks, mimetype="text/csv", args=args, extension="csv")


@blp.route("/exports/incidents.geojson")
@blp.arguments(ExportQuerySchema, location="query")
@blp.response(
    200, content_type="application/geo+json", description="A FeatureCollection; streamed."
)
def export_geojson(args):
    """The incidents in the caller's scope as a GeoJSON FeatureCollection of points."""
    rows = export_service.export_rows(
        db.session, user=current_user(), filters=incident_filters(args)
    )
    chunks = export_service.geojson_chunks(rows, tz=work_calendar().tz)
    return _download(chunks, mimetype="application/geo+json", args=args, extension="geojson")
