"""Deterministic demo area tree of 鄞州区 (Yinzhou district, Ningbo) for seeding and tests.

The shapes are invented, only the names and the code scheme are realistic: an irregular district
outline about 35 km x 30 km around (121.55, 29.82) with one enclave hole, split into towns and
streets, communities, grids and micro-grids (see ``geo.codes`` for the code scheme).

How the exact tiling is achieved. Each level is a Voronoi partition of seed points scattered
inside the parent and clipped to it, computed in floating point in a local kilometre plane. The
floating-point pieces never leave this module, because clipping each child separately and then
rounding coordinates to 1e-7 degrees can leave slivers between siblings and between a child and
its parent. Instead, all boundary lines of all levels are converted to lon/lat and noded together
once with snap rounding on the 1e-7 degree grid (about 1 cm); polygonizing that line network
gives "faces" whose shared edges have identical vertices. Every face is labelled with the
micro-grid (and so the grid, community and town) whose seed is nearest at each level, which is
the same as point-in-Voronoi-cell, and every area is the coverage union of its faces. Children
therefore tile their parent exactly, the enclave is a hole at every level and no face is left
unassigned, however the snap rounding moved lines around.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import shapely

from geo.codes import child_code
from geo.levels import LEVELS as LEVEL_REGISTRY

# The levels of geo.levels, root first; DemoSize has one branching factor per level below it.
LEVELS = LEVEL_REGISTRY.names
DISTRICT_CODE = "330212"
DISTRICT_NAME = "鄞州区"
CENTER_LON = 121.55
CENTER_LAT = 29.82
# Output coordinates are multiples of this many degrees, about 1 cm on the ground.
GRID_SIZE = 1e-7

STREET_NAMES = (
    "中河街道",
    "首南街道",
    "钟公庙街道",
    "下应街道",
    "潘火街道",
    "白鹤街道",
    "百丈街道",
    "东胜街道",
    "明楼街道",
    "东柳街道",
    "东郊街道",
    "福明街道",
    "梅墟街道",
)
TOWN_NAMES = (
    "姜山镇",
    "邱隘镇",
    "五乡镇",
    "东吴镇",
    "云龙镇",
    "横溪镇",
    "咸祥镇",
    "塘溪镇",
    "瞻岐镇",
    "东钱湖镇",
)
_NAME_CHARS = "华泰兴明安和新福康宁丰盛祥瑞嘉乐云鸿锦平永昌德惠春翠景晨裕桥"
_COMMUNITY_NAME_STEMS = tuple(a + b for a in _NAME_CHARS for b in _NAME_CHARS if a != b)

# Local plane in km: equirectangular around the centre, accurate to well under 1% here.
_KM_PER_DEG_LAT = 110.574
_KM_PER_DEG_LON = 111.320 * math.cos(math.radians(CENTER_LAT))
_SEMI_AXES_KM = (17.5, 15.0)
_ENCLAVE_RADIUS_KM = 0.75
# Streets are the urban part of the district, which lies towards Ningbo city in the north-west.
_URBAN_CORE_KM = (-0.35 * _SEMI_AXES_KM[0], 0.35 * _SEMI_AXES_KM[1])
# Salts keep the random streams of different purposes independent of each other.
_SALT_OUTLINE, _SALT_SEEDS, _SALT_NAMES = 1, 2, 3


@dataclass(frozen=True)
class DemoSize:
    """Branching factors of the demo tree: every parent gets exactly this many children."""

    towns_streets: int = 23
    communities_per_town: int = 3
    grids_per_community: int = 2
    microgrids_per_grid: int = 3

    def __post_init__(self) -> None:
        limits = {
            "towns_streets": len(STREET_NAMES) + len(TOWN_NAMES),
            "communities_per_town": min(999, len(_COMMUNITY_NAME_STEMS)),
            "grids_per_community": 999,
            "microgrids_per_grid": 999,
        }
        for field, limit in limits.items():
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
                raise ValueError(f"{field} must be an int from 1 to {limit}, got {value!r}")

    @property
    def branching(self) -> tuple[int, int, int, int]:
        """Children per parent for the town, community, grid and micro-grid levels."""
        return (
            self.towns_streets,
            self.communities_per_town,
            self.grids_per_community,
            self.microgrids_per_grid,
        )


SIZES = {
    "small": DemoSize(),
    "district": DemoSize(
        towns_streets=23, communities_per_town=9, grids_per_community=10, microgrids_per_grid=10
    ),
}


@dataclass(frozen=True)
class DemoArea:
    """One generated area: 3-digit-per-level code, name, level, parent code and boundary."""

    code: str
    name: str
    level: str
    parent_code: str | None
    boundary: shapely.MultiPolygon


def resolve_size(size: str | DemoSize) -> DemoSize:
    """Return the DemoSize for a preset name ("small", "district") or a DemoSize itself."""
    if isinstance(size, DemoSize):
        return size
    try:
        return SIZES[size]
    except (KeyError, TypeError):
        raise ValueError(f"unknown demo size {size!r}, expected one of {sorted(SIZES)}") from None


def count_areas(size: str | DemoSize = "small") -> dict[str, int]:
    """Return the exact number of areas per level that ``generate_district`` yields."""
    counts = {LEVELS[0]: 1}
    total = 1
    for level, n in zip(LEVELS[1:], resolve_size(size).branching, strict=True):
        total *= n
        counts[level] = total
    return counts


def generate_district(*, seed: int = 2024, size: str | DemoSize = "small") -> Iterator[DemoArea]:
    """Yield the demo areas level by level, every parent before its children."""
    # Validate now rather than at the first next(), so bad arguments fail at the call site.
    resolved = resolve_size(size)
    # Negative seeds are refused because numpy seed sequences only take non-negative entropy.
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return _generate(seed, resolved)


def _generate(seed: int, size: DemoSize) -> Iterator[DemoArea]:
    """Compute all faces and labels up front, then build and yield areas one by one."""
    district_km = _district_outline(seed)
    seeds, is_street, lines_km = _seed_tree(seed, size, district_km)
    faces, labels = _label_faces(district_km, lines_km, seeds, size.branching)

    codes: list[list[str]] = [[DISTRICT_CODE]]
    names: list[list[str]] = [[DISTRICT_NAME]]
    codes.append(_town_codes(is_street))
    names.append(_town_names(is_street))
    for depth in range(2, len(LEVELS)):
        per_parent = size.branching[depth - 1]
        codes.append([child_code(parent, n + 1) for parent in codes[-1] for n in range(per_parent)])
        if depth == 2:
            names.append(_community_names(seed, is_street, per_parent))
        else:  # 第N网格, 第N微网格: the level's label
            suffix = LEVEL_REGISTRY[LEVELS[depth]].label
            names.append(
                [f"{parent}第{n + 1}{suffix}" for parent in names[-1] for n in range(per_parent)]
            )

    yield DemoArea(DISTRICT_CODE, DISTRICT_NAME, LEVELS[0], None, _union(faces))
    for depth in range(1, len(LEVELS)):
        per_parent = size.branching[depth - 1]
        groups = _group_faces(faces, labels[depth - 1], len(codes[depth]))
        for index, group in enumerate(groups):
            yield DemoArea(
                codes[depth][index],
                names[depth][index],
                LEVELS[depth],
                codes[depth - 1][index // per_parent],
                _union(group),
            )


def _district_outline(seed: int) -> shapely.Polygon:
    """Return the district in the km plane: a perturbed ellipse with one enclave hole."""
    rng = np.random.default_rng([seed, _SALT_OUTLINE])
    theta = np.linspace(0.0, 2.0 * math.pi, 144, endpoint=False)
    radius = np.ones_like(theta)
    # Few, weak harmonics keep the outline star-shaped and only mildly concave, so clipped
    # Voronoi cells rarely fall apart into several pieces.
    for k in range(2, 8):
        amplitude = rng.uniform(0.015, 0.05) * 2.0 / k
        radius += amplitude * np.cos(k * theta + rng.uniform(0.0, 2.0 * math.pi))
    radius += rng.uniform(-0.008, 0.008, theta.size)
    shell = np.column_stack(
        (_SEMI_AXES_KM[0] * radius * np.cos(theta), _SEMI_AXES_KM[1] * radius * np.sin(theta))
    )

    hole_theta = np.linspace(0.0, 2.0 * math.pi, 24, endpoint=False)
    hole_radius = _ENCLAVE_RADIUS_KM * (1.0 + rng.uniform(-0.15, 0.15, hole_theta.size))
    hole_center = rng.uniform(-0.3, 0.3, 2) * _SEMI_AXES_KM
    hole = hole_center + np.column_stack(
        (hole_radius * np.cos(hole_theta), hole_radius * np.sin(hole_theta))
    )
    return shapely.Polygon(shell, [hole])


def _seed_tree(
    seed: int, size: DemoSize, district_km: shapely.Polygon
) -> tuple[list[np.ndarray], np.ndarray, list[shapely.Geometry]]:
    """Return seeds per level, town street flags and all boundary lines, in the km plane.

    Seed rows are in code order: children of parent i are rows i*k..i*k+k-1, and the towns level
    has streets first (codes 001..), then towns (100..).
    """
    lines = [shapely.LineString(district_km.exterior), shapely.LineString(district_km.interiors[0])]
    parents = [district_km]
    seeds_by_level: list[np.ndarray] = []
    is_street = np.zeros(0, dtype=bool)
    for depth, per_parent in enumerate(size.branching, start=1):
        level_seeds = []
        children = []
        leaf = depth == len(size.branching)
        for index, parent in enumerate(parents):
            rng = np.random.default_rng([seed, _SALT_SEEDS, depth, index])
            points = _relaxed_seeds(rng, parent, per_parent)
            if depth == 1:
                points, is_street = _order_towns(points)
            else:
                points = points[np.argsort(points[:, 0] - points[:, 1], kind="stable")]
            level_seeds.append(points)
            clipped = _voronoi_lines(points, parent)
            if clipped is not None:
                lines.append(clipped)
            if not leaf:
                children.extend(_voronoi_pieces(points, parent))
        seeds_by_level.append(np.concatenate(level_seeds))
        parents = children
    return seeds_by_level, is_street, lines


def _order_towns(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Put the seeds nearest the urban core first (streets), each group north-west first."""
    n_streets = round(len(points) * len(STREET_NAMES) / (len(STREET_NAMES) + len(TOWN_NAMES)))
    n_streets = max(n_streets, len(points) - len(TOWN_NAMES))
    urban_distance = np.hypot(points[:, 0] - _URBAN_CORE_KM[0], points[:, 1] - _URBAN_CORE_KM[1])
    by_distance = np.argsort(urban_distance, kind="stable")
    streets, towns = points[by_distance[:n_streets]], points[by_distance[n_streets:]]
    streets = streets[np.argsort(streets[:, 0] - streets[:, 1], kind="stable")]
    towns = towns[np.argsort(towns[:, 0] - towns[:, 1], kind="stable")]
    flags = np.arange(len(points)) < n_streets
    return np.concatenate([streets, towns]), flags


