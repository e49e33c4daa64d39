"""Boundary editing operations: split, merge, move a shared edge, redraw, create and retire.

Each operation reads an excerpt of the current map (a parent, its children and all their
descendants) and returns the new shapes of the areas it changes, so that the family still tiles
its parent and every level below still tiles the level above. It never writes anything: the
caller turns the result into an ordinary change set, validated like an uploaded one.

Decisions, made once:
- Geometry is computed in lon/lat (WGS-84) with exact set operations, so neighbours share the
  very vertices they shared before and the new ones; only measuring (lengths, areas, snapping
  distances, slivers) happens in a local metric frame.
- Drawn input (a split line, a new edge, a redrawn shape) first has every vertex within
  `snap_m` metres of a vertex of the areas around it moved onto that vertex, so a line drawn
  along a neighbour's corner meets it exactly.
- Two areas are neighbours when their outlines run together for at least MIN_SHARED_EDGE_M:
  touching at a point is not sharing an edge.
- A sliver (a piece that vanishes when eroded by the validation snap, or smaller than the gap
  tolerance) is never left as an area or a gap of its own: it goes to the neighbour sharing
  the longest edge with it.
- split: the pieces are the parts the line cuts the area into (3+ for a line crossing it
  more than once), largest first; the largest keeps the code unless the caller names the
  pieces. Parts of a multi-part area the line does not cut stay with the largest piece.
- merge: the union of adjacent siblings; the lowest code survives unless the caller names one.
- move_edge: the new line must cross the union of the two neighbours from outline to outline;
  each piece goes to the neighbour that owned most of the piece's outline (a piece enclosed
  by a ring line goes to the neighbour that got no other piece).
- redraw/create: the new shape, clipped to the parent, takes from the siblings what it
  overlaps (a sibling left with nothing is retired); land a redraw gives up goes to the
  sibling sharing the longest edge with it, and land that touches no sibling is refused
  (`gap_left`): nobody would govern it.
- retire: the area is merged into the sibling sharing the longest edge with it (or the one
  named).
- Below the edited level: a child keeps its code while its largest part stays in its parent;
  a child whose largest part lands in another parent moves there under a new code; the other
  parts of a cut child join the child of their new parent they share the longest edge with
  (or become a child of their own when they touch none). New codes continue the parent's
  numbering after every code it ever used: codes are never reused.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from geo.codes import child_code, level_of_code
from geo.topology import LocalMetricFrame, Tolerances, as_multipolygon, significant

MIN_SHARED_EDGE_M = 1.0
DEFAULT_SNAP_M = 1.0
# Metres per degree of latitude: turns a metric tolerance into a (slightly smaller) one in degrees.
METRES_PER_DEGREE = 111_320.0
_SEGMENT = 3


class EditRefused(ValueError):
    """An operation that cannot be carried out as asked, named by a stable `kind`."""

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        location: tuple[float, float] | None = None,
        codes: Sequence[str] = (),
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.location = location
        self.codes = list(codes)


@dataclass
class MapExcerpt:
    """The current map an edit reads: a parent, its children and their descendants (by code),
    and every code ever used below the parent (retired ones too: codes are never reused)."""

    parent: str
    areas: dict[str, MultiPolygon]
    taken: set[str] = field(default_factory=set)

    def children(self, code: str) -> list[str]:
        """Current children of an area, by code."""
        length = len(code) + _SEGMENT
        return sorted(c for c in self.areas if len(c) == length and c.startswith(code))


@dataclass
class Edit:
    """The result: new shapes (None = retired), where each new code came from, and the codes of
    the operation's own pieces (in the order the operation defines)."""

    changes: dict[str, MultiPolygon | None]
    sources: dict[str, str]
    pieces: list[str]


