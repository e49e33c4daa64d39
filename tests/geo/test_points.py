import math

import pytest

from geo.points import PointError, validate_lon_lat

CHINA_BBOX = (73.0, 18.0, 135.0, 54.0)
YINZHOU_BBOX = (121.30, 29.60, 121.85, 30.03)


def _error(lon, lat, **kwargs):
    with pytest.raises(PointError) as excinfo:
        validate_lon_lat(lon, lat, **kwargs)
    return excinfo.value


def test_valid_point_is_returned_as_floats():
    assert validate_lon_lat(121.55, 29.82) == (121.55, 29.82)
    lon, lat = validate_lon_lat(121, 30)
    assert (lon, lat) == (121.0, 30.0)
    assert type(lon) is float and type(lat) is float


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(180, 90), (-180, -90), (180.0, -90.0), (-180.0, 90.0), (0, 0)],
)
def test_exact_bounds_are_valid(lon, lat):
    assert validate_lon_lat(lon, lat) == (float(lon), float(lat))


def test_negative_zero_is_valid_and_normalised():
    lon, lat = validate_lon_lat(-0.0, -0.0)
    assert (lon, lat) == (0.0, 0.0)
    assert math.copysign(1.0, lon) == 1.0 and math.copysign(1.0, lat) == 1.0


@pytest.mark.parametrize(
    ("lon", "lat", "field"),
    [
        (True, 29.82, "lon"),
        (121.55, False, "lat"),
        (None, 29.82, "lon"),
        (121.55, None, "lat"),
        ("121.55", 29.82, "lon"),
        (121.55, "29.82", "lat"),
        ([121.55], 29.82, "lon"),
        (math.nan, 29.82, "lon"),
        (121.55, math.nan, "lat"),
        (math.inf, 29.82, "lon"),
        (121.55, -math.inf, "lat"),
        (None, None, "lon"),
    ],
)
def test_not_a_number(lon, lat, field):
    err = _error(lon, lat)
    assert err.code == "not_a_number"
    assert err.field == field
    assert field in str(err)


@pytest.mark.parametrize(
    ("lon", "lat", "field"),
    [
        (180.0000001, 0.0, "lon"),
        (-180.0000001, 0.0, "lon"),
        (100.0, 90.0000001, "lat"),
        (-100.0, -90.0000001, "lat"),
        (200.0, 100.0, "lon"),
        (121.55, 200.0, "lat"),  # swapping would not help: lat is > 180
        (95.0, 121.55, "lat"),  # swapping would not help: lon is > 90
        (10**400, 0, "lon"),  # an int too large for a float
    ],
)
def test_out_of_range(lon, lat, field):
    err = _error(lon, lat)
    assert err.code == "out_of_range"
    assert err.field == field


def test_classic_swap_detected_without_bbox():
    # Ningbo given as (lat, lon): lat 121.55 is impossible, the swapped pair is valid.
    err = _error(29.82, 121.55)
    assert err.code == "swapped_coordinates"
    assert err.field is None
    assert "swapped" in err.message
    assert "lon=121.55" in err.message


def test_lat_just_past_the_pole_with_small_lon_reads_as_swap():
    # The rule is mechanical: lat out of range and the swapped pair valid means swapped.
    assert _error(0.0, 90.0000001).code == "swapped_coordinates"


@pytest.mark.parametrize("bbox", [CHINA_BBOX, YINZHOU_BBOX])
def test_swap_detected_with_bbox(bbox):
    assert _error(29.82, 121.55, expected_bbox=bbox).code == "swapped_coordinates"


def test_swap_inside_valid_range_detected_only_with_bbox():
    # Ürümqi (87.6, 43.8) sent swapped: both numbers are in range, only the bbox reveals it.
    assert validate_lon_lat(43.8, 87.6) == (43.8, 87.6)
    err = _error(43.8, 87.6, expected_bbox=CHINA_BBOX)
    assert err.code == "swapped_coordinates"


def test_outside_bbox_without_swap_is_not_an_error():
    # A Shanghai point outside the district: the caller routes it as nearest/unrouted.
    assert validate_lon_lat(121.47, 31.23, expected_bbox=YINZHOU_BBOX) == (121.47, 31.23)
    assert validate_lon_lat(2.35, 48.86, expected_bbox=CHINA_BBOX) == (2.35, 48.86)


def test_inside_bbox_is_valid():
    assert validate_lon_lat(121.55, 29.82, expected_bbox=YINZHOU_BBOX) == (121.55, 29.82)


def test_bbox_edges_are_inside():
    assert validate_lon_lat(121.30, 29.60, expected_bbox=YINZHOU_BBOX) == (121.30, 29.60)
    assert validate_lon_lat(121.85, 30.03, expected_bbox=YINZHOU_BBOX) == (121.85, 30.03)


def test_malformed_bbox_is_a_programming_error():
    with pytest.raises(ValueError) as excinfo:
        validate_lon_lat(121.55, 29.82, expected_bbox=(121.85, 29.60, 121.30, 30.03))
    assert not isinstance(excinfo.value, PointError)


def test_point_error_shape():
    err = _error(math.nan, 29.82)
    assert isinstance(err, ValueError)
    assert err.as_dict() == {"code": "not_a_number", "field": "lon", "message": err.message}
    assert str(err) == err.message
