"""Boundary administration: validate a change set against the map it would produce, preview its
impact, and apply it atomically with re-routing of the open cases it affects.

One core for the API (POST /api/v1/boundaries/changes) and the CLI (flask boundaries import).
A dry run goes through exactly the same steps inside a savepoint that is rolled back, so its
impact is the impact the real run will have.

Concurrency: a change set is checked without a lock (a whole district takes seconds), noting
the map's version first (the newest committed change set). Applying then takes an exclusive
transaction-level advisory lock on the map; if the version moved meanwhile, another set
committed, and this one is checked again on the map as it is now (READ COMMITTED: each statement
sees what committed before it), so of two sets that would overlap only the first applies. Intake
takes the lock shared before routing (see `lock_map_shared`). A report in flight finishes first
and is then re-routed by the change; a report arriving during the change waits, at most
MAP_LOCK_WAIT_MS (then MapBusy: 503 map_busy, retry), and routes on the new map. So no report is
ever routed to an area retired by a change that committed before it.

effective_from may be backdated, but not before 2000, nor to or before the start of the current
boundary of any area the set was checked against (its areas' parents and all their children), nor
of an assignment it ends: the history would contradict itself (and the CHECKs on revision and
assignment periods would refuse it). One within a clock skew (5 minutes) ahead counts as now.

Scheduled change sets: a date further ahead stores the set as pending (status `pending`, the
features kept in `submitted`), after the same checks against the map as it is now and with the
impact it would have now; nothing on the map changes. `flask boundaries apply-due`
(services/changesets.py) applies each one when it falls due, checked again against the map as
it is then, into the same change set row, with its revisions starting at effective_from.
"""

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from shapely.geometry import MultiPolygon, mapping
from sqlalchemy import bindparam, func, insert, or_, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from geo.codes import LEVEL_CODE_LENGTH, level_of_code
from geo.levels import LEVELS
from geo.topology import (
    LocalMetricFrame,
    Problem,
    Tolerances,
    family_problems,
    parse_boundary,
)
from gridgov.errors import MapBusy
from gridgov.models import (
    Area,
    AreaRevision,
    Assignment,
    BoundaryChangeset,
    Incident,
    IncidentEvent,
    User,
)
from gridgov.services import audit
from gridgov.services.routing import chain_sql, covered_sql, route_point, routing_columns
from gridgov.services.users import active_assignment_filter
from gridgov.spatial import from_db, to_db

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key for "the map is being changed" (any constant unique to this use).
MAP_LOCK_KEY = 330212_0001
ACTIONS = ("upsert", "retire")
# effective_from: backdating is allowed (within the checks of _check_effective_from); a date
# ahead of now is taken as now within a clock skew, beyond it the set is scheduled (pending).
EFFECTIVE_FROM_SKEW = timedelta(minutes=5)
EARLIEST_EFFECTIVE_FROM = datetime(2000, 1, 1, tzinfo=UTC)
# A set scheduled further ahead would be checked against a map long gone by then.
SCHEDULE_HORIZON = timedelta(days=366)
Progress = Callable[[str, int, int], None]


# The shared map lock with a bounded wait, in one round trip: the inner select sets
# lock_timeout (remembering the value before), the outer one takes the lock and puts the
# previous value back, so only this wait is bounded. The rest of the transaction keeps its own
# setting: a later wait there (a concurrent report with the same client_id, a photo row) must
# not fail, nor be mistaken for a busy map.
_LOCK_MAP_SHARED_SQL = text(
    """
SELECT pg_advisory_xact_lock_shared(:key), set_config('lock_timeout', before.previous, true)
FROM (SELECT current_setting('lock_timeout') AS previous,
             set_config('lock_timeout', :wait, true) AS bounded) AS before
"""
)
_LOCK_NOT_AVAILABLE = "55P03"