@dataclass
class _Work:
    excerpt: MapExcerpt
    tolerances: Tolerances
    snap_m: float
    frame: LocalMetricFrame
    taken: set[str]
    sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def on(cls, excerpt: MapExcerpt, tolerances: Tolerances, snap_m: float) -> "_Work":
        if excerpt.parent not in excerpt.areas:
            raise EditRefused("unknown_area", f"No current area {excerpt.parent}.")
        frame = LocalMetricFrame.around(excerpt.areas[excerpt.parent])
        taken = set(excerpt.taken) | set(excerpt.areas)
        return cls(excerpt, tolerances, snap_m, frame, taken)

    def metric(self, geometry: BaseGeometry) -> BaseGeometry:
        return self.frame.to_metric(geometry)

    def significant(self, geometry: BaseGeometry) -> bool:
        """Not a sliver: larger than the gap tolerance and wider than the validation snap."""
        t = self.tolerances
        return significant(self.metric(geometry), t.gap_m2, t.snap_m)

    def shared_length(self, a: BaseGeometry, b: BaseGeometry) -> float:
        """Metres of a's outline that run along b (within the validation snap)."""
        # Selected in lon/lat, measured in metres: a straight lon/lat segment is slightly
        # curved in the metric frame (metres off over kilometres), so a buffer there would
        # miss an edge that follows the segment exactly.
        near_b = b.buffer(max(self.tolerances.snap_m, 1e-3) / METRES_PER_DEGREE)
        return self.metric(shapely.intersection(a.boundary, near_b)).length

    def spot(self, geometry: BaseGeometry) -> tuple[float, float]:
        point = geometry.representative_point()
        return point.x, point.y

    def area(self, code: str) -> MultiPolygon:
        if code not in self.excerpt.areas:
            raise EditRefused("unknown_area", f"No current area {code}.", codes=[code])
        return self.excerpt.areas[code]

    def siblings_of(self, codes: Iterable[str]) -> str:
        """The common parent of codes that must be current siblings under the excerpt's parent."""
        codes = list(codes)
        for code in codes:
            self.area(code)
        parents = {code[:-_SEGMENT] for code in codes}
        if parents != {self.excerpt.parent} or len(set(codes)) != len(codes):
            detail = "The areas must be distinct children of one parent."
            raise EditRefused("not_siblings", detail, codes=codes)
        return self.excerpt.parent

    def new_code(self, parent: str) -> str:
        """The next child code of parent after every one it ever used."""
        length = len(parent) + _SEGMENT
        used = [int(c[-_SEGMENT:]) for c in self.taken if len(c) == length and c.startswith(parent)]
        number = max(used, default=0) + 1
        if number > 999:
            raise EditRefused("no_free_code", f"{parent} has used all 999 child codes.")
        code = child_code(parent, number)
        self.taken.add(code)
        return code

    def named_code(self, code: str, parent: str, *, allowed: Iterable[str] = ()) -> str:
        """A code the caller chose: a free child code of parent (or one of `allowed`)."""
        if code in allowed:
            return code
        try:
            level_of_code(code)
        except ValueError as error:
            raise EditRefused("invalid_code", str(error), codes=[code]) from None
        if code[:-_SEGMENT] != parent:
            detail = f"{code} is not a child code of {parent}."
            raise EditRefused("invalid_code", detail, codes=[code])
        if code in self.taken:
            detail = f"{code} is in use or was used before; codes are never reused."
            raise EditRefused("code_taken", detail, codes=[code])
        self.taken.add(code)
        return code

    def snap(self, geometry: BaseGeometry) -> BaseGeometry:
        """Move drawn vertices within snap_m metres of a vertex of any area of the excerpt
        (children too, so that a line drawn along a child's edge follows it) onto it."""
        near = geometry.envelope.buffer(1e-4)
        references = [g for g in self.excerpt.areas.values() if g.intersects(near)]
        reference = shapely.get_coordinates(references)
        if self.snap_m <= 0 or len(reference) == 0:
            return geometry
        reference_m = shapely.get_coordinates(self.metric(shapely.multipoints(reference)))
        tree = shapely.STRtree(shapely.points(reference_m))

        def move(xy):
            drawn_m = shapely.get_coordinates(self.metric(shapely.multipoints(xy)))
            hits = tree.query_nearest(
                shapely.points(drawn_m), max_distance=self.snap_m, all_matches=False
            )
            moved = xy.copy()
            moved[hits[0]] = reference[hits[1]]
            return moved

        return shapely.transform(geometry, move)

    def without_noise_holes(self, geometry: BaseGeometry) -> MultiPolygon:
        """Drop interior rings that are slivers (float noise between parts just unioned)."""
        polygons = []
        for polygon in shapely.get_parts(as_multipolygon(geometry)):
            holes = [r for r in polygon.interiors if self.significant(Polygon(r))]
            polygons.append(Polygon(polygon.exterior, holes))
        return MultiPolygon(polygons)

    def longest_neighbour(self, piece: BaseGeometry, candidates: dict) -> str | None:
        """The candidate sharing the longest edge with piece, or None when none shares one."""
        best, best_length = None, 0.0
        for code in sorted(candidates):
            geometry = candidates[code]
            if geometry is None or geometry.is_empty or geometry.distance(piece) > 1e-6:
                continue
            length = self.shared_length(piece, geometry)
            if length > best_length:
                best, best_length = code, length
        return best if best_length >= MIN_SHARED_EDGE_M else None


