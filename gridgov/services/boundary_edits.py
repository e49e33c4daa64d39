"""Boundary editing: split, merge, move an edge, redraw, create, retire and revert, each turned
into an ordinary change set and handed to the change-set core (services/boundaries.py), so it
is validated, previewed (dry run) and applied exactly like an uploaded one.

The geometry is geo/edits.py's; this module loads the part of the map an edit reads, names the
new areas, and adds to the core's impact what an administrator checks before applying: the
areas and codes that change, the people whose assigned area is retired or reshaped, and the
shapes before and after (GeoJSON, for the map).

Choices:
- Areas an edit retires end their active assignments (the preview lists them): a worker can
  only be on duty in a current area, and an administrator assigns them anew.
- A new piece of a split is named after the area with a number (`名称（2）`) unless the caller
  names it; a child moved under a new code keeps its name.
- Revert builds the change set that restores, for every area the reverted set wrote, the
  revision before it: areas it created are retired, areas it retired come back under their own
  code (the one case where a retired code returns), areas it reshaped get their previous shape
  and name. It is refused (409 `revert_conflict`) when a later change set has changed one of
  those areas since: reverting would silently undo that one too. The reverting set's source is
  `revert:<id>` and both sets' summaries name each other (`reverts`, `reverted_by`).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

import shapely
from shapely.geometry import MultiPolygon, mapping
from shapely.geometry import shape as geojson_shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geo import edits
from geo.codes import level_of_code
from gridgov.errors import (
    AreaNotFound,
    BoundaryEditRefused,
    ChangesetNotFound,
    Conflict,
    ValidationFailed,
)
from gridgov.models import Area, AreaRevision, Assignment, BoundaryChangeset, User
from gridgov.services.boundaries import ChangeSetResult, submit_changeset
from gridgov.services.changesets import written_areas
from gridgov.services.users import active_assignment_filter
from gridgov.spatial import from_db


@dataclass
class EditAnswer:
    result: ChangeSetResult
    operation: str
    areas: list[dict]
    recoded: list[dict]
    assignments: list[dict]
    before: dict[str, BaseGeometry]
    after: dict[str, BaseGeometry]
    names: dict[str, str]
    features: list[dict]
    reverts: int | None = None

    def as_dict(self) -> dict:
        """The answer of every editing endpoint: the change-set result with the edit's impact."""
        body = self.result.as_dict()
        body["impact"].update(
            area_changes=self.areas, recoded=self.recoded, assignments=self.assignments
        )
        body.update(
            operation=self.operation,
            geometry={
                "before": _collection(self.before, self.names),
                "after": _collection(self.after, self.names),
            },
            changes={"type": "FeatureCollection", "features": self.features},
        )
        if self.reverts is not None:
            body["reverts"] = self.reverts
        return body


@dataclass
class _Loaded:
    excerpt: edits.MapExcerpt
    names: dict[str, str]


def split(
    session, *, actor, code, line, codes=None, names=None, snap_m=edits.DEFAULT_SNAP_M, options
) -> EditAnswer:
    """Split an area along a line (GeoJSON LineString) into two or more pieces."""
    loaded = _load(session, _parent_of(code), focus_codes=[code])
    edit = _run(
        lambda: edits.split(
            loaded.excerpt,
            code,
            _shape(line),
            codes=codes,
            tolerances=options.tolerances,
            snap_m=snap_m,
        )
    )
    given = dict(zip(edit.pieces, names or [], strict=False))
    base = loaded.names[code]
    for number, piece in enumerate(edit.pieces[1:], 2):
        given.setdefault(piece, f"{base}（{number}）")
    return _submit(session, actor, "split", loaded, edit, given, options)


def merge(session, *, actor, codes, code=None, name=None, options) -> EditAnswer:
    """Merge adjacent siblings into one area."""
    loaded = _load(session, _common_parent(codes), focus_codes=codes)
    edit = _run(
        lambda: edits.merge(loaded.excerpt, codes, keep=code, tolerances=options.tolerances)
    )
    given = {edit.pieces[0]: name} if name else {}
    return _submit(session, actor, "merge", loaded, edit, given, options)


