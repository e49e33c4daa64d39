import math
import random

import pytest

from geo.crs import (
    SUPPORTED_CRS,
    UnknownCRS,
    bd09_to_gcj02,
    distance_m,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    to_wgs84,
    wgs84_to_gcj02,
)

# Yinzhou district, Ningbo.
YINZHOU_BOX = (121.35, 29.65, 121.80, 29.98)
NINGBO = (121.55, 29.82)
# Measured max round trip is about 1e-7 m (gcj02) and 2e-6 m (bd09); 5 cm leaves ample margin.
ROUND_TRIP_TOLERANCE_M = 0.05


def _lattice(box, n):
    min_lon, min_lat, max_lon, max_lat = box
    for i in range(n):
        for j in range(n):
            yield (
                min_lon + (max_lon - min_lon) * i / (n - 1),
                min_lat + (max_lat - min_lat) * j / (n - 1),
            )


def _random_points(box, n, seed):
    rng = random.Random(seed)
    min_lon, min_lat, max_lon, max_lat = box
    return [(rng.uniform(min_lon, max_lon), rng.uniform(min_lat, max_lat)) for _ in range(n)]


def _max_round_trip_error_m(points, crs):
    return max(
        distance_m(lon, lat, *to_wgs84(*from_wgs84(lon, lat, crs), crs)) for lon, lat in points
    )


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_round_trip_on_yinzhou_lattice(crs):
    assert _max_round_trip_error_m(_lattice(YINZHOU_BOX, 60), crs) < ROUND_TRIP_TOLERANCE_M


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_round_trip_on_random_yinzhou_points(crs):
    points = _random_points(YINZHOU_BOX, 2000, seed=20240601)
    assert _max_round_trip_error_m(points, crs) < ROUND_TRIP_TOLERANCE_M


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_round_trip_across_mainland_china(crs):
    points = _random_points((75.0, 18.0, 134.0, 53.0), 2000, seed=7)
    assert _max_round_trip_error_m(points, crs) < ROUND_TRIP_TOLERANCE_M


def test_inverse_from_the_other_side():
    # Start from a GCJ-02 / BD-09 reading (what a phone sends), not from WGS-84.
    for lon, lat in _lattice(YINZHOU_BOX, 15):
        assert distance_m(lon, lat, *wgs84_to_gcj02(*gcj02_to_wgs84(lon, lat))) < 0.001
        assert distance_m(lon, lat, *gcj02_to_bd09(*bd09_to_gcj02(lon, lat))) < 0.001


def test_iterative_inverse_beats_one_step_inverse():
    # The one-step inverse is metres off in Ningbo; the iterative one is sub-millimetre.
    lon, lat = NINGBO
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    f_lon, f_lat = wgs84_to_gcj02(g_lon, g_lat)
    one_step = (2 * g_lon - f_lon, 2 * g_lat - f_lat)
    assert distance_m(lon, lat, *one_step) > 0.5
    assert distance_m(lon, lat, *gcj02_to_wgs84(g_lon, g_lat)) < 0.001


def test_gcj02_offset_in_ningbo():
    offset = distance_m(*NINGBO, *from_wgs84(*NINGBO, "gcj02"))
    assert 300 < offset < 700


def test_bd09_offset_in_ningbo():
    offset = distance_m(*NINGBO, *from_wgs84(*NINGBO, "bd09"))
    assert 800 < offset < 1500


# Published test vectors of the eviltransform project (wgs lat, wgs lon, gcj lat, gcj lon),
# computed by an independent implementation of the same public formula.
EVILTRANSFORM_VECTORS = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing
]


@pytest.mark.parametrize(("wgs_lat", "wgs_lon", "gcj_lat", "gcj_lon"), EVILTRANSFORM_VECTORS)
def test_gcj02_reference_vectors(wgs_lat, wgs_lon, gcj_lat, gcj_lon):
    lon, lat = wgs84_to_gcj02(wgs_lon, wgs_lat)
    assert lon == pytest.approx(gcj_lon, abs=1e-9)
    assert lat == pytest.approx(gcj_lat, abs=1e-9)
    back_lon, back_lat = gcj02_to_wgs84(gcj_lon, gcj_lat)
    assert distance_m(wgs_lon, wgs_lat, back_lon, back_lat) < 0.001


