"""Boundary editing operations: every result must still tile, at every level, exactly."""

import functools
import itertools

import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon, box

from geo import edits
from geo.edits import EditRefused, MapExcerpt
from geo.topology import LocalMetricFrame, family_problems
from tests.helpers import TOLERANCES

# The operations at the service's default tolerances.
split, merge, move_edge, redraw, create, retire = (
    functools.partial(operation, tolerances=TOLERANCES)
    for operation in (
        edits.split,
        edits.merge,
        edits.move_edge,
        edits.redraw,
        edits.create,
        edits.retire,
    )
)

LON, LAT = 121.55, 29.82
D = 0.001  # about 100 m
P = "330212001001"  # a community: its children are grids, theirs micro-grids
A, B, C = (f"{P}00{i}" for i in (1, 2, 3))


def xy(x, y):
    return LON + x * D, LAT + y * D


def rect(x0, y0, w=1.0, h=1.0) -> MultiPolygon:
    return MultiPolygon([box(*xy(x0, y0), *xy(x0 + w, y0 + h))])


def line(*points) -> LineString:
    return LineString([xy(x, y) for x, y in points])


def row() -> dict:
    """A 3 x 1 row of grids A B C; A and B have two micro-grids each, C none."""
    return {
        P: rect(0, 0, 3),
        A: rect(0, 0),
        B: rect(1, 0),
        C: rect(2, 0),
        A + "001": rect(0, 0, 0.5),
        A + "002": rect(0.5, 0, 0.5),
        B + "001": rect(1, 0, 0.5),
        B + "002": rect(1.5, 0, 0.5),
    }


def after(areas: dict, edit) -> dict:
    result = dict(areas)
    for code, shape in edit.changes.items():
        if shape is None:
            result.pop(code, None)
        else:
            result[code] = shape
    return result


def assert_tiles(areas: dict) -> None:
    """Every family tiles its parent: no problem at the validation's tolerances, and the
    overlaps and gaps measured exactly are below a square centimetre."""
    frame = LocalMetricFrame(LON, LAT)
    for parent in areas:
        kids = {c: g for c, g in areas.items() if len(c) == len(parent) + 3 and c[:-3] == parent}
        if not kids:
            continue
        problems = family_problems(
            parent,
            areas[parent],
            kids,
            changed=set(kids),
            parent_changed=True,
            tolerances=TOLERANCES,
        )
        assert problems == [], problems
        union = shapely.union_all(list(kids.values()))
        assert frame.to_metric(shapely.symmetric_difference(union, areas[parent])).area < 1e-4
        for a, b in itertools.combinations(kids.values(), 2):
            assert frame.to_metric(shapely.intersection(a, b)).area < 1e-4
        for shape in kids.values():
            assert shape.is_valid and isinstance(shape, MultiPolygon)


def m2(geometry) -> float:
    return LocalMetricFrame(LON, LAT).to_metric(geometry).area


def test_split_in_two_keeps_the_code_for_the_larger_piece_and_recodes_children():
    areas = row()
    edit = split(MapExcerpt(P, areas, taken={f"{P}004"}), A, line((0.3, -0.2), (0.3, 1.2)))
    assert edit.pieces == [A, f"{P}005"]  # 004 was used before: codes are never reused
    result = after(areas, edit)
    assert_tiles(result)
    assert m2(result[A]) == pytest.approx(0.7 * m2(areas[A]), rel=1e-6)
    # micro-grid 001 was cut: its larger part (0-0.3) went to the new grid under a new code,
    # its smaller part joined its neighbour 002
    assert edit.changes[A + "001"] is None
    assert edit.sources == {f"{P}005": A, f"{P}005001": A + "001"}
    assert m2(result[A + "002"]) == pytest.approx(0.7 * m2(areas[A]), rel=1e-6)


def test_a_line_crossing_twice_gives_three_pieces_and_names_can_be_given():
    areas = row()
    zigzag = line((2.2, -0.1), (2.2, 1.1), (2.5, 1.1), (2.5, -0.1))  # crosses C twice
    edit = split(MapExcerpt(P, areas), C, zigzag, codes=[f"{P}007", C, f"{P}009"])
    assert edit.pieces == [f"{P}007", C, f"{P}009"]
    assert len([c for c in edit.changes if len(c) == len(P) + 3]) == 3
    assert_tiles(after(areas, edit))


