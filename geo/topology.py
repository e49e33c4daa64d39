"""Validation of boundary change sets: each geometry on its own, then each family (a parent and
its children) as the map would be after the change.

Semantics, decided once:
- Geometries arrive as GeoJSON (RFC 7946, lon/lat). They must be 2-D Polygon/MultiPolygon with
  closed rings, coordinates in range, valid (OGC) and within a vertex limit. Invalid ones are
  repaired only on request (`make_valid`, polygonal parts kept), and the repair is reported.
- Metric checks run in a local transverse Mercator frame centred on the family (scale error
  below 1e-4 within 50 km), never in degrees.
- Before comparing siblings, coordinates are snapped to a grid of `snap_m` metres: shared edges
  that differ by float noise must not be flagged (raw comparisons report thousands of slivers).
- Overlap: the intersection of two siblings, after snapping, larger than `overlap_m2` and wider
  than twice `snap_m` (a sliver that vanishes when eroded by `snap_m` is noise: snapping a
  T-junction on a 200 m edge alone can leave a 3 m² sliver a few centimetres wide).
- Gap: a part of the parent covered by no child, with the same area and width tests; only for
  parents that have children at all (a leaf has nothing to tile it).
- Outside the parent: a child farther than `parent_m` metres outside its parent.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyproj
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from geo.crs import gcj02_to_wgs84

POLYGONAL = ("Polygon", "MultiPolygon")
# Input systems a boundary file may declare; CGCS2000 equals WGS-84 at this scale.
BOUNDARY_CRS = ("wgs84", "cgcs2000", "gcj02")


@dataclass(frozen=True)
class Tolerances:
    """Snapping and tolerances of the checks, in metres (values: config.py, BOUNDARY_*)."""

    snap_m: float
    overlap_m2: float
    gap_m2: float
    parent_m: float
    max_vertices: int


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a change set, named by a stable `kind`."""

    code: str | None
    kind: str
    detail: str
    location: tuple[float, float] | None = None
    other: str | None = None
    area_m2: float | None = None
    severity: str = "error"

    def as_dict(self) -> dict:
        """JSON-ready form, without empty members."""
        result = {"code": self.code, "kind": self.kind, "detail": self.detail}
        if self.location is not None:
            result["location"] = {"lon": self.location[0], "lat": self.location[1]}
        if self.other is not None:
            result["other"] = self.other
        if self.area_m2 is not None:
            result["area_m2"] = round(self.area_m2, 2)
        if self.severity != "error":
            result["severity"] = self.severity
        return result


@dataclass
class ParsedBoundary:
    geometry: MultiPolygon | None
    problems: list[Problem] = field(default_factory=list)


class LocalMetricFrame:
    """A transverse Mercator frame in metres centred on a point, and back."""

    def __init__(self, lon: float, lat: float) -> None:
        proj = f"+proj=tmerc +lat_0={lat} +lon_0={lon} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
        self._forward = pyproj.Transformer.from_crs("EPSG:4326", proj, always_xy=True)
        self._inverse = pyproj.Transformer.from_crs(proj, "EPSG:4326", always_xy=True)

    @classmethod
    def around(cls, geometry: BaseGeometry) -> "LocalMetricFrame":
        """A frame centred on a geometry."""
        centre = geometry.centroid
        return cls(centre.x, centre.y)

    def to_metric(self, geometry: BaseGeometry) -> BaseGeometry:
        """lon/lat → metres."""
        return shapely.transform(geometry, lambda xy: _apply(self._forward, xy))

    def to_lonlat(self, geometry: BaseGeometry) -> BaseGeometry:
        """metres → lon/lat."""
        return shapely.transform(geometry, lambda xy: _apply(self._inverse, xy))


def _apply(transformer: pyproj.Transformer, xy: np.ndarray) -> np.ndarray:
    x, y = transformer.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])