def lock_map_shared(session: Session, *, wait_ms: int) -> None:
    """Hold the map steady until this transaction ends; MapBusy after `wait_ms` of waiting."""
    # lock_timeout 0 would mean no limit at all: the shortest bounded wait is 1 ms.
    wait = f"{max(wait_ms, 1)}ms"
    try:
        session.execute(_LOCK_MAP_SHARED_SQL, {"key": MAP_LOCK_KEY, "wait": wait})
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        raise MapBusy(
            "The map is being changed; nothing was stored. Send the report again shortly.",
            details={"retry_after": MapBusy.retry_after},
        ) from exc


@dataclass
class ChangeFeature:
    code: str
    action: str
    name: str | None
    parent: str | None
    geometry: MultiPolygon | None
    end_assignments: bool


@dataclass
class Impact:
    moved_open_incidents: int = 0
    moves: list[dict] = field(default_factory=list)
    incident_ids: list[int] | None = None
    # With include_ids: each re-routed case, {"id", "from", "to"} (micro-grid codes).
    cases: list[dict] | None = None
    assignments_ended: list[dict] = field(default_factory=list)
    areas: dict[str, int] = field(
        default_factory=lambda: {"created": 0, "updated": 0, "retired": 0, "unchanged": 0}
    )


@dataclass
class ChangeSetResult:
    valid: bool
    problems: list[Problem]
    impact: Impact
    applied: bool
    changeset_id: int | None
    # applied, pending (scheduled), or None (a dry run, or invalid: nothing stored).
    status: str | None = None

    def as_dict(self) -> dict:
        """The answer as API.md shows it (also printed by the CLI)."""
        return {
            "valid": self.valid,
            "problems": [problem.as_dict() for problem in self.problems],
            "impact": asdict(self.impact),
            "applied": self.applied,
            "changeset": self.changeset_id,
            "status": self.status,
        }


@dataclass(frozen=True, kw_only=True)
class ChangeSetOptions:
    tolerances: Tolerances
    max_nearest_m: float
    dry_run: bool = True
    repair: bool = False
    crs: str = "wgs84"
    include_ids: bool = False
    effective_from: datetime | None = None
    source: str = "api"
    description: str = ""
    # Retired areas this set may bring back (a revert restores what its change set retired;
    # otherwise codes are never reused).
    revive: frozenset[str] = frozenset()


def submit_changeset(
    session: Session,
    *,
    actor: User | None,
    features: list[dict],
    options: ChangeSetOptions,
    progress: Progress | None = None,
    pending: BoundaryChangeset | None = None,
) -> ChangeSetResult:
    """Validate, preview and (unless a dry run, and only when valid) apply a change set, or
    store it as pending when effective_from is ahead; `pending` applies that stored row."""
    report = progress or (lambda stage, done, total: None)
    parse_problems: list[Problem] = []
    parsed = _parse_features(features, options, parse_problems, report)
    # Noted before the checks read the map: a change set that commits after this moves it.
    version = _map_version(session)
    now = datetime.now(UTC)
    scheduled = is_scheduled(options.effective_from, now)
    checked = _check(session, parsed, parse_problems, options, now, report)
    if checked.valid and not options.dry_run and not scheduled:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MAP_LOCK_KEY})
        now = datetime.now(UTC)  # a change takes effect when it holds the map
        if _map_version(session) != version:
            # Another change set committed while this one was checked or waited for the lock:
            # check again on the map as it is now (READ COMMITTED: each statement sees it).
            log.info("the map changed while the change set was checked: checking it again")
            checked = _check(session, parsed, parse_problems, options, now, report)
    if not checked.valid:
        return ChangeSetResult(False, checked.problems, Impact(), False, None)
    problems, changes, existing = checked.problems, checked.changes, checked.existing
    savepoint = session.begin_nested()
    effective = _effective(options, now)
    changeset, impact = _apply(
        session, actor, changes, existing, effective, options, report, pending
    )
    impact.areas["unchanged"] = checked.unchanged
    if options.dry_run or scheduled:
        savepoint.rollback()
        if options.dry_run:
            return ChangeSetResult(True, problems, impact, False, None)
        stored = _schedule(session, actor, changes, options, impact)
        return ChangeSetResult(True, problems, impact, False, stored.id, "pending")
    savepoint.commit()
    audit.record(
        session,
        actor=actor,
        action="apply_changeset",
        target=f"changeset {changeset.id}",
        data={
            "changeset": changeset.id,
            "areas": impact.areas,
            "moved_open_incidents": impact.moved_open_incidents,
            "source": options.source,
        },
    )
    log.info(
        "changeset %s by %s applied: %s, %s open incidents re-routed",
        changeset.id,
        actor.username if actor else "system",
        impact.areas,
        impact.moved_open_incidents,
    )
    return ChangeSetResult(True, problems, impact, True, changeset.id, "applied")


