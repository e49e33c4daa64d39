import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from functools import cache

import numpy as np
import pytest
import shapely

from geo.codes import level_of_code, parent_code
from geo.demo_district import (
    DISTRICT_CODE,
    DISTRICT_NAME,
    LEVELS,
    SIZES,
    DemoArea,
    DemoSize,
    count_areas,
    generate_district,
)

SEEDS = (2024, 7)
CENTER = (121.55, 29.82)
# Ground size of one degree near Ningbo (29.8° N).
KM_PER_DEG_LON = 111.32 * math.cos(math.radians(29.82))
KM_PER_DEG_LAT = 110.57
# Near Ningbo 1 deg² is about 1.07e10 m², so 1e-12 deg² is about 0.01 m² (a 10 cm square).
# A single shared vertex rounded differently by the 1e-7° (~1 cm) snapping on a 100 m edge
# would leave a sliver of about 0.5 m² (5e-11 deg²), so this bound catches any real mismatch
# while allowing for floating-point noise in the area computation.
TILING_TOLERANCE_DEG2 = 1e-12
# About 1 cm²: siblings may share edges but must not share area.
OVERLAP_TOLERANCE_DEG2 = 1e-14


@cache
def areas_for(seed: int) -> tuple[DemoArea, ...]:
    return tuple(generate_district(seed=seed))


@pytest.fixture(scope="module")
def areas() -> tuple[DemoArea, ...]:
    return areas_for(SEEDS[0])


def children_by_parent(areas) -> dict[str, list[DemoArea]]:
    children = defaultdict(list)
    for area in areas:
        if area.parent_code is not None:
            children[area.parent_code].append(area)
    return children


def hole_point(district: DemoArea) -> shapely.Point:
    (polygon,) = district.boundary.geoms
    (ring,) = polygon.interiors
    return shapely.Polygon(ring).centroid


def signature(areas):
    return [(a.code, a.name, a.level, a.parent_code, a.boundary.wkb) for a in areas]


def test_generate_district_is_a_lazy_iterator():
    stream = generate_district()
    assert isinstance(stream, Iterator)
    first = next(stream)
    assert (first.code, first.name, first.level, first.parent_code) == (
        DISTRICT_CODE,
        DISTRICT_NAME,
        "district",
        None,
    )


def test_same_seed_gives_identical_areas(areas):
    assert signature(generate_district(seed=SEEDS[0])) == signature(areas)


def test_different_seed_gives_different_geometry(areas):
    other = areas_for(SEEDS[1])
    assert other[0].boundary.wkb != areas[0].boundary.wkb
    ours = {a.code: a.boundary.wkb for a in areas if a.level == "microgrid"}
    theirs = {a.code: a.boundary.wkb for a in other if a.level == "microgrid"}
    assert ours.keys() == theirs.keys()
    assert all(ours[code] != theirs[code] for code in ours)


def test_counts_match_count_areas(areas):
    counts = Counter(a.level for a in areas)
    assert counts == count_areas("small")
    assert list(counts) == list(LEVELS)
    assert 20 <= counts["town"] <= 23
    assert 200 <= counts["microgrid"] <= 1000


def test_district_preset_counts():
    assert count_areas("district") == {
        "district": 1,
        "town": 23,
        "community": 207,
        "grid": 2070,
        "microgrid": 20700,
    }
    assert count_areas(SIZES["district"]) == count_areas("district")


def test_codes_form_a_tree_in_parent_first_order(areas):
    seen = set()
    for area in areas:
        assert area.code not in seen, f"duplicate code {area.code}"
        assert level_of_code(area.code) == area.level
        assert area.parent_code == parent_code(area.code)
        if area.parent_code is not None:
            assert area.parent_code in seen, f"{area.code} came before its parent"
            assert area.code[:-3] == area.parent_code
            assert LEVELS.index(area.level) == LEVELS.index(level_of_code(area.parent_code)) + 1
        seen.add(area.code)
    assert {a.level for a in areas} == set(LEVELS)


def test_children_are_numbered_from_001(areas):
    for parent, children in children_by_parent(areas).items():
        numbers = [int(child.code[-3:]) for child in children]
        if parent == DISTRICT_CODE:
            streets = [n for n in numbers if n < 100]
            towns = [n for n in numbers if n >= 100]
            assert streets == list(range(1, len(streets) + 1))
            assert towns == list(range(100, 100 + len(towns)))
        else:
            assert numbers == list(range(1, len(children) + 1))


def test_names_are_unique_among_siblings(areas):
    for parent, children in children_by_parent(areas).items():
        names = [child.name for child in children]
        assert len(set(names)) == len(names), f"duplicate names under {parent}"


def test_names_follow_the_level_conventions(areas):
    by_code = {a.code: a for a in areas}
    towns = [a for a in areas if a.level == "town"]
    assert sum(t.name.endswith("街道") for t in towns) == 13
    assert sum(t.name.endswith("镇") for t in towns) == 10
    assert "钟公庙街道" in {t.name for t in towns}
    assert "东钱湖镇" in {t.name for t in towns}
    for area in areas:
        number = int(area.code[-3:])
        parent = by_code.get(area.parent_code)
        if area.level == "town":
            assert area.name.endswith("街道") == (number < 100)
        elif area.level == "community":
            suffix = "社区" if parent.name.endswith("街道") else "村"
            assert area.name.endswith(suffix)
            assert len(area.name) == 2 + len(suffix)
        elif area.level == "grid":
            assert area.name == f"{parent.name}第{number}网格"
        elif area.level == "microgrid":
            assert area.name == f"{parent.name}第{number}微网格"