def test_split_lines_that_do_not_divide_are_refused_with_a_place():
    excerpt = MapExcerpt(P, row())
    cases = {
        "line_misses_area": line((5, 0), (6, 1)),
        "line_only_touches": line((0, -1), (0, 2)),  # along A's outer edge
        "line_does_not_split": line((0.5, -1), (0.5, 0.5)),  # ends inside
        "piece_too_small": line((-0.001, 0.002), (0.002, -0.001)),  # a corner of ~0.5 m²
    }
    for kind, drawn in cases.items():
        with pytest.raises(EditRefused) as refused:
            split(excerpt, A, drawn, snap_m=0)
        assert refused.value.kind == kind
        assert refused.value.location is not None


def test_split_snaps_a_line_drawn_near_a_corner_onto_it():
    areas = row()
    # ends 40 cm beside A's corners (0, 0.5 is no corner; 0.5,0 / 0.5,1 are micro-grid corners)
    near = line((0.5 + 0.000004, -0.0), (0.5 - 0.000003, 1.0))
    edit = split(MapExcerpt(P, areas), A, near, snap_m=1.0)
    result = after(areas, edit)
    assert_tiles(result)
    # it follows the micro-grid edge exactly: the children move whole, nothing is cut
    assert result[A].equals(areas[A + "002"]) or result[A].equals(areas[A + "001"])
    assert not any(c.startswith(A) and len(c) == 18 and edit.changes[c] for c in edit.changes)


def test_split_of_an_area_with_a_hole_and_of_a_multipolygon():
    outer = Polygon(
        [xy(0, 0), xy(1, 0), xy(1, 1), xy(0, 1)],
        [[xy(0.4, 0.4), xy(0.6, 0.4), xy(0.6, 0.6), xy(0.4, 0.6)]],
    )
    island = rect(0.4, 0.4, 0.2, 0.2)  # an enclave: B fills A's hole
    far = box(*xy(2, 0), *xy(2.2, 0.2))  # A has a second part far away
    areas = {
        P: MultiPolygon([box(*xy(0, 0), *xy(1, 1)), far]),
        A: MultiPolygon([outer, far]),
        B: island,
    }
    edit = split(MapExcerpt(P, areas), A, line((0.5, -0.1), (0.5, 1.1)))
    result = after(areas, edit)
    assert_tiles(result)
    assert B not in edit.changes  # the line crossed the enclave, but only A is split
    # the part the line does not cut stays with the first piece
    assert result[edit.pieces[0]].contains(far.representative_point())
    assert len(edit.pieces) == 2


def test_merge_needs_a_shared_edge_not_a_point():
    areas = {
        P: rect(0, 0, 2, 2),
        A: rect(0, 0),
        B: rect(1, 1),
        C: MultiPolygon([box(*xy(1, 0), *xy(2, 1)), box(*xy(0, 1), *xy(1, 2))]),
    }
    with pytest.raises(EditRefused) as refused:
        merge(MapExcerpt(P, areas), [A, B])  # diagonal: they meet at one point
    assert refused.value.kind == "not_adjacent"
    edit = merge(MapExcerpt(P, areas), [A, B, C])  # C joins them: one area, the lowest code
    assert edit.pieces == [A] and edit.changes[B] is None and edit.changes[C] is None
    result = after(areas, edit)
    assert_tiles(result)
    assert result[A].equals(areas[P])


def test_merge_of_an_enclave_fills_the_hole_and_recodes_the_children():
    areas = row()
    areas[A] = MultiPolygon(
        [
            Polygon(
                areas[A].geoms[0].exterior,
                [[xy(0.2, 0.2), xy(0.4, 0.2), xy(0.4, 0.4), xy(0.2, 0.4)]],
            )
        ]
    )
    areas[A + "001"] = MultiPolygon(
        [
            Polygon(
                areas[A + "001"].geoms[0].exterior,
                [[xy(0.2, 0.2), xy(0.4, 0.2), xy(0.4, 0.4), xy(0.2, 0.4)]],
            )
        ]
    )
    enclave = f"{P}004"
    areas[enclave] = rect(0.2, 0.2, 0.2, 0.2)
    areas[enclave + "001"] = rect(0.2, 0.2, 0.2, 0.2)
    assert_tiles(areas)
    edit = merge(MapExcerpt(P, areas), [A, enclave])
    result = after(areas, edit)
    assert_tiles(result)
    assert len(result[A].geoms[0].interiors) == 0
    assert edit.sources == {A + "003": enclave + "001"}


def test_merge_into_a_new_code_retires_all_of_them():
    edit = merge(MapExcerpt(P, row()), [A, B], keep=f"{P}008")
    assert edit.changes[A] is None and edit.changes[B] is None
    assert edit.pieces == [f"{P}008"]
    assert_tiles(after(row(), edit))
    with pytest.raises(EditRefused) as refused:
        merge(MapExcerpt(P, row()), [A, B], keep=C)
    assert refused.value.kind == "code_taken"