def is_scheduled(effective_from: datetime | None, now: datetime) -> bool:
    """Whether a change set with this effective_from is stored as pending rather than applied."""
    return effective_from is not None and effective_from > now + EFFECTIVE_FROM_SKEW


def _schedule(session, actor, changes, options, impact) -> BoundaryChangeset:
    # Kept as parsed (WGS-84, repaired if asked, unchanged areas left out): what is checked
    # again when due, and what /route?at= lays over the map for an instant after it.
    features = [
        {
            "type": "Feature",
            "geometry": mapping(change.geometry) if change.geometry is not None else None,
            "properties": {
                "code": change.code,
                "action": change.action,
                "parent": change.parent,
                **({"name": change.name} if change.name else {}),
                **({"assignments": "end"} if change.end_assignments else {}),
            },
        }
        for change in changes.values()
    ]
    changeset = BoundaryChangeset(
        source=options.source,
        description=options.description,
        actor_id=actor.id if actor else None,
        effective_from=options.effective_from,
        status="pending",
        submitted={"features": features, "revive": sorted(options.revive)},
        # The impact it would have on the map as it was when scheduled.
        summary={"areas": impact.areas, "moved_open_incidents": impact.moved_open_incidents},
    )
    session.add(changeset)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="schedule_changeset",
        target=f"changeset {changeset.id}",
        data={"changeset": changeset.id, "effective_from": options.effective_from.isoformat()},
    )
    return changeset


def _map_version(session: Session) -> int:
    """How many change sets were applied: applies take the map lock in turn, so it only grows
    (the newest id would not: a scheduled set is applied long after later ids were taken)."""
    return session.scalar(
        select(func.count())
        .select_from(BoundaryChangeset)
        .where(BoundaryChangeset.status == "applied")
    )


def _effective(options: ChangeSetOptions, now: datetime) -> datetime:
    """When the change takes effect: effective_from, or now (also for one a clock skew ahead)."""
    return min(options.effective_from, now) if options.effective_from else now


