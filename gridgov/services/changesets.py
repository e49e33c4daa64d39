"""The history of boundary change sets (list and detail), and the life of a scheduled one:
applied when it falls due (`flask boundaries apply-due`) or cancelled before.

A pending set is applied by `apply_pending` into its own row, checked again against the map as
it is at that moment (services/boundaries.submit_changeset, the same core as every change); if
it no longer fits, the row becomes `failed` with the problems in `summary.failure`, and the map
is left as it was. Each set is applied in its own transaction (the caller commits after each),
the row locked FOR UPDATE SKIP LOCKED, so two runs of the job at once, or one run after another,
apply a set once: the job is idempotent and safe to run every minute from cron.

Its revisions start at effective_from even when the job runs a little later: the history shows
the map the schedule promised, and the open cases reported in between (routed on the old map)
are re-routed by the change like every open case it affects.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from shapely.geometry import Point, shape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geo.levels import LEVELS
from gridgov.errors import ChangesetNotFound, Conflict
from gridgov.models import Area, AreaRevision, BoundaryChangeset, User
from gridgov.services import audit
from gridgov.services.boundaries import ChangeSetOptions, ChangeSetResult, submit_changeset
from gridgov.services.paging import Page
from gridgov.services.routing import ROUTE_LEVELS, AreaRef, Routing, route_point_at
from gridgov.spatial import geojson_sql, point_sql


@dataclass(frozen=True)
class ChangesetView:
    id: int
    source: str
    description: str
    created_at: datetime
    effective_from: datetime
    applied_at: datetime | None
    status: str
    author: str | None
    counts: dict
    reverts: int | None
    reverted_by: int | None
    failure: dict | None


def _view(changeset: BoundaryChangeset, author: str | None) -> ChangesetView:
    summary = changeset.summary or {}
    return ChangesetView(
        id=changeset.id,
        source=changeset.source,
        description=changeset.description,
        created_at=changeset.created_at,
        effective_from=changeset.effective_from,
        applied_at=changeset.applied_at,
        status=changeset.status,
        author=author,
        counts={
            **summary.get("areas", {}),
            "moved_open_incidents": summary.get("moved_open_incidents", 0),
        },
        reverts=summary.get("reverts"),
        reverted_by=summary.get("reverted_by"),
        failure=summary.get("failure"),
    )


def _with_author():
    return select(BoundaryChangeset, User.username).outerjoin(
        User, User.id == BoundaryChangeset.actor_id
    )


def list_changesets(
    session: Session, *, status: str | None = None, before_id: int | None = None, limit: int = 50
) -> Page[ChangesetView]:
    """Change sets newest first (keyset-paged by id), optionally of one status."""
    query = _with_author().order_by(BoundaryChangeset.id.desc()).limit(limit + 1)
    if status:
        query = query.where(BoundaryChangeset.status == status)
    if before_id:
        query = query.where(BoundaryChangeset.id < before_id)
    return Page.of(session.execute(query).all(), limit, lambda row: _view(*row))


def _get(session: Session, changeset_id: int, *, for_update: bool = False) -> BoundaryChangeset:
    query = select(BoundaryChangeset).where(BoundaryChangeset.id == changeset_id)
    changeset = session.scalar(query.with_for_update() if for_update else query)
    if changeset is None:
        raise ChangesetNotFound(
            f"No change set {changeset_id}.", details={"changeset": changeset_id}
        )
    return changeset


def written_areas(
    session: Session, changeset: BoundaryChangeset
) -> tuple[list[tuple[Area, AreaRevision]], list[Area]]:
    """What an applied change set did: (area, revision) for each area it wrote, and the areas
    it retired (a retirement writes no revision: it closes the last one at the set's time)."""
    written = session.execute(
        select(Area, AreaRevision)
        .join(AreaRevision, AreaRevision.area_id == Area.id)
        .where(AreaRevision.changeset_id == changeset.id)
        .order_by(Area.code)
    ).all()
    retired = session.scalars(
        select(Area)
        .where(
            Area.id.in_(
                select(AreaRevision.area_id).where(
                    AreaRevision.valid_to == changeset.effective_from
                )
            ),
            Area.id.not_in([area.id for area, _ in written]),
        )
        .order_by(Area.code)
    ).all()
    return [tuple(row) for row in written], list(retired)


def changeset_detail(session: Session, changeset_id: int) -> tuple[ChangesetView, dict, list]:
    """One change set: its summary view, its areas as a GeoJSON FeatureCollection (what it wrote
    when applied, what was submitted otherwise) and the case moves it made."""
    changeset = _get(session, changeset_id)
    author = session.scalar(select(User.username).where(User.id == changeset.actor_id))
    if changeset.status == "applied":
        features = _applied_features(session, changeset)
    else:
        features = list((changeset.submitted or {}).get("features", []))
    collection = {"type": "FeatureCollection", "features": features}
    return _view(changeset, author), collection, (changeset.summary or {}).get("moves", [])


def _applied_features(session: Session, changeset: BoundaryChangeset) -> list[dict]:
    written, retired = written_areas(session, changeset)
    shapes = dict(
        session.execute(
            select(AreaRevision.id, geojson_sql(AreaRevision.boundary)).where(
                AreaRevision.changeset_id == changeset.id
            )
        ).all()
    )
    features = [
        {
            "type": "Feature",
            "id": area.code,
            "geometry": json.loads(shapes[revision.id]),
            "properties": {"code": area.code, "name": revision.name, "action": "upsert"},
        }
        for area, revision in written
    ]
    features += [
        {
            "type": "Feature",
            "id": area.code,
            "geometry": None,
            "properties": {"code": area.code, "name": area.name, "action": "retire"},
        }
        for area in retired
    ]
    return features


def cancel(session: Session, *, actor: User, changeset_id: int) -> ChangesetView:
    """Cancel a pending change set (409 changeset_not_pending for any other)."""
    changeset = _get(session, changeset_id, for_update=True)
    if changeset.status != "pending":
        raise Conflict(
            f"Change set {changeset.id} is {changeset.status}: only a pending one can be"
            " cancelled.",
            code="changeset_not_pending",
            details={"changeset": changeset.id, "status": changeset.status},
        )
    changeset.status = "cancelled"
    changeset.summary = {
        **changeset.summary,
        "cancelled": {"by": actor.username, "at": datetime.now(UTC).isoformat()},
    }
    session.flush()
    audit.record(
        session, actor=actor, action="cancel_changeset", target=f"changeset {changeset.id}"
    )
    return _view(
        changeset, session.scalar(select(User.username).where(User.id == changeset.actor_id))
    )


def due_changesets(session: Session, *, now: datetime) -> list[int]:
    """Ids of the pending change sets due at `now`, in the order they take effect."""
    return list(
        session.scalars(
            select(BoundaryChangeset.id)
            .where(BoundaryChangeset.status == "pending", BoundaryChangeset.effective_from <= now)
            .order_by(BoundaryChangeset.effective_from, BoundaryChangeset.id)
        )
    )


def apply_pending(
    session: Session, changeset_id: int, *, tolerances, max_nearest_m: float
) -> ChangeSetResult | None:
    """Apply one due pending change set, or mark it failed; None when it is no longer pending
    (applied or cancelled meanwhile) or another run holds it."""
    changeset = session.scalar(
        select(BoundaryChangeset)
        .where(BoundaryChangeset.id == changeset_id, BoundaryChangeset.status == "pending")
        .with_for_update(skip_locked=True)
    )
    if changeset is None:
        return None
    submitted = changeset.submitted
    options = ChangeSetOptions(
        dry_run=False,
        revive=frozenset(submitted.get("revive", ())),
        effective_from=changeset.effective_from,
        source=changeset.source,
        description=changeset.description,
        tolerances=tolerances,
        max_nearest_m=max_nearest_m,
    )
    actor = session.get(User, changeset.actor_id) if changeset.actor_id else None
    result = submit_changeset(
        session, actor=actor, features=submitted["features"], options=options, pending=changeset
    )
    if not result.valid:
        problems = [problem.as_dict() for problem in result.problems]
        changeset.status = "failed"
        changeset.summary = {
            **changeset.summary,
            "failure": {"at": datetime.now(UTC).isoformat(), "problems": problems},
        }
        session.flush()
        audit.record(
            session,
            actor=None,
            action="changeset_failed",
            target=f"changeset {changeset.id}",
            outcome="failed",
            data={"changeset": changeset.id, "problems": [p["kind"] for p in problems]},
        )
        result.changeset_id = changeset.id
        result.status = "failed"
    return result


def route_at(session: Session, *, lon: float, lat: float, at: datetime) -> Routing:
    """Route a point on the map of `at`: the revisions valid then; for an instant after a
    pending set's time, the pending sets due by then laid over the current map, in order."""
    now = datetime.now(UTC)
    due = (
        session.scalars(
            select(BoundaryChangeset.submitted)
            .where(BoundaryChangeset.status == "pending", BoundaryChangeset.effective_from <= at)
            .order_by(BoundaryChangeset.effective_from, BoundaryChangeset.id)
        ).all()
        if at > now
        else []
    )
    if not due:
        return route_point_at(session, lon=lon, lat=lat, at=at)
    # code -> (shape or None when retired, name or None when unchanged), the last set winning.
    overlay: dict[str, tuple] = {}
    for submitted in due:
        for feature in submitted["features"]:
            props, geometry = feature["properties"], feature["geometry"]
            overlay[props["code"]] = (
                shape(geometry) if geometry else None,
                props.get("name") or overlay.get(props["code"], (None, None))[1],
            )
    point = Point(lon, lat)
    leaf = LEVELS.leaf
    covering = session.execute(
        select(Area.code).where(
            Area.level == leaf.name,
            Area.retired_at.is_(None),
            func.ST_Covers(Area.boundary, point_sql(lon, lat)),
        )
    ).scalars()
    codes = {code for code in covering if code not in overlay}
    codes |= {
        code
        for code, (boundary, _) in overlay.items()
        if len(code) == leaf.code_length and boundary is not None and boundary.covers(point)
    }
    if not codes:
        return Routing(lon=lon, lat=lat, method="unrouted", distance_m=0.0, candidates=0)
    chosen = min(codes)  # the lowest code, as routing breaks ties
    chain = [chosen[: LEVELS[level].code_length] for level in ROUTE_LEVELS]
    known = {
        row.code: row
        for row in session.execute(
            select(Area.id, Area.code, Area.name).where(Area.code.in_(chain))
        )
    }
    areas = {}
    for level, code in zip(ROUTE_LEVELS, chain, strict=True):
        name = overlay.get(code, (None, None))[1] or (known[code].name if code in known else None)
        # An area the set creates has no id before it is applied.
        areas[level] = AreaRef(known[code].id if code in known else None, code, name)
    return Routing(
        lon=lon,
        lat=lat,
        method="covered",
        distance_m=0.0,
        candidates=len(codes),
        areas=areas,
    )