# --- the operations ------------------------------------------------------------------------


def split(
    excerpt: MapExcerpt,
    code: str,
    line: LineString,
    *,
    codes: Sequence[str] | None = None,
    tolerances: Tolerances,
    snap_m: float = DEFAULT_SNAP_M,
) -> Edit:
    """Cut an area along a drawn line into two or more pieces (largest first)."""
    work = _Work.on(excerpt, tolerances, snap_m)
    parent = work.siblings_of([code])
    area = work.area(code)
    line = work.snap(_line(line))
    faces = _faces(work, area, line)
    pieces = _split_pieces(work, area, line, faces)
    if codes is None:
        named = [code, *(work.new_code(parent) for _ in pieces[1:])]
    else:
        if len(codes) != len(pieces):
            detail = f"The line cuts {code} into {len(pieces)} pieces; {len(codes)} codes given."
            raise EditRefused("wrong_piece_count", detail, codes=list(codes))
        named = [work.named_code(c, parent, allowed=[code]) for c in codes]
        if len(set(named)) != len(named):
            raise EditRefused("duplicate_code", "A code is given twice.", codes=named)
    top: dict[str, MultiPolygon | None] = dict(zip(named, pieces, strict=True))
    if code not in top:
        top[code] = None
    work.sources.update({c: code for c in named if c != code})
    return _finish(work, top, named)


def merge(
    excerpt: MapExcerpt,
    codes: Sequence[str],
    *,
    keep: str | None = None,
    tolerances: Tolerances,
) -> Edit:
    """Join adjacent siblings into one area (the lowest code, or `keep`, survives)."""
    work = _Work.on(excerpt, tolerances, 0)
    if len(set(codes)) < 2:
        raise EditRefused("too_few_areas", "A merge needs two or more areas.", codes=list(codes))
    parent = work.siblings_of(codes)
    _check_connected(work, list(codes))
    survivor = work.named_code(keep, parent, allowed=codes) if keep else min(codes)
    union = work.without_noise_holes(shapely.union_all([work.area(c) for c in codes]))
    top: dict[str, MultiPolygon | None] = {c: None for c in codes}
    top[survivor] = union
    if survivor not in codes:
        work.sources[survivor] = min(codes)
    return _finish(work, top, [survivor])


def move_edge(
    excerpt: MapExcerpt,
    codes: Sequence[str],
    line: LineString,
    *,
    tolerances: Tolerances,
    snap_m: float = DEFAULT_SNAP_M,
) -> Edit:
    """Replace the edge two neighbours share by a drawn line; both change together."""
    work = _Work.on(excerpt, tolerances, snap_m)
    if len(codes) != 2:
        raise EditRefused("not_two_areas", "Name exactly two neighbours.", codes=list(codes))
    a, b = codes
    work.siblings_of(codes)
    _check_connected(work, [a, b])
    shapes = {a: work.area(a), b: work.area(b)}
    region = work.without_noise_holes(shapely.union(shapes[a], shapes[b]))
    line = work.snap(_line(line))
    faces = _faces(work, region, line)
    if len(faces) < 2:
        raise _not_dividing(work, region, line)
    owners = _face_owners(work, faces, shapes, region)
    result = {}
    for code in codes:
        mine = [f for f, owner in zip(faces, owners, strict=True) if owner == code]
        if not mine:
            detail = f"After the move {code} would have no land left."
            raise EditRefused("area_vanishes", detail, codes=[code])
        result[code] = work.without_noise_holes(shapely.union_all(mine))
    return _finish(work, dict(result), list(codes))