def _rings(geometry: dict) -> Iterable[list]:
    polygons = (
        [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    )
    for polygon in polygons:
        yield from polygon


def _raw_problems(code: str | None, geometry: object) -> list[Problem]:
    """Problems visible in the raw GeoJSON before Shapely sees it."""
    if not isinstance(geometry, dict) or "type" not in geometry:
        return [Problem(code, "invalid_geometry", "The feature has no GeoJSON geometry.")]
    kind = geometry["type"]
    if kind not in POLYGONAL:
        return [Problem(code, "not_polygonal", f"Expected Polygon or MultiPolygon, got {kind}.")]
    try:
        rings = list(_rings(geometry))
        points = [point for ring in rings for point in ring]
    except (KeyError, TypeError):
        return [Problem(code, "invalid_geometry", "Malformed coordinates.")]
    if not rings or not points:
        return [Problem(code, "empty_geometry", "The geometry has no coordinates.")]
    problems = []
    if any(not isinstance(p, list | tuple) or len(p) < 2 for p in points):
        return [Problem(code, "invalid_geometry", "Each position needs longitude and latitude.")]
    if any(len(p) > 2 for p in points):
        problems.append(Problem(code, "three_d", "Coordinates must be 2-D (lon, lat)."))
    if any(not all(isinstance(v, int | float) for v in p[:2]) for p in points):
        return [Problem(code, "invalid_geometry", "Coordinates must be numbers.")]
    if any(len(ring) < 4 or list(ring[0][:2]) != list(ring[-1][:2]) for ring in rings):
        problems.append(
            Problem(code, "unclosed_ring", "Every ring needs 4+ positions, first equal to last.")
        )
    lons = [p[0] for p in points]
    lats = [p[1] for p in points]
    if any(abs(v) > 90 for v in lats) or any(abs(v) > 180 for v in lons):
        swapped = all(abs(v) <= 90 for v in lons) and all(abs(v) <= 180 for v in lats)
        kind = "swapped_coordinates" if swapped else "out_of_range"
        problems.append(Problem(code, kind, "Positions must be [longitude, latitude]."))
    return problems


def _to_wgs84(geometry: BaseGeometry, crs: str) -> BaseGeometry:
    if crs != "gcj02":
        return geometry  # wgs84 and cgcs2000 (identical at this scale)
    convert = np.vectorize(gcj02_to_wgs84)
    return shapely.transform(geometry, lambda xy: np.column_stack(convert(xy[:, 0], xy[:, 1])))


def as_multipolygon(geometry: BaseGeometry) -> MultiPolygon:
    """The polygonal parts of a geometry as one MultiPolygon (empty when it has none)."""
    if isinstance(geometry, MultiPolygon):
        return geometry
    if isinstance(geometry, Polygon):
        return MultiPolygon([geometry])
    polygons = [g for g in shapely.get_parts(geometry) if isinstance(g, Polygon | MultiPolygon)]
    parts = [p for g in polygons for p in shapely.get_parts(g)]
    return MultiPolygon(parts)


def parse_boundary(
    code: str | None,
    geometry: object,
    *,
    crs: str = "wgs84",
    repair: bool = False,
    tolerances: Tolerances,
) -> ParsedBoundary:
    """A feature's geometry as a valid WGS-84 MultiPolygon, or the problems that prevent it."""
    problems = _raw_problems(code, geometry)
    if problems:
        return ParsedBoundary(None, problems)
    parsed = _to_wgs84(shape(geometry), crs)
    vertices = shapely.get_num_coordinates(parsed)
    if vertices > tolerances.max_vertices:
        detail = f"{vertices} vertices; at most {tolerances.max_vertices} per area."
        return ParsedBoundary(None, [Problem(code, "too_many_vertices", detail)])
    if parsed.is_empty:
        return ParsedBoundary(None, [Problem(code, "empty_geometry", "The geometry is empty.")])
    if parsed.is_valid:
        if parsed.area == 0:
            return ParsedBoundary(None, [Problem(code, "empty_geometry", "It has no area.")])
        return ParsedBoundary(as_multipolygon(parsed))
    reason = shapely.is_valid_reason(parsed)
    location = _reason_location(reason)
    if not repair:
        detail = f"Invalid geometry: {reason}. Send repair=true to have it repaired."
        return ParsedBoundary(None, [Problem(code, "invalid_geometry", detail, location)])
    repaired = as_multipolygon(shapely.make_valid(parsed, method="structure"))
    if repaired.is_empty:
        return ParsedBoundary(None, [Problem(code, "invalid_geometry", f"Unrepairable: {reason}.")])
    # What the repair changed: the area between the input's outline and the repaired shape.
    frame = LocalMetricFrame.around(repaired)
    change_m2 = frame.to_metric(shapely.symmetric_difference(parsed.buffer(0), repaired)).area
    note = Problem(
        code,
        "repaired",
        f"Repaired ({reason}); area changed by {change_m2:.1f} m², {len(repaired.geoms)} part(s).",
        location,
        area_m2=change_m2,
        severity="warning",
    )
    return ParsedBoundary(repaired, [note])


def _reason_location(reason: str) -> tuple[float, float] | None:
    # GEOS reasons end with "[x y]".
    if "[" not in reason:
        return None
    try:
        x, y = reason[reason.rindex("[") + 1 : reason.rindex("]")].split()[:2]
        return float(x), float(y)
    except ValueError:
        return None


def family_problems(
    parent_code: str,
    parent: MultiPolygon,
    children: dict[str, MultiPolygon],
    *,
    changed: set[str],
    parent_changed: bool,
    tolerances: Tolerances,
    frame: LocalMetricFrame | None = None,
) -> list[Problem]:
    """Containment, sibling overlaps and gaps of one parent and its children after a change.

    `frame` lets a caller checking many families share one metric frame (building one costs
    milliseconds); by default the frame is centred on the parent.
    """
    if not children:
        return []
    frame = frame or LocalMetricFrame.around(parent)
    grid = tolerances.snap_m
    metric_parent = on_grid(frame.to_metric(parent), grid)
    codes = sorted(children)
    metric = [on_grid(frame.to_metric(children[c]), grid) for c in codes]
    checked = set(codes) if parent_changed else changed
    problems = _outside_parent(
        frame, parent_code, metric_parent, codes, metric, checked, tolerances
    )
    problems += _overlaps(frame, codes, metric, checked, tolerances)
    problems += _gaps(frame, parent_code, metric_parent, metric, tolerances)
    return problems


def on_grid(geometry: BaseGeometry, grid: float) -> BaseGeometry:
    """A geometry snapped to a grid of `grid` units, valid."""
    try:
        return shapely.set_precision(geometry, grid)
    except shapely.errors.GEOSException:
        # GEOS 3.14 fails on some valid shapes ("unable to assign free hole to a shell"): round
        # the vertices alone, then repair what the rounding broke.
        rounded = shapely.set_precision(geometry, grid, mode="pointwise")
        return as_multipolygon(shapely.make_valid(rounded))


def _outside_parent(frame, parent_code, parent, codes, metric, checked, tolerances):
    problems = []
    allowed = parent.buffer(tolerances.parent_m)
    for code, geom in zip(codes, metric, strict=True):
        if code not in checked:
            continue
        outside = shapely.difference(geom, allowed)
        if outside.area > 0:
            spot = frame.to_lonlat(outside.representative_point())
            detail = f"{outside.area:.1f} m² lie outside parent {parent_code}."
            problems.append(
                Problem(code, "outside_parent", detail, (spot.x, spot.y), parent_code, outside.area)
            )
    return problems


def _overlaps(frame, codes, metric, checked, tolerances):
    problems = []
    tree = shapely.STRtree(metric)
    left, right = tree.query(metric, predicate="intersects")
    for i, j in zip(left, right, strict=True):
        if i >= j or (codes[i] not in checked and codes[j] not in checked):
            continue
        shared = shapely.intersection(metric[i], metric[j])
        if significant(shared, tolerances.overlap_m2, tolerances.snap_m):
            spot = frame.to_lonlat(shared.representative_point())
            detail = f"{codes[i]} and {codes[j]} overlap by {shared.area:.1f} m²."
            problems.append(
                Problem(codes[i], "overlap", detail, (spot.x, spot.y), codes[j], shared.area)
            )
    return problems


def significant(piece: BaseGeometry, min_area_m2: float, snap_m: float) -> bool:
    """A metric piece larger than min_area_m2 and no sliver (it survives erosion by snap_m)."""
    return piece.area > min_area_m2 and not piece.buffer(-snap_m).is_empty


def _gaps(frame, parent_code, parent, metric, tolerances):
    uncovered = shapely.difference(parent, shapely.union_all(metric, grid_size=tolerances.snap_m))
    problems = []
    for piece in shapely.get_parts(uncovered):
        if significant(piece, tolerances.gap_m2, tolerances.snap_m):
            spot = frame.to_lonlat(piece.representative_point())
            detail = f"{piece.area:.1f} m² of {parent_code} are covered by none of its children."
            problems.append(
                Problem(parent_code, "gap", detail, (spot.x, spot.y), area_m2=piece.area)
            )
    return problems