def _relaxed_seeds(rng: np.random.Generator, parent: shapely.Geometry, k: int) -> np.ndarray:
    """Return k well-spread seed points inside ``parent``, after one Lloyd relaxation step."""
    points = _scatter(rng, parent, k)
    if k < 2:
        return points
    # One Lloyd step makes cell sizes more even, which looks more like real administrative units.
    centroids = shapely.centroid(_voronoi_pieces(points, parent))
    moved = shapely.get_coordinates(centroids)
    # A centroid of a non-convex piece can lie outside the parent; keep the seed then.
    inside = shapely.contains_xy(parent, moved[:, 0], moved[:, 1])
    points[inside] = moved[inside]
    return points


def _scatter(rng: np.random.Generator, parent: shapely.Geometry, k: int) -> np.ndarray:
    """Return k random points inside ``parent`` no closer than a spacing that shrinks if needed."""
    min_x, min_y, max_x, max_y = parent.bounds
    spacing = 0.7 * math.sqrt(parent.area / k)
    shapely.prepare(parent)
    chosen: list[tuple[float, float]] = []
    for _ in range(200):
        xs = rng.uniform(min_x, max_x, 8 * k + 16)
        ys = rng.uniform(min_y, max_y, 8 * k + 16)
        inside = shapely.contains_xy(parent, xs, ys)
        for x, y in zip(xs[inside].tolist(), ys[inside].tolist(), strict=True):
            if all((x - cx) ** 2 + (y - cy) ** 2 >= spacing**2 for cx, cy in chosen):
                chosen.append((x, y))
                if len(chosen) == k:
                    return np.array(chosen)
        spacing *= 0.8
    raise RuntimeError(f"could not place {k} seed points in a parent of area {parent.area} km²")