def test_geometries_are_valid_2d_multipolygons_on_the_snap_grid(areas):
    geoms = np.array([a.boundary for a in areas], dtype=object)
    assert all(isinstance(g, shapely.MultiPolygon) for g in geoms)
    assert shapely.is_valid(geoms).all()
    assert not shapely.has_z(geoms).any()
    assert not shapely.is_empty(geoms).any()
    coords = shapely.get_coordinates(geoms) * 1e7
    assert np.abs(coords - np.round(coords)).max() < 1e-3


@pytest.mark.parametrize("seed", SEEDS)
def test_children_tile_their_parent_exactly(seed):
    areas = areas_for(seed)
    by_code = {a.code: a for a in areas}
    for parent, children in children_by_parent(areas).items():
        union = shapely.union_all([child.boundary for child in children])
        gap_or_excess = shapely.symmetric_difference(union, by_code[parent].boundary).area
        assert gap_or_excess < TILING_TOLERANCE_DEG2, parent

        snapped = shapely.set_precision(
            np.array([child.boundary for child in children], dtype=object), 1e-7
        )
        left, right = shapely.STRtree(snapped).query(snapped, predicate="intersects")
        pairs = left < right
        overlap = shapely.area(shapely.intersection(snapped[left[pairs]], snapped[right[pairs]]))
        assert (overlap < OVERLAP_TOLERANCE_DEG2).all(), parent


def test_district_has_one_enclave_covered_by_no_area(areas):
    district = areas[0]
    assert len(district.boundary.geoms) == 1
    assert len(district.boundary.geoms[0].interiors) == 1
    hole = shapely.Polygon(district.boundary.geoms[0].interiors[0])
    min_x, min_y, max_x, max_y = hole.bounds
    assert 1.0 <= (max_x - min_x) * KM_PER_DEG_LON <= 2.5
    assert 1.0 <= (max_y - min_y) * KM_PER_DEG_LAT <= 2.5

    point = hole_point(district)
    geoms = np.array([a.boundary for a in areas], dtype=object)
    assert not shapely.intersects(geoms, point).any()
    # Just outside the enclave every level covers the point again.
    beside = shapely.Point(max_x + 1e-4, (min_y + max_y) / 2)
    covering = Counter(a.level for a in areas if a.boundary.covers(beside))
    assert covering == dict.fromkeys(LEVELS, 1)


def test_random_points_in_the_district_lie_in_exactly_one_microgrid(areas):
    district = areas[0].boundary
    microgrids = np.array([a.boundary for a in areas if a.level == "microgrid"], dtype=object)
    rng = np.random.default_rng(1)
    min_x, min_y, max_x, max_y = district.bounds
    points = shapely.points(rng.uniform(min_x, max_x, 2000), rng.uniform(min_y, max_y, 2000))
    points = points[shapely.contains(district, points)]
    assert len(points) > 1000
    hits = shapely.STRtree(microgrids).query(points, predicate="within")
    assert np.array_equal(np.bincount(hits[0], minlength=len(points)), np.ones(len(points)))


def test_district_is_centred_on_yinzhou(areas):
    district = areas[0].boundary
    centroid = district.centroid
    assert math.dist((centroid.x, centroid.y), CENTER) < 0.1
    min_x, min_y, max_x, max_y = district.bounds
    assert 30 <= (max_x - min_x) * KM_PER_DEG_LON <= 42
    assert 25 <= (max_y - min_y) * KM_PER_DEG_LAT <= 36


def test_custom_size_overrides_branching():
    size = DemoSize(
        towns_streets=5, communities_per_town=2, grids_per_community=1, microgrids_per_grid=2
    )
    areas = list(generate_district(seed=3, size=size))
    assert Counter(a.level for a in areas) == count_areas(size)
    assert count_areas(size) == {
        "district": 1,
        "town": 5,
        "community": 10,
        "grid": 10,
        "microgrid": 20,
    }
    assert [a.code[-3:] for a in areas if a.level == "town"] == ["001", "002", "003", "100", "101"]
    by_code = {a.code: a for a in areas}
    # A single child is its parent's whole area.
    for grid in (a for a in areas if a.level == "grid"):
        assert shapely.equals(grid.boundary, by_code[grid.parent_code].boundary)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": "huge"},
        {"size": None},
        {"seed": -1},
        {"seed": "2024"},
    ],
)
def test_bad_arguments_raise_at_call(kwargs):
    with pytest.raises(ValueError):
        generate_district(**kwargs)


@pytest.mark.parametrize(
    "fields",
    [
        {"towns_streets": 0},
        {"towns_streets": 24},
        {"communities_per_town": 0},
        {"grids_per_community": 1000},
        {"microgrids_per_grid": 2.5},
    ],
)
def test_demo_size_validates_fields(fields):
    with pytest.raises(ValueError):
        DemoSize(**fields)
