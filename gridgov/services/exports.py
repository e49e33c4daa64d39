"""Incident exports (CSV, GeoJSON) streamed in constant memory.

Rows come from a server-side cursor (`stream_results` with `yield_per`): the database sends
them in batches of BATCH_SIZE and nothing holds the whole result, so an export of a million
cases needs the memory of one batch. The writers below turn rows into chunks of bytes as they
arrive; the HTTP edge streams those chunks. Scope and filters are those of the incident list
(incident_scope, IncidentFilters), checked before the first byte, so a bad area code is a
proper 404 rather than a broken download.

Times are written in the district's time zone with their offset (ISO 8601), as people reading
the file in Excel expect local times.
"""

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, tzinfo

from sqlalchemy import Select
from sqlalchemy.orm import Session

from gridgov.models import Incident, User
from gridgov.services.incident_queries import (
    IncidentFilters,
    apply_filters,
    case_ref,
    incident_select,
)
from gridgov.services.scope import incident_scope
from gridgov.spatial import GEOJSON_DECIMALS

BATCH_SIZE = 1000
# Rows per chunk handed to the HTTP layer (one write per chunk, not per row).
ROWS_PER_CHUNK = 500

COLUMNS = (
    "id",
    "ref",
    "status",
    "category",
    "category_name",
    "priority",
    "description",
    "lon",
    "lat",
    "town",
    "grid",
    "microgrid",
    "reported_at",
    "deadline",
    "closed_at",
    "resolved_level",
)
TIME_COLUMNS = ("reported_at", "deadline", "closed_at")
TEXT_COLUMNS = ("category_name", "description")
# A cell starting with one of these is a formula to Excel (CSV injection, OWASP): free text
# from phones and Open311 clients is prefixed with an apostrophe, which Excel shows as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _export_select() -> Select:
    return incident_select(
        Incident.created_at.label("reported_at"),
        Incident.deadline,
        Incident.closed_at,
        Incident.resolved_level,
    )


def export_rows(
    session: Session, *, user: User, filters: IncidentFilters, batch_size: int = BATCH_SIZE
) -> Iterator:
    """Rows of the incidents the user may see, by id, from a server-side cursor (lazy)."""
    query = (
        apply_filters(session, _export_select(), filters)
        .where(incident_scope(session, user=user))
        .order_by(Incident.id)
        .execution_options(stream_results=True, yield_per=batch_size)
    )
    # Executed now (the cursor is declared, no row fetched yet): an unknown area or a query
    # the database refuses fails here, as a proper error response, not mid-download.
    return _stream(session.execute(query))


def _stream(result) -> Iterator:
    try:
        yield from result
    finally:
        result.close()  # also when the client goes away mid-download


def _record(row, tz: tzinfo) -> dict:
    record = dict(row._mapping)
    record["ref"] = case_ref(row.id)
    for name in TIME_COLUMNS:
        value: datetime | None = record[name]
        record[name] = value.astimezone(tz).isoformat(timespec="seconds") if value else None
    record["lon"] = round(record["lon"], GEOJSON_DECIMALS)
    record["lat"] = round(record["lat"], GEOJSON_DECIMALS)
    return record


def _cell_text(value: str | None) -> str | None:
    if value and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_chunks(rows: Iterator, tz: tzinfo) -> Iterator[bytes]:
    """CSV bytes: UTF-8 with a BOM, a header row, then the rows, a chunk at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180 line ends
    # The BOM (U+FEFF) makes Excel read the file as UTF-8; without it Excel on a Chinese
    # Windows decodes it as GBK and every Chinese description turns into mojibake.
    buffer.write("\ufeff")
    writer.writerow(COLUMNS)
    for count, row in enumerate(rows, start=1):
        record = _record(row, tz)
        for name in TEXT_COLUMNS:
            record[name] = _cell_text(record[name])
        writer.writerow(record[name] for name in COLUMNS)
        if count % ROWS_PER_CHUNK == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def geojson_chunks(rows: Iterator, tz: tzinfo) -> Iterator[bytes]:
    """A GeoJSON FeatureCollection (RFC 7946) written feature by feature."""
    yield b'{"type":"FeatureCollection","features":['
    parts: list[str] = []
    for count, row in enumerate(rows, start=1):
        record = _record(row, tz)
        lon, lat = record["lon"], record["lat"]
        properties = {name: record[name] for name in COLUMNS if name not in ("lon", "lat")}
        feature = {
            "type": "Feature",
            "id": record["id"],
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": properties,
        }
        text = json.dumps(feature, ensure_ascii=False, separators=(",", ":"))
        parts.append(text if count == 1 else "," + text)
        if count % ROWS_PER_CHUNK == 0:
            yield "".join(parts).encode()
            parts.clear()
    parts.append("]}")
    yield "".join(parts).encode()


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return data
