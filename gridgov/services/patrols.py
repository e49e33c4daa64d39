"""Patrols: a worker's walk through their area, uploaded from a phone with weak signal.

- Start is idempotent per (worker, phone client id), enforced by the unique constraint
  `uq_patrol_worker_client` with INSERT … ON CONFLICT DO NOTHING and a fetch (never
  check-then-insert): a replay with the same started_at returns the patrol, a different
  started_at is `client_id_conflict`.
- Track uploads are idempotent per point time (`uq_track_point_patrol_t`): a phone may resend
  a batch, in any order, as often as it likes; one INSERT … ON CONFLICT DO NOTHING per batch.
- Back-dating is bounded by `max_backdate` (GRIDGOV_PATROL_MAX_BACKDATE_HOURS): a new patrol
  may not start, a new point may not be stamped, and a patrol may not be finished longer ago
  than that, or a month's coverage and rankings could be rewritten after the fact. Replays are
  not new: the start of a patrol already recorded, or a point time it already holds, still
  answers as before once the window has passed (phones retry for days). The patrol's
  created_at and each point's recorded_at are the `now` the window was checked against, so
  everything accepted here passes the indicators' in-time rule (services/stats.py).
- Finish computes the summary in SQL: the geodesic length of the track (ST_MakeLine ordered
  by time, measured as geography) and how many of the worker's current micro-grids the track
  touches. Finishing again returns the stored summary.

Locks: a track upload holds the patrol row FOR SHARE and a finish FOR NO KEY UPDATE, so a
finish never summarises a track while a batch is still being written into it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from geoalchemy2 import Geography
from sqlalchemy import (
    DateTime,
    Float,
    Select,
    Text,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, aliased

from geo.codes import LEVEL_CODE_LENGTH
from gridgov.errors import Conflict, NotFound, ValidationFailed
from gridgov.models import Area, Assignment, Patrol, TrackPoint, User
from gridgov.services.paging import Page
from gridgov.services.scope import patrol_scope
from gridgov.services.users import active_assignment_filter
from gridgov.spatial import SRID

MAX_POINTS_PER_UPLOAD = 1000
# How far ahead of the server's clock a phone's clock may run.
CLOCK_SKEW = timedelta(minutes=5)
# Points stamped a little before the patrol started (GPS fix before the tap) are kept.
EARLY_POINT_TOLERANCE = timedelta(minutes=1)
MICROGRID_CODE_LENGTH = LEVEL_CODE_LENGTH["microgrid"]


@dataclass(frozen=True)
class TrackFix:
    """One GPS fix to upload: its time, WGS-84 position and what the phone sent."""

    t: datetime
    lon: float
    lat: float
    input_lon: float
    input_lat: float
    input_crs: str
    accuracy_m: float | None = None


@dataclass(frozen=True)
class PatrolView:
    """A patrol with its point count; the summary fields are None until it is finished."""

    id: int
    client_id: str
    started_at: datetime
    finished_at: datetime | None
    points: int
    length_m: float | None
    microgrids_assigned: int | None
    microgrids_visited: int | None

    @property
    def coverage(self) -> float | None:
        """Visited / assigned micro-grids; None before finishing or with nothing assigned."""
        if not self.microgrids_assigned or self.microgrids_visited is None:
            return None
        return self.microgrids_visited / self.microgrids_assigned


@dataclass(frozen=True)
class StartedPatrol:
    patrol: PatrolView
    created: bool  # False: a replay of a start already recorded


@dataclass(frozen=True)
class TrackUpload:
    accepted: int  # points new to the patrol
    duplicates: int  # points whose time the patrol already had (or repeated in the batch)
    points: int  # the patrol's points after the upload


def start_patrol(
    session: Session,
    *,
    worker_id: int,
    client_id: str,
    started_at: datetime,
    max_backdate: timedelta,
    now: datetime | None = None,
) -> StartedPatrol:
    """Start a patrol, or return the one this client id already started (same started_at)."""
    _require_aware(started_at, "started_at")
    now = now or datetime.now(UTC)
    if started_at > now + CLOCK_SKEW:
        raise ValidationFailed(
            "started_at is in the future.",
            code="started_at_in_future",
            errors={"json": {"started_at": ["Must not be more than 5 minutes ahead."]}},
        )
    inserted_id = None
    # Too old for a new patrol: only a replay of a start already recorded may be answered.
    if started_at >= now - max_backdate:
        inserted_id = session.scalar(
            pg_insert(Patrol)
            .values(worker_id=worker_id, client_id=client_id, started_at=started_at, created_at=now)
            .on_conflict_do_nothing(index_elements=["worker_id", "client_id"])
            .returning(Patrol.id)
        )
    patrol = session.scalars(
        select(Patrol)
        .where(Patrol.worker_id == worker_id, Patrol.client_id == client_id)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if patrol is None:
        raise _too_old("started_at", "started_at_too_old", max_backdate)
    if inserted_id is None and patrol.started_at != started_at:
        raise Conflict(
            f"client_id {client_id!r} already started a patrol at another time.",
            code="client_id_conflict",
            details={"patrol_id": patrol.id, "started_at": patrol.started_at.isoformat()},
        )
    return StartedPatrol(patrol=_view(session, patrol), created=inserted_id is not None)


def add_track_points(
    session: Session,
    *,
    patrol_id: int,
    worker_id: int,
    fixes: Sequence[TrackFix],
    max_backdate: timedelta,
    now: datetime | None = None,
) -> TrackUpload:
    """Add a batch of fixes to the worker's open patrol; fixes at a time already held are kept."""
    patrol = _own_patrol(session, patrol_id=patrol_id, worker_id=worker_id, lock="share")
    if patrol.finished_at is not None:
        raise Conflict(
            f"Patrol {patrol_id} is finished; it takes no more points.",
            code="patrol_finished",
            details={"patrol_id": patrol_id, "finished_at": patrol.finished_at.isoformat()},
        )
    if len(fixes) > MAX_POINTS_PER_UPLOAD:
        raise too_many_points(len(fixes))
    now = now or datetime.now(UTC)
    _check_fix_times(session, patrol=patrol, fixes=fixes, now=now, max_backdate=max_backdate)
    accepted = _insert_fixes(session, patrol_id=patrol_id, fixes=fixes, now=now) if fixes else 0
    return TrackUpload(
        accepted=accepted,
        duplicates=len(fixes) - accepted,
        points=_point_count(session, patrol_id),
    )