def move_edge(session, *, actor, codes, line, snap_m=edits.DEFAULT_SNAP_M, options) -> EditAnswer:
    """Move the edge two neighbours share to a drawn line."""
    loaded = _load(session, _common_parent(codes), focus_codes=codes)
    edit = _run(
        lambda: edits.move_edge(
            loaded.excerpt, codes, _shape(line), tolerances=options.tolerances, snap_m=snap_m
        )
    )
    return _submit(session, actor, "move-edge", loaded, edit, {}, options)


def redraw(
    session, *, actor, code, geometry, name=None, snap_m=edits.DEFAULT_SNAP_M, options
) -> EditAnswer:
    """Give an area a new shape, its siblings adjusted."""
    drawn = _shape(geometry)
    loaded = _load(session, _parent_of(code), focus_codes=[code], focus=drawn)
    edit = _run(
        lambda: edits.redraw(
            loaded.excerpt, code, drawn, tolerances=options.tolerances, snap_m=snap_m
        )
    )
    return _submit(session, actor, "redraw", loaded, edit, {code: name} if name else {}, options)


def create(
    session, *, actor, parent, geometry, name, code=None, snap_m=edits.DEFAULT_SNAP_M, options
) -> EditAnswer:
    """A new area under parent, taking from its siblings what it covers."""
    drawn = _shape(geometry)
    loaded = _load(session, parent, focus_codes=[], focus=drawn)
    edit = _run(
        lambda: edits.create(
            loaded.excerpt, drawn, code=code, tolerances=options.tolerances, snap_m=snap_m
        )
    )
    return _submit(session, actor, "create", loaded, edit, {edit.pieces[0]: name}, options)


def retire(session, *, actor, code, into=None, options) -> EditAnswer:
    """Retire an area, its land going to a neighbour."""
    loaded = _load(session, _parent_of(code), focus_codes=[code])
    edit = _run(
        lambda: edits.retire(loaded.excerpt, code, into=into, tolerances=options.tolerances)
    )
    return _submit(session, actor, "retire", loaded, edit, {}, options)


OPERATIONS = {
    "split": split,
    "merge": merge,
    "move-edge": move_edge,
    "redraw": redraw,
    "create": create,
    "retire": retire,
}


# --- revert ----------------------------------------------------------------------------------


def revert(session: Session, *, actor, changeset_id: int, options) -> EditAnswer:
    """A change set restoring the revisions an applied change set replaced."""
    changeset = session.get(BoundaryChangeset, changeset_id)
    if changeset is None:
        raise ChangesetNotFound(
            f"No change set {changeset_id}.", details={"changeset": changeset_id}
        )
    if changeset.status != "applied":
        raise Conflict(
            f"Change set {changeset.id} is {changeset.status}: only an applied one can be"
            " reverted (a pending one is cancelled instead).",
            code="changeset_not_applied",
            details={"changeset": changeset.id, "status": changeset.status},
        )
    written, retired = written_areas(session, changeset)
    if not written and not retired:
        raise ValidationFailed(
            f"Change set {changeset.id} changed no area that can be restored.",
            code="nothing_to_revert",
            details={"changeset": changeset.id},
        )
    # An area changed since conflicts unless it is back to what the set left (a later set was
    # itself reverted): reverting would otherwise undo that later change too.
    changed_since = sorted(
        [area.code for area, revision in written if not _as_left(area, revision)]
        + [area.code for area in retired if area.retired_at is None]
    )
    if changed_since:
        raise Conflict(
            f"Areas changed again after change set {changeset.id}: revert those changes first.",
            code="revert_conflict",
            details={"changeset": changeset.id, "codes": changed_since},
        )
    restore: dict[str, tuple[MultiPolygon | None, str | None]] = {}
    for area, revision in written:
        previous = session.scalar(
            select(AreaRevision).where(
                AreaRevision.area_id == area.id, AreaRevision.valid_to == revision.valid_from
            )
        )
        restore[area.code] = (
            (from_db(previous.boundary), previous.name) if previous else (None, None)
        )
    for area in retired:
        closed = session.scalar(
            select(AreaRevision).where(
                AreaRevision.area_id == area.id,
                AreaRevision.valid_to == changeset.effective_from,
            )
        )
        restore[area.code] = (from_db(closed.boundary), closed.name)
    codes = sorted(restore)
    current = _current(session, codes)
    restored_names = {code: name for code, (_, name) in restore.items() if name}
    names = {**{code: name for code, (_, name) in current.items()}, **restored_names}
    edit = edits.Edit(
        changes={code: shape for code, (shape, _) in restore.items()},
        sources={},
        pieces=codes,
    )
    options = replace(
        options,
        source=f"revert:{changeset.id}"[:40],
        description=options.description or f"Revert of change set {changeset.id}",
        revive=frozenset(area.code for area in retired),
    )
    answer = _submit_changes(
        session,
        actor,
        "revert",
        edit,
        {code: shape for code, (shape, _) in current.items()},
        names,
        restored_names,
        options,
    )
    answer.reverts = changeset.id
    if answer.result.applied:
        reverting = session.get(BoundaryChangeset, answer.result.changeset_id)
        reverting.summary = {**reverting.summary, "reverts": changeset.id}
        changeset.summary = {**changeset.summary, "reverted_by": reverting.id}
        session.flush()
    return answer


