"""Incident downloads: GET /api/v1/exports/incidents.csv and incidents.geojson.

Scoped like every incident read (the caller's incident_scope) and filtered like the incident
list (area, from, to, status, category; bbox and overdue too). The body is streamed: rows
leave a server-side cursor in batches and go out as they are written, so memory stays flat
whatever the size of the export (gridgov/services/exports.py).

A download is complete or visibly broken, never a silent half:
- The cursor lives in a session of the download's own, which the response body closes when it
  ends. The request's session is removed when the view returns (Flask tears the app context
  down before a streamed body is sent), and the cursor's transaction with it.
- The query runs and the first chunk is made before the response starts, so a refused query
  is an error envelope with its status, not a 200 that stops.
- A failure after the first byte is logged and re-raised: the server then drops the
  connection without the chunked body's last chunk, which every HTTP client reports as an
  incomplete transfer (curl exits 18, Python's http.client raises IncompleteRead).
"""

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from flask import Response, stream_with_context
from sqlalchemy.orm import Session

from gridgov.api.incidents import incident_filters
from gridgov.api.input import Blueprint
from gridgov.api.security import current_user
from gridgov.extensions import db
from gridgov.schemas.incidents import IncidentListQuerySchema
from gridgov.services import exports as export_service
from gridgov.settings import settings

log = logging.getLogger(__name__)

blp = Blueprint("exports", __name__, url_prefix="/api/v1", description="Data exports.")

FILTER_FIELDS = ("status", "category", "area", "bbox", "overdue", "reported_from", "reported_to")
ExportQuerySchema = IncidentListQuerySchema(only=FILTER_FIELDS)


def _download(
    write: Callable[[Iterator, object], Iterator[bytes]],
    *,
    mimetype: str,
    args: dict,
    extension: str,
) -> Response:
    stamp = datetime.now(UTC).astimezone(settings().time_zone).strftime("%Y%m%d-%H%M")
    name = f"incidents-{args.get('area', 'all')}-{stamp}.{extension}"
    session = db.session.session_factory()
    try:
        rows = export_service.export_rows(
            session, user=current_user(), filters=incident_filters(args)
        )
        chunks = write(rows, settings().time_zone)
        first = next(chunks)
    except BaseException:
        session.close()
        raise
    # stream_with_context keeps the request context (its id in the log lines) for the body.
    response = Response(stream_with_context(_body(session, first, chunks)), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"  # case data: never kept by a proxy
    response.headers["X-Accel-Buffering"] = "no"  # let a reverse proxy pass chunks on
    return response


def _body(session: Session, first: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    sent = len(first)
    try:
        yield first
        for chunk in chunks:
            yield chunk
            sent += len(chunk)
    except GeneratorExit:
        raise  # the client went away: nothing to report
    except Exception:
        log.exception("export aborted after %d bytes; the connection is dropped", sent)
        raise
    finally:
        session.close()


@blp.route("/exports/incidents.csv")
@blp.arguments(ExportQuerySchema, location="query")
@blp.response(
    200,
    content_type="text/csv",
    description="CSV, UTF-8 with a BOM, one header row; streamed.",
)
def export_csv(args):
    """The incidents in the caller's scope as CSV (opens in Excel with Chinese intact)."""
    return _download(export_service.csv_chunks, mimetype="text/csv", args=args, extension="csv")


@blp.route("/exports/incidents.geojson")
@blp.arguments(ExportQuerySchema, location="query")
@blp.response(
    200, content_type="application/geo+json", description="A FeatureCollection; streamed."
)
def export_geojson(args):
    """The incidents in the caller's scope as a GeoJSON FeatureCollection of points."""
    return _download(
        export_service.geojson_chunks,
        mimetype="application/geo+json",
        args=args,
        extension="geojson",
    )