def finish_patrol(
    session: Session,
    *,
    patrol_id: int,
    worker_id: int,
    max_backdate: timedelta,
    finished_at: datetime | None = None,
    now: datetime | None = None,
) -> PatrolView:
    """Finish the worker's patrol and store its summary; a finished patrol returns its summary."""
    patrol = _own_patrol(session, patrol_id=patrol_id, worker_id=worker_id, lock="update")
    if patrol.finished_at is not None:
        return _view(session, patrol)
    now = now or datetime.now(UTC)
    if finished_at is None:
        finished_at = max(now, patrol.started_at)
    _require_aware(finished_at, "finished_at")
    if finished_at < patrol.started_at:
        raise ValidationFailed(
            "finished_at is before the patrol started.",
            code="finished_before_start",
            errors={"json": {"finished_at": ["Must not be before started_at."]}},
            details={"started_at": patrol.started_at.isoformat()},
        )
    if finished_at < now - max_backdate:
        raise _too_old("finished_at", "finished_at_too_old", max_backdate)
    if finished_at > now + CLOCK_SKEW:
        raise ValidationFailed(
            "finished_at is in the future.",
            code="finished_at_in_future",
            errors={"json": {"finished_at": ["Must not be more than 5 minutes ahead."]}},
        )
    points, length_m, assigned, visited = _summary(
        session, patrol_id=patrol.id, worker_id=worker_id
    )
    patrol.finished_at = finished_at
    patrol.length_m = length_m
    patrol.microgrids_assigned = assigned
    patrol.microgrids_visited = visited
    session.flush()
    return _view(session, patrol, points=points)


def get_patrol(session: Session, *, patrol_id: int, viewer: User) -> PatrolView:
    """One patrol `viewer` may read (services/scope.py); else patrol_not_found."""
    patrol = session.scalar(
        select(Patrol).where(Patrol.id == patrol_id, patrol_scope(session, user=viewer))
    )
    if patrol is None:
        raise _not_found(patrol_id)
    return _view(session, patrol)


