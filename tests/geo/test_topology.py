"""Boundary validation: the bad-input corpus, and family checks with float noise."""

from dataclasses import replace

import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box, mapping

from geo.crs import from_wgs84
from geo.topology import LocalMetricFrame, family_problems, parse_boundary
from tests.helpers import TOLERANCES

LON, LAT = 121.55, 29.82
D = 0.001  # about 100 m


def square(x0, y0, size=D):
    return box(LON + x0, LAT + y0, LON + x0 + size, LAT + y0 + size)


def kinds(result):
    return [p.kind for p in result.problems]


def geojson_polygon(rings):
    return {"type": "Polygon", "coordinates": rings}


SHELL = [[LON, LAT], [LON + D, LAT], [LON + D, LAT + D], [LON, LAT + D], [LON, LAT]]


@pytest.mark.parametrize(
    "name, geometry, kind",
    [
        (
            "bow-tie",
            geojson_polygon(
                [[[LON, LAT], [LON + D, LAT + D], [LON + D, LAT], [LON, LAT + D], [LON, LAT]]]
            ),
            "invalid_geometry",
        ),
        (
            "self-touching ring",
            geojson_polygon(
                [
                    [
                        [LON, LAT],
                        [LON + 2 * D, LAT],
                        [LON + 2 * D, LAT + 2 * D],
                        [LON + D, LAT],
                        [LON, LAT + 2 * D],
                        [LON, LAT],
                    ]
                ]
            ),
            "invalid_geometry",
        ),
        ("unclosed ring", geojson_polygon([SHELL[:-1]]), "unclosed_ring"),
        (
            "hole outside shell",
            geojson_polygon(
                [
                    SHELL,
                    [
                        [LON + 2 * D, LAT],
                        [LON + 3 * D, LAT],
                        [LON + 3 * D, LAT + D],
                        [LON + 2 * D, LAT],
                    ],
                ]
            ),
            "invalid_geometry",
        ),
        ("empty polygon", {"type": "Polygon", "coordinates": []}, "empty_geometry"),
        ("empty multipolygon", {"type": "MultiPolygon", "coordinates": []}, "empty_geometry"),
        ("point", {"type": "Point", "coordinates": [LON, LAT]}, "not_polygonal"),
        ("line", {"type": "LineString", "coordinates": SHELL}, "not_polygonal"),
        ("no geometry", None, "invalid_geometry"),
        (
            "out of range",
            geojson_polygon([[[p[0] + 100, p[1]] for p in SHELL]]),
            "out_of_range",
        ),
        ("swapped", geojson_polygon([[[p[1], p[0]] for p in SHELL]]), "swapped_coordinates"),
        ("3-D", geojson_polygon([[[*p, 12.0] for p in SHELL]]), "three_d"),
        (
            "zero area",
            geojson_polygon([[SHELL[0], SHELL[1], SHELL[0], SHELL[0]]]),
            "invalid_geometry",
        ),
        ("strings", geojson_polygon([[["a", "b"]] * 4]), "invalid_geometry"),
    ],
)
def test_bad_geometry_corpus(name, geometry, kind):
    result = parse_boundary("x", geometry, tolerances=TOLERANCES)
    assert result.geometry is None, name
    assert kind in kinds(result), (name, kinds(result))


def test_vertex_limit():
    circle = shapely.Point(LON, LAT).buffer(D, quad_segs=2000)
    result = parse_boundary("x", mapping(circle), tolerances=replace(TOLERANCES, max_vertices=1000))
    assert kinds(result) == ["too_many_vertices"]


def test_repair_on_request_reports_what_changed():
    bow_tie = geojson_polygon(
        [[[LON, LAT], [LON + D, LAT + D], [LON + D, LAT], [LON, LAT + D], [LON, LAT]]]
    )
    refused = parse_boundary("x", bow_tie, tolerances=TOLERANCES)
    assert refused.problems[0].location is not None
    repaired = parse_boundary("x", bow_tie, repair=True, tolerances=TOLERANCES)
    assert repaired.geometry is not None and repaired.geometry.is_valid
    assert len(repaired.geometry.geoms) == 2
    assert repaired.problems[0].kind == "repaired"
    assert repaired.problems[0].severity == "warning"


def test_valid_polygon_becomes_a_multipolygon():
    result = parse_boundary("x", geojson_polygon([SHELL]), tolerances=TOLERANCES)
    assert result.problems == []
    assert isinstance(result.geometry, MultiPolygon)


def test_gcj02_input_is_converted():
    gcj = [list(from_wgs84(x, y, "gcj02")) for x, y in SHELL]
    result = parse_boundary("x", geojson_polygon([gcj]), crs="gcj02", tolerances=TOLERANCES)
    assert result.geometry.equals_exact(MultiPolygon([Polygon(SHELL)]), tolerance=1e-8)