def test_bd09_reference_vector():
    # Published by the coordtransform-rs project for the same forward formula.
    lon, lat = gcj02_to_bd09(116.404, 39.915)
    assert lon == pytest.approx(116.41036949371029, abs=1e-9)
    assert lat == pytest.approx(39.92133699351021, abs=1e-9)


@pytest.mark.parametrize("point", [(121.55, 29.82), (0.0, 0.0), (-74.0, 40.7), (139.69, 35.69)])
@pytest.mark.parametrize("crs", ["wgs84", "cgcs2000"])
def test_wgs84_and_cgcs2000_are_identity(point, crs):
    assert to_wgs84(*point, crs) == point
    assert from_wgs84(*point, crs) == point


@pytest.mark.parametrize(
    "point",
    [
        (2.3522, 48.8566),  # Paris
        (139.6917, 35.6895),  # Tokyo: east of the box
        (-46.6333, -23.5505),  # São Paulo
        (121.55, -29.82),  # Ningbo's longitude, southern hemisphere
    ],
)
def test_outside_china_gcj02_is_unchanged(point):
    assert wgs84_to_gcj02(*point) == point
    assert gcj02_to_wgs84(*point) == point
    assert from_wgs84(*point, "gcj02") == point
    assert to_wgs84(*point, "gcj02") == point


def test_outside_china_bd09_still_round_trips():
    # BD-09 has no out-of-China rule in the reference formula; it must still invert cleanly.
    paris = (2.3522, 48.8566)
    assert distance_m(*paris, *to_wgs84(*from_wgs84(*paris, "bd09"), "bd09")) < 0.001


@pytest.mark.parametrize("crs", ["epsg:4326", "mars", "", None, 4326, "bd-09"])
def test_unknown_crs_raises(crs):
    with pytest.raises(UnknownCRS) as excinfo:
        to_wgs84(121.55, 29.82, crs)
    assert excinfo.value.crs == crs
    with pytest.raises(UnknownCRS):
        from_wgs84(121.55, 29.82, crs)


def test_unknown_crs_is_a_value_error():
    assert issubclass(UnknownCRS, ValueError)


def test_crs_names_are_case_insensitive():
    assert to_wgs84(*NINGBO, "GCJ02") == to_wgs84(*NINGBO, "gcj02")
    assert from_wgs84(*NINGBO, " BD09 ") == from_wgs84(*NINGBO, "bd09")


def test_supported_crs():
    assert SUPPORTED_CRS == ("wgs84", "gcj02", "bd09", "cgcs2000")
    for crs in SUPPORTED_CRS:
        lon, lat = to_wgs84(*NINGBO, crs)
        assert isinstance(lon, float) and isinstance(lat, float)


def test_distance_m():
    assert distance_m(121.55, 29.82, 121.55, 29.82) == 0.0
    # One degree of latitude on the 6371008.8 m sphere is 2*pi*R/360 metres.
    one_degree = 2 * math.pi * 6371008.8 / 360
    assert distance_m(121.55, 29.0, 121.55, 30.0) == pytest.approx(one_degree, rel=1e-12)
    # Antipodes: half the circumference.
    assert distance_m(0.0, 0.0, 180.0, 0.0) == pytest.approx(math.pi * 6371008.8, rel=1e-12)
    assert distance_m(121.35, 29.65, 121.80, 29.98) == pytest.approx(
        distance_m(121.80, 29.98, 121.35, 29.65)
    )


def test_a_new_input_crs_is_one_entry_in_the_conversion_table(monkeypatch):
    """The change-locality rule for coordinate systems: conversions are looked up, not
    branched on, so a pair of functions registered in CONVERSIONS is the whole change."""
    from geo import crs

    shifted = (lambda lon, lat: (lon - 1.0, lat), lambda lon, lat: (lon + 1.0, lat))
    monkeypatch.setitem(crs.CONVERSIONS, "test_shift", shifted)
    assert crs.normalize_crs(" TEST_SHIFT ") == "test_shift"
    assert crs.to_wgs84(122.5, 29.8, "test_shift") == (121.5, 29.8)
    assert crs.from_wgs84(121.5, 29.8, "test_shift") == (122.5, 29.8)