def redraw(
    excerpt: MapExcerpt,
    code: str,
    geometry: BaseGeometry,
    *,
    tolerances: Tolerances,
    snap_m: float = DEFAULT_SNAP_M,
) -> Edit:
    """Give an area a new shape; its siblings give up what it now covers and take what it
    gives up."""
    work = _Work.on(excerpt, tolerances, snap_m)
    work.siblings_of([code])
    return _reshape(work, code, work.area(code), geometry)


def create(
    excerpt: MapExcerpt,
    geometry: BaseGeometry,
    *,
    code: str | None = None,
    tolerances: Tolerances,
    snap_m: float = DEFAULT_SNAP_M,
) -> Edit:
    """A new child of the excerpt's parent, taking from its siblings what it covers."""
    work = _Work.on(excerpt, tolerances, snap_m)
    parent = excerpt.parent
    try:
        new = work.named_code(code, parent) if code else work.new_code(parent)
    except ValueError as error:
        if isinstance(error, EditRefused):
            raise
        raise EditRefused("invalid_code", str(error), codes=[parent]) from None
    return _reshape(work, new, None, geometry)


def retire(
    excerpt: MapExcerpt,
    code: str,
    *,
    into: str | None = None,
    tolerances: Tolerances,
) -> Edit:
    """Retire an area by merging it into a neighbour (the one sharing the longest edge, or
    `into`)."""
    work = _Work.on(excerpt, tolerances, 0)
    work.siblings_of([code])
    if into is None:
        into = work.longest_neighbour(work.area(code), _neighbours(work, code))
        if into is None:
            detail = f"{code} shares no edge with a sibling that could take its land."
            raise EditRefused("no_neighbour", detail, codes=[code])
    return merge(excerpt, [into, code], keep=into, tolerances=tolerances)


# --- helpers of the operations ---------------------------------------------------------------


def _line(line: BaseGeometry) -> LineString:
    if not isinstance(line, LineString) or line.is_empty or line.length == 0:
        raise EditRefused("invalid_line", "The line must be a GeoJSON LineString of 2+ points.")
    return line


def _neighbours(work: _Work, code: str) -> dict[str, MultiPolygon]:
    """The current siblings of an area that touch it."""
    area = work.area(code)
    return {
        c: work.excerpt.areas[c]
        for c in work.excerpt.children(work.excerpt.parent)
        if c != code and work.excerpt.areas[c].intersects(area)
    }


def _faces(work: _Work, area: MultiPolygon, line: LineString) -> list[Polygon]:
    """The faces of the area's outline noded with the line that lie inside the area."""
    noded = shapely.union_all([area.boundary, line])
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    inside = [f for f in faces if area.contains(f.representative_point())]
    # Largest first, then by position, for a stable answer.
    return sorted(inside, key=lambda f: (-round(work.metric(f).area, 3), f.bounds))


def _not_dividing(work: _Work, area: MultiPolygon, line: LineString) -> EditRefused:
    if not line.intersects(area):
        detail = "The line does not reach the area."
        return EditRefused("line_misses_area", detail, location=work.spot(line))
    if not line.relate_pattern(area, "T********"):
        detail = "The line only touches the area's outline; draw it across the area."
        return EditRefused("line_only_touches", detail, location=work.spot(line))
    detail = "The line does not cut the area apart: draw it from outline to outline."
    return EditRefused("line_does_not_split", detail, location=work.spot(line))


def _split_pieces(work, area, line, faces) -> list[MultiPolygon]:
    # A face the line only touches at a point runs along it for about twice the snap.
    along = 4 * work.tolerances.snap_m
    cut = [f for f in faces if work.shared_length(f, line) > along]
    if len(cut) < 2:
        raise _not_dividing(work, area, line)
    for face in cut:
        if not work.significant(face):
            detail = f"The line cuts off a sliver of {work.metric(face).area:.1f} m²."
            raise EditRefused("piece_too_small", detail, location=work.spot(face))
    uncut = [f for f in faces if not any(f is c for c in cut)]
    pieces = [as_multipolygon(f) for f in cut]
    if uncut:
        pieces[0] = as_multipolygon(shapely.union_all([pieces[0], *uncut]))
    return pieces