def mp(geometry):
    return MultiPolygon([geometry])


def test_a_clean_family_has_no_problems():
    parent = mp(square(0, 0, 2 * D))
    children = {
        "a": mp(square(0, 0, D).union(square(0, D, D))),
        "b": mp(square(D, 0, D).union(square(D, D, D))),
    }
    assert (
        family_problems(
            "p", parent, children, changed={"a", "b"}, parent_changed=False, tolerances=TOLERANCES
        )
        == []
    )


def test_float_noise_on_shared_edges_is_not_an_overlap_or_a_gap():
    parent = mp(square(0, 0, 2 * D))
    left = Polygon(
        [(LON, LAT), (LON + D + 3e-9, LAT), (LON + D - 2e-9, LAT + 2 * D), (LON, LAT + 2 * D)]
    )
    right = Polygon(
        [
            (LON + D, LAT),
            (LON + 2 * D, LAT),
            (LON + 2 * D, LAT + 2 * D),
            (LON + D, LAT + 2 * D),
            (LON + D + 1e-9, LAT + D),
        ]
    )
    raw_overlap = left.intersection(right).area
    assert raw_overlap > 0  # raw comparison would flag a sliver
    problems = family_problems(
        "p",
        parent,
        {"l": mp(left), "r": mp(right)},
        changed={"l", "r"},
        parent_changed=False,
        tolerances=TOLERANCES,
    )
    assert problems == []


def test_overlap_gap_and_outside_parent_are_named_and_located():
    parent = mp(square(0, 0, 3 * D))
    children = {
        "a": mp(square(0, 0, 1.5 * D)),
        "b": mp(square(D, 0, 1.5 * D)),  # overlaps a by 0.5 D wide
        "c": mp(square(2.5 * D, 2.5 * D, D)),  # sticks out of the parent
    }
    problems = family_problems(
        "p", parent, children, changed=set(children), parent_changed=False, tolerances=TOLERANCES
    )
    by_kind = {p.kind: p for p in problems}
    assert set(by_kind) == {"overlap", "gap", "outside_parent"}
    overlap = by_kind["overlap"]
    assert (overlap.code, overlap.other) == ("a", "b")
    assert overlap.area_m2 == pytest.approx(0.5 * 1.5 * 96.7 * 110.9 * 1e2 * 1e2 / 1e4, rel=0.05)
    assert parent.buffer(1e-9).covers(shapely.Point(overlap.location))
    assert by_kind["outside_parent"].code == "c"
    assert by_kind["gap"].code == "p"


def test_unchanged_siblings_are_not_rechecked_against_each_other():
    parent = mp(square(0, 0, 3 * D))
    children = {
        "a": mp(square(0, 0, 2 * D)),
        "b": mp(square(D, 0, 2 * D)),
        "c": mp(square(0, 2 * D, 3 * D)),
    }
    problems = family_problems(
        "p", parent, children, changed={"c"}, parent_changed=False, tolerances=TOLERANCES
    )
    assert [p.kind for p in problems if p.kind == "overlap"] == []


def test_metric_frame_round_trip():
    frame = LocalMetricFrame(LON, LAT)
    geom = square(0.01, 0.01)
    back = frame.to_lonlat(frame.to_metric(geom))
    assert back.equals_exact(geom, tolerance=1e-9)
    assert frame.to_metric(geom).area == pytest.approx(96.7 * 110.9, rel=0.01)


def test_a_shape_geos_cannot_snap_to_the_grid_is_still_checked():
    # A valid micro-grid a redraw produced; GEOS 3.14's set_precision raised "unable to assign
    # free hole to a shell" on it in this frame, which made the change set a 500.
    spiked = shapely.from_wkt(
        "MULTIPOLYGON (((121.40007609272588 29.843418346178744, 121.4002156370992"
        " 29.84338025799089, 121.40023544150681 29.843375917665707, 121.40025558357895"
        " 29.843373604677822, 121.40027585632917 29.843373342796255, 121.4002960514281"
        " 29.843375134712186, 121.40031596134435 29.8433789620113, 121.40229855629757"
        " 29.843865443267692, 121.4023174 29.844076, 121.4016818 29.8369739, 121.4003064"
        " 29.8216039, 121.3874019 29.8300878, 121.3852698 29.8314895, 121.40007609272588"
        " 29.843418346178744)))"
    )
    frame = LocalMetricFrame(121.38890815376348, 29.843382365287642)
    problems = family_problems(
        "330212003001001",
        spiked,
        {"330212003001001003": spiked},
        changed=set(),
        parent_changed=True,
        frame=frame,
        tolerances=TOLERANCES,
    )
    assert problems == []