def _as_left(area: Area, revision: AreaRevision) -> bool:
    """Whether an area is current with the shape and name a change set wrote."""
    if area.retired_at is not None:
        return False
    if revision.valid_to is None:
        return True
    return area.name == revision.name and from_db(area.boundary).equals_exact(
        from_db(revision.boundary), tolerance=0
    )


# --- shared steps ----------------------------------------------------------------------------


def _run(operation: Callable[[], edits.Edit]) -> edits.Edit:
    try:
        return operation()
    except edits.EditRefused as refused:
        details: dict = {"codes": refused.codes}
        if refused.location is not None:
            details["location"] = {"lon": refused.location[0], "lat": refused.location[1]}
        raise BoundaryEditRefused(refused.detail, code=refused.kind, details=details) from None


def _shape(geometry: dict) -> BaseGeometry:
    try:
        shape = geojson_shape(geometry)
    except (AttributeError, KeyError, TypeError, ValueError, shapely.errors.ShapelyError):
        raise ValidationFailed(
            "Not a GeoJSON geometry.", code="invalid_geometry", details={}
        ) from None
    if not shape.is_valid and shape.geom_type != "LineString":
        raise ValidationFailed(
            f"Invalid geometry: {shapely.is_valid_reason(shape)}.", code="invalid_geometry"
        )
    return shape


def _parent_of(code: str) -> str:
    try:
        level_of_code(code)
    except ValueError as error:
        raise AreaNotFound(str(error), details={"code": code}) from None
    if len(code) == 6:
        raise BoundaryEditRefused("The district itself cannot be edited.", code="not_editable")
    return code[:-3]


def _common_parent(codes: list[str]) -> str:
    parents = {_parent_of(code) for code in codes}
    if len(parents) != 1:
        raise BoundaryEditRefused(
            "The areas must be children of one parent.",
            code="not_siblings",
            details={"codes": list(codes)},
        )
    return parents.pop()


def _load(session, parent: str, *, focus_codes, focus=None) -> _Loaded:
    """The parent, its current children, and the descendants of the children an edit may
    touch (those meeting the named areas or the drawn shape); every code ever used below."""
    rows = session.execute(
        select(Area.code, Area.name, Area.boundary, Area.retired_at).where(
            (Area.code == parent)
            | ((Area.code.like(f"{parent}%")) & (func.length(Area.code) == len(parent) + 3))
        )
    ).all()
    current = {row.code: row for row in rows if row.retired_at is None}
    if parent not in current:
        raise AreaNotFound(f"No current area {parent}.", details={"code": parent})
    for code in focus_codes:
        if code not in current:
            raise AreaNotFound(f"No current area {code}.", details={"code": code})
    areas = {code: from_db(row.boundary) for code, row in current.items()}
    names = {code: row.name for code, row in current.items()}
    reach = [areas[c] for c in focus_codes] + ([focus] if focus is not None else [])
    # A little wider than the named areas: their neighbours take or give land too.
    touched = shapely.union_all(reach).buffer(1e-5)
    wide = [c for c in areas if c != parent and areas[c].intersects(touched)]
    below = (
        session.execute(
            select(Area.code, Area.name, Area.boundary).where(
                func.left(Area.code, len(parent) + 3).in_(wide),
                func.length(Area.code) > len(parent) + 3,
                Area.retired_at.is_(None),
            )
        ).all()
        if wide
        else []
    )
    for row in below:
        areas[row.code] = from_db(row.boundary)
        names[row.code] = row.name
    taken = set(session.scalars(select(Area.code).where(Area.code.like(f"{parent}%"))).all())
    return _Loaded(edits.MapExcerpt(parent, areas, taken), names)