def _check_connected(work: _Work, codes: list[str]) -> None:
    """Every area must be reachable from the first through edges of positive length."""
    reached, frontier = {codes[0]}, [codes[0]]
    while frontier:
        current = frontier.pop()
        for other in codes:
            if other not in reached and (
                work.shared_length(work.area(current), work.area(other)) >= MIN_SHARED_EDGE_M
            ):
                reached.add(other)
                frontier.append(other)
    if len(reached) != len(codes):
        apart = sorted(set(codes) - reached)
        detail = f"{', '.join(apart)} share(s) no edge with the others (a point is not an edge)."
        raise EditRefused("not_adjacent", detail, codes=apart)


def _face_owners(work, faces, shapes, region) -> list[str]:
    """For each face, the neighbour that owned most of the face's outer outline."""
    outline = region.boundary
    owners: list[str | None] = []
    for face in faces:
        on_outline = shapely.intersection(face.boundary, outline.buffer(1e-9))
        lengths = {c: work.shared_length(g, on_outline) for c, g in shapes.items()}
        owner = max(sorted(lengths), key=lengths.get)
        owners.append(owner if lengths[owner] > 0 else None)
    for index, owner in enumerate(owners):
        if owner is None:  # enclosed by a ring line: the one that got nothing else
            others = [c for c in shapes if c not in owners]
            owners[index] = others[0] if others else _most_overlap(work, faces[index], shapes)
    return owners


def _most_overlap(work, face, shapes) -> str:
    return max(sorted(shapes), key=lambda c: work.metric(face.intersection(shapes[c])).area)


def _reshape(work: _Work, code: str, old: MultiPolygon | None, drawn: BaseGeometry) -> Edit:
    parent = work.excerpt.areas[work.excerpt.parent]
    siblings = {
        c: work.excerpt.areas[c] for c in work.excerpt.children(work.excerpt.parent) if c != code
    }
    if drawn is None or drawn.geom_type not in ("Polygon", "MultiPolygon") or drawn.is_empty:
        raise EditRefused("invalid_geometry", "The new shape must be a Polygon or MultiPolygon.")
    snapped = work.snap(drawn)
    if not snapped.is_valid:
        snapped = shapely.make_valid(snapped)
    new = as_multipolygon(shapely.intersection(snapped, parent))
    if new.is_empty or not work.significant(new):
        raise EditRefused(
            "empty_geometry", "The new shape covers nothing of the parent.", codes=[code]
        )
    top: dict[str, MultiPolygon | None] = {}
    for sibling, shape in siblings.items():
        if shape.intersects(new):
            rest = as_multipolygon(shapely.difference(shape, new))
            kept = []
            for part in shapely.get_parts(rest):
                if work.significant(part):
                    kept.append(part)
                else:  # a sliver between the new shape and what the sibling keeps
                    new = as_multipolygon(shapely.union(new, part))
            top[sibling] = MultiPolygon(kept) if kept else None
    if old is not None:
        released = shapely.difference(old, new)
        for piece in shapely.get_parts(released):
            if not work.significant(piece):
                new = as_multipolygon(shapely.union(new, piece))
                continue
            current = {c: top.get(c, s) for c, s in siblings.items()}
            taker = work.longest_neighbour(piece, current)
            if taker is None:
                detail = (
                    f"{work.metric(piece).area:.0f} m² that {code} gives up touch no sibling"
                    " that could take them; draw the shape to keep them or redraw a neighbour."
                )
                raise EditRefused("gap_left", detail, location=work.spot(piece), codes=[code])
            top[taker] = as_multipolygon(shapely.union(current[taker], piece))
    top[code] = new
    _settle(work, top, siblings)
    return _finish(work, top, [code])


def _settle(work: _Work, top: dict, siblings: dict) -> None:
    """Hand sliver parts of changed areas to the sibling sharing the longest edge."""
    for code in sorted(top):
        shape = top[code]
        if shape is None or shapely.get_num_geometries(shape) < 2:
            continue
        for part in list(shapely.get_parts(shape)):
            if work.significant(part):
                continue
            current = {c: top.get(c, siblings.get(c)) for c in {*top, *siblings} if c != code}
            taker = work.longest_neighbour(part, current)
            if taker is not None:
                top[code] = as_multipolygon(shapely.difference(top[code], part))
                top[taker] = as_multipolygon(shapely.union(current[taker], part))