@dataclass
class _Checked:
    changes: dict[str, ChangeFeature]
    existing: dict[str, Area]
    unchanged: int
    problems: list[Problem]

    @property
    def valid(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def _check(session, parsed, parse_problems, options, now, report) -> _Checked:
    """The parsed change set checked against the current map (again from the start when the
    map changed: _drop_unchanged forgets entries of its own copy)."""
    changes = dict(parsed)
    problems = list(parse_problems)
    existing = _load_existing(session, changes)
    unchanged = _drop_unchanged(changes, existing)
    _check_tree(changes, existing, problems, options.revive)
    _check_effective_from(session, changes, existing, options, now, problems)
    _check_retirements(session, changes, existing, _effective(options, now), problems)
    if not any(p.severity == "error" for p in problems):
        problems += _check_families(session, changes, existing, options.tolerances, report)
    return _Checked(changes, existing, unchanged, problems)


# --- parsing -----------------------------------------------------------------------------


def _parse_features(features, options, problems, report) -> dict[str, ChangeFeature]:
    changes: dict[str, ChangeFeature] = {}
    total = len(features)
    for index, feature in enumerate(features, 1):
        change = _parse_feature(feature, index, options, problems)
        if change is not None:
            if change.code in changes:
                problems.append(
                    Problem(change.code, "duplicate_code", "The code appears twice in the set.")
                )
            changes[change.code] = change
        if index % 1000 == 0 or index == total:
            report("parsed", index, total)
    return changes


def _parse_feature(feature, index, options, problems) -> ChangeFeature | None:
    where = f"feature {index}"
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        problems.append(Problem(None, "invalid_feature", f"{where} is not a GeoJSON Feature."))
        return None
    props = feature.get("properties") or {}
    code = props.get("code")
    if (
        not isinstance(code, str)
        or not code.isdigit()
        or len(code) not in LEVEL_CODE_LENGTH.values()
    ):
        lengths = "/".join(str(length) for length in LEVEL_CODE_LENGTH.values())
        detail = f"{where}: properties.code must be a {lengths} digit area code."
        problems.append(Problem(code if isinstance(code, str) else None, "invalid_code", detail))
        return None
    action = props.get("action", "upsert")
    if action not in ACTIONS:
        problems.append(Problem(code, "invalid_action", f"action must be one of {ACTIONS}."))
        return None
    level = props.get("level")
    if level is not None and level != level_of_code(code):
        detail = f"A {len(code)}-digit code is a {level_of_code(code)}, not a {level}."
        problems.append(Problem(code, "wrong_level", detail))
    parent = props.get("parent")
    own_level = LEVELS.by_code_length(len(code))
    expected_parent = code[: LEVELS[own_level.parent].code_length] if own_level.parent else None
    if action == "upsert" and parent != expected_parent:
        detail = f"parent must be {expected_parent!r}: a code extends its parent's code."
        problems.append(Problem(code, "wrong_parent", detail, other=parent))
    name = props.get("name")
    if name is not None and (not isinstance(name, str) or not 1 <= len(name.strip()) <= 100):
        problems.append(Problem(code, "invalid_name", "name must be 1-100 characters."))
        name = None
    geometry = None
    if action == "upsert":
        parsed = parse_boundary(
            code,
            feature.get("geometry"),
            crs=options.crs,
            repair=options.repair,
            tolerances=options.tolerances,
        )
        problems += parsed.problems
        geometry = parsed.geometry
    return ChangeFeature(
        code=code,
        action=action,
        name=name.strip() if name else None,
        parent=expected_parent,
        geometry=geometry,
        end_assignments=props.get("assignments") == "end",
    )


# --- checks against the current map ------------------------------------------------------


def _load_existing(session: Session, changes: dict[str, ChangeFeature]) -> dict[str, Area]:
    codes = set(changes) | {c.parent for c in changes.values() if c.parent}
    # populate_existing: a second check must see the rows as committed since, not as loaded.
    areas = session.scalars(
        select(Area).where(Area.code.in_(codes)).execution_options(populate_existing=True)
    ).all()
    return {area.code: area for area in areas}


def _drop_unchanged(changes: dict[str, ChangeFeature], existing: dict[str, Area]) -> int:
    """Forget upserts that change nothing (same shape and name): re-importing a survey must
    not write thousands of identical revisions nor re-route anything. Returns how many."""
    same = [
        code
        for code, change in changes.items()
        if change.action == "upsert"
        and change.geometry is not None
        and code in existing
        and existing[code].retired_at is None
        and change.name in (None, existing[code].name)
        and from_db(existing[code].boundary).equals_exact(change.geometry, tolerance=0)
    ]
    for code in same:
        del changes[code]
    return len(same)


def _check_tree(changes, existing, problems, revive=frozenset()) -> None:
    retiring = {code for code, c in changes.items() if c.action == "retire"}
    for code, change in changes.items():
        current = existing.get(code)
        if change.action == "retire":
            if current is None or current.retired_at is not None:
                problems.append(Problem(code, "unknown_area", "No current area to retire."))
            continue
        if current is not None and current.retired_at is not None and code not in revive:
            detail = "This code belonged to a retired area; codes are never reused."
            problems.append(Problem(code, "retired_code", detail))
        if current is None and not change.name:
            problems.append(Problem(code, "missing_name", "A new area needs a name."))
        if change.parent is None:
            continue
        parent = existing.get(change.parent)
        parent_upserted = changes.get(change.parent)
        if change.parent in retiring:
            problems.append(Problem(code, "parent_retired", "Its parent is retired in this set."))
        elif (parent is None or parent.retired_at is not None) and not (
            parent_upserted and parent_upserted.action == "upsert"
        ):
            problems.append(
                Problem(code, "unknown_parent", f"No area {change.parent}.", other=change.parent)
            )


def _check_effective_from(session, changes, existing, options, now, problems) -> None:
    requested = options.effective_from
    if requested is not None and requested < EARLIEST_EFFECTIVE_FROM:
        detail = f"effective_from must be in {EARLIEST_EFFECTIVE_FROM.year} or later."
        problems.append(Problem(None, "effective_from_out_of_range", detail))
        return
    if requested is not None and requested > now + SCHEDULE_HORIZON:
        detail = f"effective_from may be at most {SCHEDULE_HORIZON.days} days ahead."
        problems.append(Problem(None, "effective_from_out_of_range", detail))
        return
    # The set was checked against the current boundaries of its families (the parents and all
    # their children), so it cannot take effect before the newest of them began.
    parent_ids = [existing[c].id for c in _family_parents(changes) if c in existing]
    if not parent_ids:
        return
    newest = session.execute(
        select(Area.code, AreaRevision.valid_from)
        .join(Area, Area.id == AreaRevision.area_id)
        .where(
            AreaRevision.valid_to.is_(None),
            or_(Area.id.in_(parent_ids), Area.parent_id.in_(parent_ids)),
        )
        .order_by(AreaRevision.valid_from.desc())
        .limit(1)
    ).first()
    effective = _effective(options, now)
    if newest is not None and effective <= newest.valid_from:
        detail = (
            f"effective_from {effective.isoformat()} is not after"
            f" {newest.valid_from.isoformat()}, when the current boundary of {newest.code}"
            " began; a change cannot take effect before the map it was checked against."
        )
        problems.append(Problem(newest.code, "effective_from_before_current", detail))


def _check_retirements(session, changes, existing, effective, problems) -> None:
    retiring = [existing[c] for c, ch in changes.items() if ch.action == "retire" and c in existing]
    if not retiring:
        return
    ids = [area.id for area in retiring]
    children = session.execute(
        select(Area.parent_id, Area.code).where(Area.parent_id.in_(ids), Area.retired_at.is_(None))
    ).all()
    for parent_id, child_code in children:
        child = changes.get(child_code)
        if child is None or child.action != "retire":
            parent_code = next(a.code for a in retiring if a.id == parent_id)
            detail = f"Child {child_code} is still current; retire or move it in the same set."
            problems.append(Problem(parent_code, "orphaned_children", detail, other=child_code))
    staffed = session.execute(
        select(Assignment.area_id, func.count(), func.max(Assignment.active_from))
        .where(Assignment.area_id.in_(ids), active_assignment_filter())
        .group_by(Assignment.area_id)
    ).all()
    for area_id, count, newest_start in staffed:
        area = next(a for a in retiring if a.id == area_id)
        if not changes[area.code].end_assignments:
            detail = (
                f"{count} active assignment(s); set properties.assignments = 'end' to end them."
            )
            problems.append(Problem(area.code, "has_workers", detail))
        elif effective <= newest_start:
            detail = (
                f"An assignment it would end began at {newest_start.isoformat()}, not before"
                f" effective_from {effective.isoformat()}."
            )
            problems.append(Problem(area.code, "effective_from_before_current", detail))


def _check_families(session, changes, existing, tolerances, report) -> list[Problem]:
    upserts = {c: ch for c, ch in changes.items() if ch.action == "upsert" and ch.geometry}
    retired = {c for c, ch in changes.items() if ch.action == "retire"}
    parents = _family_parents(changes)
    parent_ids = {existing[c].id for c in parents if c in existing}
    current_children: dict[str, dict[str, MultiPolygon]] = defaultdict(dict)
    rows = (
        session.execute(
            select(Area.code, Area.boundary).where(
                Area.parent_id.in_(parent_ids), Area.retired_at.is_(None)
            )
        ).all()
        if parent_ids
        else []
    )
    for code, boundary in rows:
        current_children[code[:-3]][code] = from_db(boundary)
    parent_geometries = _parent_geometries(session, parents, upserts, existing)
    frame = (
        LocalMetricFrame.around(next(iter(parent_geometries.values())))
        if parent_geometries
        else None
    )
    changed_by_parent: dict[str, set[str]] = defaultdict(set)
    for code, change in changes.items():
        changed_by_parent[change.parent].add(code)
    problems: list[Problem] = []
    for done, parent in enumerate(sorted(parent_geometries), 1):
        changed = changed_by_parent[parent]
        children = {c: g for c, g in current_children[parent].items() if c not in retired}
        children.update({c: upserts[c].geometry for c in changed if c in upserts})
        problems += family_problems(
            parent,
            parent_geometries[parent],
            children,
            changed=changed,
            parent_changed=parent in upserts,
            tolerances=tolerances,
            frame=frame,
        )
        if done % 500 == 0 or done == len(parent_geometries):
            report("validated families", done, len(parent_geometries))
    return problems


def _family_parents(changes: dict[str, ChangeFeature]) -> set[str]:
    """Codes of the families a set is checked in: its areas' parents, and every upserted area
    (its children must still fit)."""
    upserted = {code for code, change in changes.items() if change.action == "upsert"}
    return {change.parent for change in changes.values() if change.parent} | upserted


def _parent_geometries(session, parents, upserts, existing) -> dict[str, MultiPolygon]:
    geometries = {c: upserts[c].geometry for c in parents if c in upserts}
    missing = [existing[c].id for c in parents if c not in geometries and c in existing]
    if missing:
        for code, boundary in session.execute(
            select(Area.code, Area.boundary).where(Area.id.in_(missing))
        ):
            geometries[code] = from_db(boundary)
    return geometries


# --- applying ------------------------------------------------------------------------------


def _apply(
    session, actor, changes, existing, effective, options, report, pending=None
) -> tuple[BoundaryChangeset, Impact]:
    if pending is None:
        changeset = BoundaryChangeset(
            source=options.source,
            description=options.description,
            actor_id=actor.id if actor else None,
            effective_from=effective,
        )
        session.add(changeset)
    else:
        changeset = pending
        changeset.effective_from = effective
    changeset.status = "applied"
    changeset.applied_at = datetime.now(UTC)
    session.flush()
    impact = Impact()
    touched_microgrids = _write_areas(session, changes, existing, changeset, effective, impact)
    report("areas written", len(changes), len(changes))
    _end_assignments(session, changes, existing, effective, impact)
    _reroute(session, actor, changeset, touched_microgrids, options, impact)
    report("open incidents re-routed", impact.moved_open_incidents, impact.moved_open_incidents)
    changeset.summary = {
        "areas": impact.areas,
        "moved_open_incidents": impact.moved_open_incidents,
        "moves": impact.moves,
    }
    session.flush()
    return changeset, impact


def _write_areas(session, changes, existing, changeset, effective, impact) -> set[int]:
    """Insert, update and retire areas with their revisions, in bulk; return the ids of the
    micro-grids touched (for re-routing)."""
    table = Area.__table__
    ids = {code: area.id for code, area in existing.items()}
    retiring = [c for c in changes.values() if c.action == "retire"]
    updating = [c for c in changes.values() if c.action == "upsert" and c.code in existing]
    creating = [c for c in changes.values() if c.action == "upsert" and c.code not in existing]
    superseded = [ids[c.code] for c in (*retiring, *updating)]
    if superseded:
        session.execute(
            update(AreaRevision)
            .where(AreaRevision.area_id.in_(superseded), AreaRevision.valid_to.is_(None))
            .values(valid_to=effective)
        )
    if retiring:
        session.execute(
            update(table)
            .where(table.c.id.in_([ids[c.code] for c in retiring]))
            .values(retired_at=effective)
        )
    if updating:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                boundary=bindparam("b_boundary", type_=table.c.boundary.type),
                name=func.coalesce(bindparam("b_name", type_=table.c.name.type), table.c.name),
                retired_at=None,  # a revived area (options.revive) is current again
            ),
            [
                {"b_id": ids[c.code], "b_boundary": to_db(c.geometry), "b_name": c.name}
                for c in updating
            ],
        )
    _insert_new_areas(session, creating, ids)
    upserts = [*updating, *creating]
    if upserts:
        names = dict(
            session.execute(
                select(Area.id, Area.name).where(Area.id.in_([ids[c.code] for c in upserts]))
            ).all()
        )
        parents = {c.code: ids.get(c.parent) for c in upserts}
        session.execute(
            insert(AreaRevision),
            [
                {
                    "area_id": ids[c.code],
                    "name": names[ids[c.code]],
                    "parent_id": parents[c.code],
                    "boundary": to_db(c.geometry),
                    "valid_from": effective,
                    "changeset_id": changeset.id,
                    "actor_id": changeset.actor_id,
                }
                for c in upserts
            ],
        )
    for area in existing.values():
        session.expire(area)  # written through Core above
    impact.areas.update(created=len(creating), updated=len(updating), retired=len(retiring))
    return {ids[c.code] for c in changes.values() if level_of_code(c.code) == LEVELS.leaf.name}