def list_patrols(
    session: Session,
    *,
    viewer: User,
    worker_id: int | None = None,
    after: tuple[datetime, int] | None = None,
    limit: int = 50,
) -> Page[PatrolView]:
    """Patrols newest first (started_at, id descending), keyset-paged by `after`.

    The viewer's own, or with `worker_id` that worker's that the viewer may read (none when
    the viewer may read none of them: a guessed id reveals nothing).
    """
    query = (
        select(Patrol, _point_count_sql(Patrol.id))
        .where(Patrol.worker_id == (viewer.id if worker_id is None else worker_id))
        .where(patrol_scope(session, user=viewer))
        .order_by(Patrol.started_at.desc(), Patrol.id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(tuple_(Patrol.started_at, Patrol.id) < tuple_(*after))
    rows = session.execute(query).all()
    return Page.of(rows, limit, lambda row: _view(session, row[0], points=row[1]))


def get_open_patrol_of_worker(session: Session, *, patrol_id: int, worker_id: int) -> Patrol:
    """The worker's open patrol, locked FOR SHARE; else ValidationFailed(patrol_not_attachable)."""
    patrol = session.scalar(
        select(Patrol)
        .where(Patrol.id == patrol_id, Patrol.worker_id == worker_id)
        .with_for_update(read=True)
        .execution_options(populate_existing=True)
    )
    if patrol is None or patrol.finished_at is not None:
        raise ValidationFailed(
            f"Patrol {patrol_id} is not an open patrol of this worker.",
            code="patrol_not_attachable",
            errors={"json": {"patrol_id": ["Not an open patrol of yours."]}},
            details={"patrol_id": patrol_id},
        )
    return patrol


def too_many_points(count: int) -> ValidationFailed:
    """The error for an upload of more than MAX_POINTS_PER_UPLOAD points."""
    return ValidationFailed(
        f"At most {MAX_POINTS_PER_UPLOAD} points per upload; split the batch.",
        code="too_many_points",
        errors={"json": {"points": [f"At most {MAX_POINTS_PER_UPLOAD} points, got {count}."]}},
        details={"max": MAX_POINTS_PER_UPLOAD, "received": count},
    )


# --- helpers -------------------------------------------------------------------------------


def _require_aware(value: datetime, field: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed(
            f"{field} needs a UTC offset.",
            errors={"json": {field: ["Not a valid aware datetime."]}},
        )


def _hours(limit: timedelta) -> float:
    return limit / timedelta(hours=1)


def _too_old(field: str, code: str, max_backdate: timedelta) -> ValidationFailed:
    hours = _hours(max_backdate)
    return ValidationFailed(
        f"{field} is more than {hours:g} hours ago.",
        code=code,
        errors={"json": {field: [f"Must not be more than {hours:g} hours in the past."]}},
        details={"max_backdate_hours": hours},
    )


def _not_found(patrol_id: int) -> NotFound:
    return NotFound(f"No patrol {patrol_id}.", code="patrol_not_found")


def _own_patrol(session: Session, *, patrol_id: int, worker_id: int, lock: str) -> Patrol:
    query = (
        select(Patrol)
        .where(Patrol.id == patrol_id, Patrol.worker_id == worker_id)
        .execution_options(populate_existing=True)
    )
    if lock == "share":
        query = query.with_for_update(read=True)
    else:  # FOR NO KEY UPDATE: blocks uploads (FOR SHARE), not foreign-key checks
        query = query.with_for_update(key_share=True)
    patrol = session.scalar(query)
    if patrol is None:
        raise _not_found(patrol_id)
    return patrol


def _check_fix_times(
    session: Session,
    *,
    patrol: Patrol,
    fixes: Sequence[TrackFix],
    now: datetime,
    max_backdate: timedelta,
) -> None:
    started_at = patrol.started_at
    earliest, latest = started_at - EARLY_POINT_TOLERANCE, now + CLOCK_SKEW
    oldest = now - max_backdate
    # A fix older than the window is refused unless the patrol holds it already (a resend).
    held = _held_times(session, patrol_id=patrol.id, times=[f.t for f in fixes if f.t < oldest])
    problems: dict[int, dict[str, list[str]]] = {}
    for index, fix in enumerate(fixes):
        if fix.t < earliest:
            problems[index] = {"t": ["Before the patrol started (more than 1 minute)."]}
        elif fix.t > latest:
            problems[index] = {"t": ["More than 5 minutes in the future."]}
        elif fix.t < oldest and fix.t not in held:
            problems[index] = {"t": [f"More than {_hours(max_backdate):g} hours in the past."]}
    if problems:
        raise ValidationFailed(
            f"{len(problems)} point(s) have a time outside the patrol; nothing was stored.",
            code="point_time_out_of_range",
            errors={"json": {"points": problems}},
            details={
                "indexes": sorted(problems),
                "started_at": started_at.isoformat(),
                "max_backdate_hours": _hours(max_backdate),
            },
        )


def _held_times(session: Session, *, patrol_id: int, times: list[datetime]) -> set[datetime]:
    """Those of `times` the patrol already has a point at."""
    if not times:
        return set()
    return set(
        session.scalars(
            select(TrackPoint.t).where(TrackPoint.patrol_id == patrol_id, TrackPoint.t.in_(times))
        )
    )


def _array(values: list, item_type) -> object:
    return cast(literal(values, ARRAY(item_type)), ARRAY(item_type))


def _insert_fixes(
    session: Session, *, patrol_id: int, fixes: Sequence[TrackFix], now: datetime
) -> int:
    """INSERT the batch from unnest()ed arrays in one statement; return how many were new."""
    batch = (
        func.unnest(
            _array([f.t for f in fixes], DateTime(timezone=True)),
            _array([f.lon for f in fixes], Float),
            _array([f.lat for f in fixes], Float),
            _array([f.input_lon for f in fixes], Float),
            _array([f.input_lat for f in fixes], Float),
            _array([f.input_crs for f in fixes], Text),
            _array([f.accuracy_m for f in fixes], Float),
        )
        .table_valued(
            "t", "lon", "lat", "input_lon", "input_lat", "input_crs", "accuracy_m", name="fix"
        )
        .render_derived()
    )
    table = TrackPoint.__table__
    rows = select(
        literal(patrol_id),
        batch.c.t,
        func.ST_SetSRID(func.ST_MakePoint(batch.c.lon, batch.c.lat), SRID),
        batch.c.input_lon,
        batch.c.input_lat,
        batch.c.input_crs,
        batch.c.accuracy_m,
        literal(now, DateTime(timezone=True)),
    )
    columns = ["patrol_id", "t", "location", "input_lon", "input_lat", "input_crs", "accuracy_m"]
    statement = (
        pg_insert(table)
        .from_select([*columns, "recorded_at"], rows)
        .on_conflict_do_nothing(index_elements=["patrol_id", "t"])
        .returning(table.c.id)
    )
    return len(session.execute(statement).all())


def _point_count_sql(patrol_id_column):
    return (
        select(func.count())
        .select_from(TrackPoint)
        .where(TrackPoint.patrol_id == patrol_id_column)
        .scalar_subquery()
    )


def _point_count(session: Session, patrol_id: int) -> int:
    return session.scalar(select(_point_count_sql(patrol_id)))


def _summary(session: Session, *, patrol_id: int, worker_id: int) -> tuple[int, float, int, int]:
    """(points, length_m, micro-grids assigned, visited)."""
    row = session.execute(_summary_query(patrol_id=patrol_id, worker_id=worker_id)).one()
    return int(row[0]), float(row[1]), int(row[2]), int(row[3])


def _summary_query(*, patrol_id: int, worker_id: int) -> Select:
    """One query for (points, length_m, micro-grids assigned, visited).

    The track is the line through the points in time order (one place only: the point).
    Assigned: current micro-grids whose code extends the code of an area the worker is on
    duty in now (a grid covers its micro-grids, a micro-grid itself). Visited: those the track
    intersects. Length: geodesic, on the spheroid, via geography.
    """
    line = func.ST_MakeLine(aggregate_order_by(TrackPoint.location, TrackPoint.t))
    track = (
        select(
            func.count(TrackPoint.id).label("n"),
            # A line needs two distinct places: a single fix, or a worker standing still, is
            # kept as (multi)points, since a zero-length line intersects nothing.
            case(
                (func.ST_Length(line) > 0, line), else_=func.ST_Collect(TrackPoint.location)
            ).label("path"),
        )
        .where(TrackPoint.patrol_id == patrol_id)
        .cte("track")
    )
    on_duty = aliased(Area)
    microgrid = aliased(Area)
    current_microgrid = and_(microgrid.level == "microgrid", microgrid.retired_at.is_(None))
    on_duty_now = and_(Assignment.user_id == worker_id, active_assignment_filter())
    # Assigned: from the worker's few assignments down to the micro-grids under them.
    assigned = (
        select(func.count(func.distinct(microgrid.id)))
        .select_from(Assignment)
        .join(on_duty, on_duty.id == Assignment.area_id)
        .join(microgrid, and_(current_microgrid, _extends(microgrid.code, on_duty.code)))
        .where(on_duty_now)
        .scalar_subquery()
    )
    # Visited: the GiST index finds the micro-grids the track touches; keep the assigned ones.
    visited = (
        select(func.count())
        .select_from(microgrid)
        .where(
            current_microgrid,
            func.ST_Intersects(microgrid.boundary, track.c.path),
            exists(
                select(Assignment.id)
                .join(on_duty, on_duty.id == Assignment.area_id)
                .where(on_duty_now, _extends(microgrid.code, on_duty.code))
            ),
        )
        .scalar_subquery()
    )
    length = func.coalesce(func.ST_Length(cast(track.c.path, Geography)), 0.0)
    return select(
        track.c.n,
        length,
        assigned,
        visited,
    ).select_from(track)


def _extends(code, prefix):
    """SQL: `code` lies under the area `prefix` (or is it); the range lets an index serve it."""
    return and_(
        code.between(
            func.rpad(prefix, MICROGRID_CODE_LENGTH, "0"),
            func.rpad(prefix, MICROGRID_CODE_LENGTH, "9"),
        ),
        code.like(prefix + "%"),
    )


def _view(session: Session, patrol: Patrol, *, points: int | None = None) -> PatrolView:
    return PatrolView(
        id=patrol.id,
        client_id=patrol.client_id,
        started_at=patrol.started_at,
        finished_at=patrol.finished_at,
        points=_point_count(session, patrol.id) if points is None else points,
        length_m=patrol.length_m,
        microgrids_assigned=patrol.microgrids_assigned,
        microgrids_visited=patrol.microgrids_visited,
    )