# --- the levels below ------------------------------------------------------------------------


def _finish(work: _Work, top: dict[str, MultiPolygon | None], pieces: list[str]) -> Edit:
    """Drop top-level entries that did not change, then re-tile every level below."""
    changes: dict[str, MultiPolygon | None] = {}
    level = {}
    for code, shape in top.items():
        shape = None if shape is None else _clean(shape)
        old = work.excerpt.areas.get(code)
        if shape is not None and old is not None and _same(work, old, shape):
            continue
        changes[code] = shape
        level[code] = shape
    while level:
        level = _retile_children(work, level, changes)
    return Edit(changes, dict(work.sources), pieces)


def _retile_children(work: _Work, parents: dict, changes: dict) -> dict:
    """Fit the current children of changed parents into the parents' new shapes; returns the
    children that changed, for the next level."""
    old_children = [c for p in sorted(parents) for c in work.excerpt.children(p)]
    if not old_children:
        return {}
    new_parents = {p: g for p, g in parents.items() if g is not None}
    placed: dict[str, dict[str, BaseGeometry]] = {p: {} for p in new_parents}
    leftovers = []
    moved_away = []
    for child in old_children:
        shape = work.excerpt.areas[child]
        pieces = []
        for parent, parent_shape in new_parents.items():
            if parent_shape.intersects(shape):
                piece = shapely.intersection(shape, parent_shape)
                polygonal = as_multipolygon(piece)
                if not polygonal.is_empty and work.significant(polygonal):
                    pieces.append((work.metric(polygonal).area, parent, polygonal))
        pieces.sort(key=lambda item: (-item[0], item[1]))
        if not pieces:
            moved_away.append(child)
            continue
        _, parent, piece = pieces[0]
        if parent == child[:-_SEGMENT]:
            code = child
        else:
            code = work.new_code(parent)
            work.sources[code] = child
            moved_away.append(child)
        placed[parent][code] = piece
        leftovers += [(parent, p, child) for _, parent, p in pieces[1:]]
    for parent, piece, origin in leftovers:
        taker = work.longest_neighbour(piece, placed[parent])
        if taker is None:
            code = work.new_code(parent)
            work.sources[code] = origin
            placed[parent][code] = piece
        else:
            placed[parent][taker] = shapely.union(placed[parent][taker], piece)
    for parent, kids in placed.items():
        if kids:
            _fill(work, new_parents[parent], kids)
    changed = {}
    for child in moved_away:
        changes[child] = None
        changed[child] = None
    for kids in placed.values():
        for code, shape in kids.items():
            shape = _clean(as_multipolygon(shape))
            old = work.excerpt.areas.get(code)
            if old is not None and _same(work, old, shape):
                continue
            changes[code] = shape
            changed[code] = shape
    return changed


def _fill(work: _Work, parent: MultiPolygon, kids: dict[str, BaseGeometry]) -> None:
    """Give the parts of a parent no child covers to the child sharing the longest edge."""
    uncovered = shapely.difference(parent, shapely.union_all(list(kids.values())))
    for part in shapely.get_parts(as_multipolygon(uncovered)):
        taker = work.longest_neighbour(part, kids)
        if taker is not None:
            kids[taker] = shapely.union(kids[taker], part)
    _settle(work, kids, {})


def _clean(shape: MultiPolygon) -> MultiPolygon:
    """The shape as a valid MultiPolygon."""
    shape = as_multipolygon(shape)
    if not shape.is_valid:
        shape = as_multipolygon(shapely.make_valid(shape))
    return shape


def _same(work: _Work, old: MultiPolygon, new: MultiPolygon) -> bool:
    """Equal, or differing by slivers only: such a change is noise, not an edit."""
    if old.equals(new):
        return True
    difference = shapely.symmetric_difference(old, new)
    return all(not work.significant(p) for p in shapely.get_parts(as_multipolygon(difference)))
