"""Validation of an incoming longitude/latitude pair, raising PointError with a stable code.

Phones send bad numbers (NaN, strings, swapped axes); callers turn PointError into a 4xx
response, never a 500. Only real numbers are accepted: no bools, no strings, no None.
"""

import math
import numbers
from dataclasses import dataclass

from geo.crs import normalize_crs, to_wgs84

NOT_A_NUMBER = "not_a_number"
OUT_OF_RANGE = "out_of_range"
SWAPPED_COORDINATES = "swapped_coordinates"

# (min_lon, min_lat, max_lon, max_lat) in degrees, e.g. China or the district plus a buffer.
BBox = tuple[float, float, float, float]


class PointError(ValueError):
    """Invalid lon/lat pair; ``code`` is stable snake_case, ``field`` is "lon", "lat" or None."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message

    def as_dict(self) -> dict[str, str | None]:
        """Return the error as a JSON-ready dict with code, field and message."""
        return {"code": self.code, "field": self.field, "message": self.message}


def _as_float(value: object, field: str) -> float:
    # bool is an int subclass, but True/False as a coordinate is always a client bug.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PointError(
            NOT_A_NUMBER, f"{field} must be a number, got {type(value).__name__}", field
        )
    try:
        number = float(value)
    except OverflowError:
        raise PointError(OUT_OF_RANGE, f"{field} is out of range", field) from None
    if not math.isfinite(number):
        raise PointError(NOT_A_NUMBER, f"{field} must be a finite number, got {number}", field)
    # Adding 0.0 turns -0.0 into 0.0, so "-0.0" never reaches storage or JSON.
    return number + 0.0


def _in_range(lon: float, lat: float) -> bool:
    return -180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0


def _in_bbox(lon: float, lat: float, bbox: BBox) -> bool:
    min_lon, min_lat, max_lon, max_lat = bbox
    return min_lon <= lon <= max_lon and min_lat <= lat <= max_lat


def _swapped_error(lon: float, lat: float) -> PointError:
    return PointError(
        SWAPPED_COORDINATES,
        f"lon={lon!r} and lat={lat!r} look swapped; did you mean lon={lat!r}, lat={lon!r}?",
    )


def validate_lon_lat(
    lon: object, lat: object, *, expected_bbox: BBox | None = None
) -> tuple[float, float]:
    """Return (lon, lat) as finite floats, or raise PointError for a bad or swapped pair."""
    if expected_bbox is not None:
        min_lon, min_lat, max_lon, max_lat = expected_bbox
        if not (min_lon <= max_lon and min_lat <= max_lat):
            # A programming error in the caller, not bad client input: plain ValueError.
            raise ValueError(
                f"expected_bbox must be (min_lon, min_lat, max_lon, max_lat), got {expected_bbox}"
            )
    x = _as_float(lon, "lon")
    y = _as_float(lat, "lat")
    if not -180.0 <= x <= 180.0:
        raise PointError(OUT_OF_RANGE, f"lon must be within [-180, 180], got {x!r}", "lon")
    if not -90.0 <= y <= 90.0:
        # The classic mistake: (lat, lon) sent as (lon, lat). Only a swap can make it valid.
        if _in_range(y, x):
            raise _swapped_error(x, y)
        raise PointError(OUT_OF_RANGE, f"lat must be within [-90, 90], got {y!r}", "lat")
    # Outside the service area is fine (routed as nearest/unrouted) unless a swap fits.
    if (
        expected_bbox is not None
        and not _in_bbox(x, y, expected_bbox)
        and _in_bbox(y, x, expected_bbox)
    ):
        raise _swapped_error(x, y)
    return x, y


# Mainland China and its seas, roughly: a point outside it whose swap is inside is a swap.
CHINA_BBOX: BBox = (72.0, 0.8, 137.9, 55.9)


@dataclass(frozen=True)
class InputPoint:
    """A checked input point: what was sent (input_*, crs) and its WGS-84 equivalent."""

    input_lon: float
    input_lat: float
    crs: str
    lon: float
    lat: float
    accuracy_m: float | None = None


def parse_input_point(
    lon: object, lat: object, crs: str = "wgs84", accuracy_m: float | None = None
) -> InputPoint:
    """Validate a phone's point (expected in China) and convert it to WGS-84."""
    x, y = validate_lon_lat(lon, lat, expected_bbox=CHINA_BBOX)
    wgs_lon, wgs_lat = to_wgs84(x, y, crs)
    return InputPoint(x, y, normalize_crs(crs), wgs_lon, wgs_lat, accuracy_m)