def _voronoi_pieces(points: np.ndarray, parent: shapely.Geometry) -> np.ndarray:
    """Return the Voronoi cells of ``points`` clipped to ``parent``, in the order of ``points``."""
    if len(points) == 1:
        return np.array([parent])
    cells = shapely.voronoi_polygons(
        shapely.multipoints(points), extend_to=parent.envelope, ordered=True
    )
    return shapely.intersection(shapely.get_parts(cells), parent)


def _voronoi_lines(points: np.ndarray, parent: shapely.Geometry) -> shapely.Geometry | None:
    """Return the Voronoi edges between ``points`` clipped to ``parent``, or None for one point."""
    if len(points) == 1:
        return None
    edges = shapely.voronoi_polygons(
        shapely.multipoints(points), extend_to=parent.envelope, only_edges=True
    )
    return shapely.intersection(edges, parent)


def _label_faces(
    district_km: shapely.Polygon,
    lines_km: list[shapely.Geometry],
    seeds: list[np.ndarray],
    branching: tuple[int, ...],
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Return the snapped lon/lat faces inside the district and their area index per level."""
    lines = np.array(lines_km, dtype=object)
    lonlat_lines = shapely.transform(lines, _km_to_lonlat)
    network = shapely.union_all(lonlat_lines, grid_size=GRID_SIZE)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(network)))

    probes = _lonlat_to_km(shapely.get_coordinates(shapely.point_on_surface(faces)))
    # Faces outside the district are the enclave and any sliver that snap rounding pushed out.
    inside = shapely.contains_xy(district_km, probes[:, 0], probes[:, 1])
    faces, probes = faces[inside], probes[inside]

    labels = []
    parent_index = np.zeros(len(faces), dtype=np.int64)
    for depth, points in enumerate(seeds):
        per_parent = branching[depth]
        candidates = points.reshape(-1, per_parent, 2)[parent_index]
        distance = np.sum((candidates - probes[:, None, :]) ** 2, axis=2)
        parent_index = parent_index * per_parent + np.argmin(distance, axis=1)
        labels.append(parent_index)
    # Checked before anything is yielded: count_areas promises every area is there.
    leaf_faces = np.bincount(parent_index, minlength=len(seeds[-1]))
    if not leaf_faces.all():
        raise RuntimeError(f"{np.count_nonzero(leaf_faces == 0)} demo micro-grids came out empty")
    return faces, labels


def _km_to_lonlat(coords: np.ndarray) -> np.ndarray:
    """Convert (x, y) km-plane coordinates to (lon, lat) degrees."""
    return np.column_stack(
        (CENTER_LON + coords[:, 0] / _KM_PER_DEG_LON, CENTER_LAT + coords[:, 1] / _KM_PER_DEG_LAT)
    )


def _lonlat_to_km(coords: np.ndarray) -> np.ndarray:
    """Convert (lon, lat) degrees to (x, y) km-plane coordinates."""
    return np.column_stack(
        (
            (coords[:, 0] - CENTER_LON) * _KM_PER_DEG_LON,
            (coords[:, 1] - CENTER_LAT) * _KM_PER_DEG_LAT,
        )
    )


def _group_faces(faces: np.ndarray, labels: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Split ``faces`` into ``n_groups`` arrays by label, keeping the faces' order inside groups."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(1, n_groups))
    return np.split(faces[order], bounds)


def _union(faces: np.ndarray) -> shapely.MultiPolygon:
    """Return the union of faces that share edges exactly, as a MultiPolygon."""
    merged = shapely.coverage_union_all(faces)
    if not shapely.is_valid(merged):
        # Not expected for polygonized faces; the slower robust union is a safety net.
        merged = shapely.union_all(faces, grid_size=GRID_SIZE)
    return shapely.multipolygons(shapely.get_parts(merged))


def _town_codes(is_street: np.ndarray) -> list[str]:
    """Return town-level codes: streets 001.. and towns 100.. (GB/T 10114 style)."""
    n_streets = int(is_street.sum())
    codes = [child_code(DISTRICT_CODE, n + 1) for n in range(n_streets)]
    codes += [child_code(DISTRICT_CODE, 100 + n) for n in range(len(is_street) - n_streets)]
    return codes


def _town_names(is_street: np.ndarray) -> list[str]:
    """Return town-level names in code order: street names first, then town names."""
    n_streets = int(is_street.sum())
    return list(STREET_NAMES[:n_streets]) + list(TOWN_NAMES[: len(is_street) - n_streets])


def _community_names(seed: int, is_street: np.ndarray, per_town: int) -> list[str]:
    """Return community names, "…社区" under streets and "…村" under towns, unique per town."""
    names = []
    for index, street in enumerate(is_street.tolist()):
        rng = np.random.default_rng([seed, _SALT_NAMES, index])
        stems = rng.choice(len(_COMMUNITY_NAME_STEMS), size=per_town, replace=False)
        suffix = "社区" if street else "村"
        names.extend(_COMMUNITY_NAME_STEMS[stem] + suffix for stem in stems.tolist())
    return names
