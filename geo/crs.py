"""Chinese coordinate systems: convert phone and survey coordinates to and from WGS-84.

We store WGS-84. Input arrives in one of:

- ``wgs84``: raw GNSS (GPS, BeiDou) and most non-Chinese software.
- ``gcj02``: the state-mandated obfuscated datum used by AMap (Gaode), Tencent Maps and WeChat
  location; in Ningbo it is shifted by roughly 500 m from WGS-84.
- ``bd09``: Baidu Maps, a further rotation of GCJ-02; roughly 1.1 km from WGS-84 in Ningbo.
- ``cgcs2000``: survey data (EPSG:4490). Treated as identical to WGS-84, see ``to_wgs84``.

GCJ-02 forward is the well-known public-domain formula (Krasovsky ellipsoid constants and the
``transform_lat``/``transform_lon`` polynomials); BD-09 forward is the usual ``x_pi`` rotation.
Neither has a closed-form inverse. The common one-step inverse ``p - (f(p) - p)`` is off by up
to a few metres, so the inverses here refine it by fixed-point iteration::

    p_wgs = p_gcj - (f(p_gcj) - p_gcj)
    repeat: p_wgs -= f(p_wgs) - p_gcj    until the step is < 1e-9 degrees (or 20 iterations)

which converges in a few steps (the offset varies slowly, so the map is a strong contraction)
and leaves round-trip errors of well under a millimetre. BD-09 to GCJ-02 is refined the same way
from the usual closed-form approximation.

"Out of China" rule: as in the reference formula, no GCJ-02 shift is applied outside a rough
bounding box of China (lon 72.004..137.8347, lat 0.8293..55.8271). The box is coarse: it also
covers Korea, Mongolia and south-west Japan, and it covers Hong Kong, Macau and Taiwan, where
map vendors may not shift. BD-09 has no such rule in the reference formula and is applied
everywhere.
"""

import math
from collections.abc import Callable

# Krasovsky 1940 ellipsoid, as hard-wired into the GCJ-02 formula (not the WGS-84 ellipsoid).
_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0
# IUGG mean Earth radius in metres.
_EARTH_RADIUS_M = 6371008.8
# 1e-9 degrees is about 0.1 mm on the ground.
_STEP_TOLERANCE_DEG = 1e-9
_MAX_ITERATIONS = 20

_CHINA_MIN_LON, _CHINA_MAX_LON = 72.004, 137.8347
_CHINA_MIN_LAT, _CHINA_MAX_LAT = 0.8293, 55.8271

_Transform = Callable[[float, float], tuple[float, float]]


class UnknownCRS(ValueError):
    """Raised for a coordinate system name that is not in SUPPORTED_CRS."""

    def __init__(self, crs: object) -> None:
        self.crs = crs
        super().__init__(
            f"unknown coordinate system {crs!r}; supported: {', '.join(SUPPORTED_CRS)}"
        )


def _out_of_china(lon: float, lat: float) -> bool:
    return not (_CHINA_MIN_LON <= lon <= _CHINA_MAX_LON and _CHINA_MIN_LAT <= lat <= _CHINA_MAX_LAT)


def _transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def _gcj02_shift(lon: float, lat: float) -> tuple[float, float]:
    # The GCJ-02 forward without the out-of-China rule, so the inverse iterates on a smooth map.
    x, y = lon - 105.0, lat - 35.0
    rad_lat = lat / 180.0 * math.pi
    magic = 1.0 - _KRASOVSKY_EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    # Polynomial outputs are metres; divide by the meridian / parallel radius to get degrees.
    d_lat = (_transform_lat(x, y) * 180.0) / (
        (_KRASOVSKY_A * (1.0 - _KRASOVSKY_EE)) / (magic * sqrt_magic) * math.pi
    )
    d_lon = (_transform_lon(x, y) * 180.0) / (
        _KRASOVSKY_A / sqrt_magic * math.cos(rad_lat) * math.pi
    )
    return lon + d_lon, lat + d_lat


def _invert(
    forward: _Transform, lon: float, lat: float, lon0: float, lat0: float
) -> tuple[float, float]:
    # Fixed-point iteration: move the guess by how far its image misses the target.
    for _ in range(_MAX_ITERATIONS):
        f_lon, f_lat = forward(lon0, lat0)
        step_lon, step_lat = f_lon - lon, f_lat - lat
        lon0, lat0 = lon0 - step_lon, lat0 - step_lat
        if abs(step_lon) < _STEP_TOLERANCE_DEG and abs(step_lat) < _STEP_TOLERANCE_DEG:
            break
    return lon0, lat0


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Convert WGS-84 to GCJ-02 (unchanged outside the rough China box)."""
    if _out_of_china(lon, lat):
        return float(lon), float(lat)
    return _gcj02_shift(lon, lat)


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Convert GCJ-02 to WGS-84 by iterating the forward formula (sub-millimetre round trip)."""
    if _out_of_china(lon, lat):
        return float(lon), float(lat)
    s_lon, s_lat = _gcj02_shift(lon, lat)
    return _invert(_gcj02_shift, lon, lat, 2.0 * lon - s_lon, 2.0 * lat - s_lat)


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """Convert GCJ-02 to Baidu BD-09."""
    z = math.hypot(lon, lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Convert Baidu BD-09 to GCJ-02, refining the usual closed form by iteration."""
    x, y = lon - 0.0065, lat - 0.006
    z = math.hypot(x, y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    return _invert(gcj02_to_bd09, lon, lat, z * math.cos(theta), z * math.sin(theta))


def normalize_crs(crs: object) -> str:
    """The canonical name of a supported coordinate system, or UnknownCRS."""
    name = crs.strip().lower() if isinstance(crs, str) else None
    if name not in CONVERSIONS:
        raise UnknownCRS(crs)
    return name


def _identity(lon: float, lat: float) -> tuple[float, float]:
    return float(lon), float(lat)


def _bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def _wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


# Every input coordinate system: its name → (to WGS-84, from WGS-84). A new one is a pair of
# functions and a line here (and, for stored input, a migration of the models' crs checks).
# CGCS2000 and WGS-84 (G1150 and later) agree to a few centimetres, far below phone GNSS
# accuracy and our grid-cell scale, so that conversion is the identity.
CONVERSIONS: dict[str, tuple[_Transform, _Transform]] = {
    "wgs84": (_identity, _identity),
    "gcj02": (gcj02_to_wgs84, wgs84_to_gcj02),
    "bd09": (_bd09_to_wgs84, _wgs84_to_bd09),
    "cgcs2000": (_identity, _identity),
}


SUPPORTED_CRS = tuple(CONVERSIONS)


def to_wgs84(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """Convert a point from any supported coordinate system (case-insensitive name) to WGS-84."""
    return CONVERSIONS[normalize_crs(crs)][0](lon, lat)


def from_wgs84(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """Convert a WGS-84 point to any supported coordinate system (case-insensitive name)."""
    return CONVERSIONS[normalize_crs(crs)][1](lon, lat)


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle (haversine) distance in metres on a 6371008.8 m sphere."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    h = math.sin(d_phi / 2.0) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2.0) ** 2
    return 2.0 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