def test_move_edge_updates_both_neighbours_and_keeps_the_outline():
    areas = row()
    edit = move_edge(MapExcerpt(P, areas), [A, B], line((1.3, 0), (1.2, 0.5), (1.3, 1)))
    result = after(areas, edit)
    assert_tiles(result)
    assert set(c for c in edit.changes if len(c) == 15) == {A, B}
    assert result[A].union(result[B]).equals(areas[A].union(areas[B]))
    assert C not in edit.changes


def test_move_edge_the_other_way_and_far_beyond_the_middle():
    areas = row()
    # the edge moves 90 % of the way across A: A keeps a 10 m strip, B takes the rest
    edit = move_edge(MapExcerpt(P, areas), [B, A], line((0.1, 0), (0.1, 1)))
    result = after(areas, edit)
    assert_tiles(result)
    assert m2(result[A]) == pytest.approx(0.1 * m2(areas[A]), rel=1e-6)


def test_move_edge_of_an_enclave_with_a_ring():
    outer = Polygon(
        [xy(0, 0), xy(1, 0), xy(1, 1), xy(0, 1)],
        [[xy(0.4, 0.4), xy(0.6, 0.4), xy(0.6, 0.6), xy(0.4, 0.6)]],
    )
    areas = {P: rect(0, 0), A: MultiPolygon([outer]), B: rect(0.4, 0.4, 0.2, 0.2)}
    ring = line((0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7), (0.3, 0.3))
    edit = move_edge(MapExcerpt(P, areas), [A, B], ring)
    result = after(areas, edit)
    assert_tiles(result)
    assert m2(result[B]) == pytest.approx(m2(rect(0.3, 0.3, 0.4, 0.4)), rel=1e-6)


def test_move_edge_refusals():
    excerpt = MapExcerpt(P, row())
    for codes, drawn, kind in [
        ([A, C], line((1.5, 0), (1.5, 1)), "not_adjacent"),
        ([A, B], line((5, 0), (5, 1)), "line_misses_area"),
        ([A, B, C], line((1.5, 0), (1.5, 1)), "not_two_areas"),
        ([A, "330212001002001"], line((1.5, 0), (1.5, 1)), "unknown_area"),
    ]:
        with pytest.raises(EditRefused) as refused:
            move_edge(excerpt, codes, drawn)
        assert refused.value.kind == kind


def test_redraw_takes_from_neighbours_and_gives_back_what_it_leaves():
    areas = row()
    # grows 40 m into B, gives up the top 20 m strip of itself: that strip touches B (a 20 m
    # edge) and the parent's outline only, so B takes it
    edit = redraw(MapExcerpt(P, areas), A, rect(0, 0, 1.4, 0.8))
    result = after(areas, edit)
    assert_tiles(result)
    assert m2(result[A]) == pytest.approx(m2(rect(0, 0, 1.4, 0.8)), rel=1e-6)
    assert C not in edit.changes


def test_redraw_that_leaves_land_nobody_touches_is_refused():
    areas = row()
    with pytest.raises(EditRefused) as refused:
        redraw(MapExcerpt(P, areas), A, rect(0.2, 0, 0.8))  # gives up its west strip
    assert refused.value.kind == "gap_left"
    assert refused.value.location is not None


def test_redraw_swallowing_a_neighbour_retires_it_and_clips_to_the_parent():
    areas = row()
    edit = redraw(MapExcerpt(P, areas), B, rect(0.5, -0.5, 2.5, 2))
    result = after(areas, edit)
    assert edit.changes[C] is None
    assert_tiles(result)
    assert result[B].within(areas[P].buffer(1e-12))


def test_create_an_enclave_inside_a_micro_grid():
    areas = row()
    microgrids = {c: g for c, g in areas.items() if c.startswith(A)}
    excerpt = MapExcerpt(A, microgrids, taken={A + "003"})
    edit = create(excerpt, rect(0.1, 0.1, 0.2, 0.2))
    assert edit.pieces == [A + "004"]
    result = after(microgrids, edit)
    assert_tiles(result)
    assert len(result[A + "001"].geoms[0].interiors) == 1


def test_retire_goes_to_the_longest_neighbour():
    areas = row()
    areas[C] = rect(2, 0, 1, 1)
    areas[P] = rect(0, 0, 3, 1)
    edit = retire(MapExcerpt(P, areas), B)
    assert edit.changes[B] is None and edit.pieces in ([A], [C])
    assert_tiles(after(areas, edit))
    lonely = {P: rect(0, 0), A: rect(0, 0)}
    with pytest.raises(EditRefused) as refused:
        retire(MapExcerpt(P, lonely), A)
    assert refused.value.kind == "no_neighbour"