def _current(session, codes) -> dict[str, tuple[MultiPolygon, str]]:
    rows = session.execute(
        select(Area.code, Area.boundary, Area.name).where(
            Area.code.in_(codes), Area.retired_at.is_(None)
        )
    ).all()
    return {row.code: (from_db(row.boundary), row.name) for row in rows}


def _submit(session, actor, operation, loaded: _Loaded, edit, given_names, options) -> EditAnswer:
    names = dict(loaded.names)
    for new, source in edit.sources.items():
        names.setdefault(new, loaded.names.get(source, new))
    new_names = {code: name for code, name in given_names.items() if name}
    names.update(new_names)
    for code in edit.changes:
        if code not in loaded.excerpt.areas and code not in new_names and code in names:
            new_names[code] = names[code]
    before = {c: loaded.excerpt.areas[c] for c in edit.changes if c in loaded.excerpt.areas}
    options = replace(options, source=f"edit:{operation}")
    return _submit_changes(session, actor, operation, edit, before, names, new_names, options)


def _submit_changes(
    session, actor, operation, edit, before, names, new_names, options
) -> EditAnswer:
    features = []
    for code in sorted(edit.changes, key=lambda c: (len(c), c)):
        shape = edit.changes[code]
        properties = {"code": code, "parent": code[:-3], "level": level_of_code(code)}
        if shape is None:
            properties.update(action="retire", assignments="end")
        else:
            properties["action"] = "upsert"
            if code in new_names:
                properties["name"] = new_names[code]
        features.append(
            {
                "type": "Feature",
                "geometry": mapping(shape) if shape is not None else None,
                "properties": properties,
            }
        )
    assignments = _assignments(session, edit.changes)
    result = submit_changeset(session, actor=actor, features=features, options=options)
    areas = []
    for code in sorted(edit.changes, key=lambda c: (len(c), c)):
        if edit.changes[code] is None:
            action = "retired"
        elif code in before:
            action = "updated"
        elif code in options.revive:
            action = "restored"
        else:
            action = "created"
        areas.append(
            {
                "code": code,
                "name": names.get(code),
                "action": action,
                "from": edit.sources.get(code),
            }
        )
    recoded = [{"from": old, "to": new} for new, old in sorted(edit.sources.items())]
    after = {c: s for c, s in edit.changes.items() if s is not None}
    return EditAnswer(
        result, operation, areas, recoded, assignments, before, after, names, features
    )


def _assignments(session, changes: dict) -> list[dict]:
    """Active assignments on areas the edit retires or reshapes."""
    rows = session.execute(
        select(Assignment.id, User.id, User.username, User.role, Assignment.duty, Area.code)
        .join(User, User.id == Assignment.user_id)
        .join(Area, Area.id == Assignment.area_id)
        .where(Area.code.in_(list(changes)), active_assignment_filter())
        .order_by(Area.code, User.username)
    ).all()
    return [
        {
            "id": assignment_id,
            "user": user_id,
            "username": username,
            "role": role,
            "duty": duty,
            "area": code,
            "change": "retired" if changes[code] is None else "reshaped",
        }
        for assignment_id, user_id, username, role, duty, code in rows
    ]


def _collection(shapes: dict[str, BaseGeometry], names: dict[str, str]) -> dict:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": code,
                "geometry": json.loads(shapely.to_geojson(shape, indent=None)),
                "properties": {"code": code, "name": names.get(code)},
            }
            for code, shape in sorted(shapes.items())
        ],
    }