def _insert_new_areas(session, creating, ids: dict[str, int]) -> None:
    """New areas, level by level so every parent has its id before its children."""
    by_level: dict[int, list[ChangeFeature]] = defaultdict(list)
    for change in creating:
        by_level[len(change.code)].append(change)
    for length in sorted(by_level):
        rows = [
            {
                "code": c.code,
                "name": c.name,
                "level": level_of_code(c.code),
                "parent_id": ids.get(c.parent),
                "boundary": to_db(c.geometry),
            }
            for c in by_level[length]
        ]
        inserted = session.execute(insert(Area).returning(Area.id, Area.code), rows).all()
        ids.update({code: area_id for area_id, code in inserted})


def _end_assignments(session, changes, existing, effective, impact) -> None:
    retiring = [
        existing[c].id for c, ch in changes.items() if ch.action == "retire" and ch.end_assignments
    ]
    if not retiring:
        return
    ended = session.execute(
        update(Assignment)
        .where(Assignment.area_id.in_(retiring), active_assignment_filter())
        .values(active_to=effective)
        .returning(Assignment.id, Assignment.user_id, Assignment.area_id, Assignment.duty)
    ).all()
    codes = {existing[c].id: c for c in changes if c in existing}
    impact.assignments_ended = [
        {"id": a_id, "user": user_id, "area": codes[area_id], "duty": duty}
        for a_id, user_id, area_id, duty in ended
    ]


