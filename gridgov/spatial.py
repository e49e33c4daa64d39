"""The one bridge between Shapely geometries and PostGIS values (SRID 4326 throughout)."""

from typing import Any

from geoalchemy2 import WKBElement
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func

SRID = 4326
GEOJSON_DECIMALS = 7  # about 1 cm at these latitudes


def to_db(geometry: BaseGeometry) -> WKBElement:
    """Shapely geometry → a PostGIS value in SRID 4326."""
    return from_shape(geometry, srid=SRID)


def from_db(value: WKBElement) -> BaseGeometry:
    """PostGIS value → Shapely geometry."""
    return to_shape(value)


def geojson_sql(column: Any) -> Any:
    """SQL expression rendering a geometry column as RFC 7946 GeoJSON text."""
    return func.ST_AsGeoJSON(column, GEOJSON_DECIMALS)


def point_sql(lon: float, lat: float) -> Any:
    """SQL expression for a WGS-84 point."""
    return func.ST_SetSRID(func.ST_MakePoint(lon, lat), SRID)
