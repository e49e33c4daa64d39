"""GeoJSON responses (RFC 7946) and format negotiation for endpoints that offer them."""

import json
from collections.abc import Iterable
from typing import Any

from flask import Response, request

GEOJSON_MIMETYPE = "application/geo+json"


def wants_geojson(format_arg: str | None) -> bool:
    """True when `format=geojson` is asked for, or the Accept header prefers GeoJSON."""
    if format_arg:
        return format_arg == "geojson"
    best = request.accept_mimetypes.best_match(["application/json", GEOJSON_MIMETYPE])
    return best == GEOJSON_MIMETYPE and request.accept_mimetypes[GEOJSON_MIMETYPE] > 0


def feature(geometry_json: str | None, properties: dict[str, Any], feature_id: Any = None) -> dict:
    """One Feature; `geometry_json` is GeoJSON text as PostGIS renders it."""
    result: dict[str, Any] = {"type": "Feature"}
    if feature_id is not None:
        result["id"] = feature_id
    result["geometry"] = json.loads(geometry_json) if geometry_json else None
    result["properties"] = properties
    return result


def geojson_response(document: dict[str, Any], status: int = 200) -> Response:
    """Serialise a GeoJSON document with its media type."""
    return Response(
        json.dumps(document, ensure_ascii=False, separators=(",", ":")),
        status=status,
        mimetype=GEOJSON_MIMETYPE,
    )


def feature_collection(features: Iterable[dict], **members: Any) -> dict[str, Any]:
    """A FeatureCollection, with extra top-level members such as next_cursor."""
    document: dict[str, Any] = {"type": "FeatureCollection", "features": list(features)}
    document.update({k: v for k, v in members.items() if v is not None})
    return document