# Open incidents whose routing may change: in a touched micro-grid, not covered before, or
# now covered by a touched micro-grid; three index-friendly branches (partial indexes on open
# incidents, migration 0005) rather than one OR that would scan every incident. For each, the
# covering micro-grid on the new map (the lowest code, as in routing) and how many covered it.
# The id lists are cast to integer[]: psycopg sends a list of small ints as smallint[], and
# against that type PostgreSQL cannot hash the list, so `id = ANY(...)` scanned all 20,000 ids
# for each of 23,000 areas (32 s of a whole-district import; 4 s with the cast).
_LEAF_ID = LEVELS.leaf.column
_REROUTE_SQL = text(
    f"""
WITH candidate AS (
    SELECT i.id, i.location, i.{_LEAF_ID}, i.routing_method
    FROM incident i
    WHERE i.{_LEAF_ID} = ANY(CAST(:touched AS integer[]))
      AND i.status NOT IN ('rejected', 'duplicate', 'closed')
    UNION
    SELECT i.id, i.location, i.{_LEAF_ID}, i.routing_method
    FROM incident i
    WHERE i.routing_method <> 'covered' AND i.status NOT IN ('rejected', 'duplicate', 'closed')
    UNION
    SELECT i.id, i.location, i.{_LEAF_ID}, i.routing_method
    FROM area a JOIN incident i ON ST_Covers(a.boundary, i.location)
    WHERE a.id = ANY(CAST(:touched AS integer[])) AND a.retired_at IS NULL
      AND i.status NOT IN ('rejected', 'duplicate', 'closed')
)
SELECT c.id, c.{_LEAF_ID}, c.routing_method, ST_X(c.location), ST_Y(c.location),
       hit.id AS new_leaf_id, hit.candidates
FROM candidate c
LEFT JOIN LATERAL ({covered_sql("c.location")}) hit ON true
"""
)
_CHAIN_SELECT, _CHAIN_JOINS = chain_sql("ids.id", columns=("id",))
_CHAIN_SQL = text(
    f"SELECT {_CHAIN_SELECT} FROM unnest(CAST(:ids AS integer[])) AS ids(id) {_CHAIN_JOINS}"
)
# The incident's area columns in the chain's order (finest first).
_LEVEL_COLUMNS = tuple(level.column for level in LEVELS.upward)


def _reroute(session, actor, changeset, touched: set[int], options, impact) -> None:
    """Re-route the open incidents a change affects, in bulk, with a timeline event each."""
    if not touched:
        return
    rows = session.execute(_REROUTE_SQL, {"touched": list(touched)}).all()
    covered_ids = {row.new_leaf_id for row in rows if row.new_leaf_id}
    chains = {
        row[0]: dict(zip(_LEVEL_COLUMNS, row, strict=True))
        for row in session.execute(_CHAIN_SQL, {"ids": list(covered_ids)})
    }
    updates = []
    for incident_id, old_leaf, old_method, lon, lat, new_leaf, candidates in rows:
        if new_leaf is not None:
            new = {
                **chains[new_leaf],
                "routing_method": "covered",
                "routing_distance_m": 0.0,
                "routing_candidates": candidates,
            }
        else:  # covered by nothing now: nearest within the limit, or unrouted
            new = routing_columns(
                route_point(session, lon=lon, lat=lat, max_nearest_m=options.max_nearest_m)
            )
        if new[_LEAF_ID] != old_leaf or new["routing_method"] != old_method:
            updates.append({"b_id": incident_id, "old": old_leaf, **new})
    _write_reroutes(session, actor, changeset, updates, options, impact)


def _write_reroutes(session, actor, changeset, updates, options, impact) -> None:
    if not updates:
        return
    table = Incident.__table__
    columns = (*_LEVEL_COLUMNS, "routing_method", "routing_distance_m", "routing_candidates")
    # Core executemany: one statement for all rows; the version still goes up by one each.
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            {
                **{name: bindparam(name) for name in columns},
                "rerouted_at": changeset.effective_from,
                "version": table.c.version + 1,
                "updated_at": func.now(),
            }
        ),
        [{k: u[k] for k in ("b_id", *columns)} for u in updates],
    )
    codes = dict(
        session.execute(
            select(Area.id, Area.code).where(
                Area.id.in_({u["old"] for u in updates} | {u[_LEAF_ID] for u in updates})
            )
        ).all()
    )
    moves: dict[tuple[str | None, str | None], int] = defaultdict(int)
    events = []
    for u in updates:
        before, after = codes.get(u["old"]), codes.get(u[_LEAF_ID])
        moves[(before, after)] += 1
        events.append(
            {
                "incident_id": u["b_id"],
                "actor_id": actor.id if actor else None,
                "action": "reroute",
                "note": "Re-routed by a boundary change.",
                "data": {"changeset": changeset.id, "from": before, "to": after},
            }
        )
    session.execute(insert(IncidentEvent.__table__), events)
    impact.moved_open_incidents = len(updates)
    impact.moves = [
        {"from": a, "to": b, "count": n} for (a, b), n in sorted(moves.items(), key=str)
    ]
    if options.include_ids:
        impact.incident_ids = sorted(u["b_id"] for u in updates)
        impact.cases = [
            {"id": u["b_id"], "from": codes.get(u["old"]), "to": codes.get(u["microgrid_id"])}
            for u in sorted(updates, key=lambda u: u["b_id"])
        ]
