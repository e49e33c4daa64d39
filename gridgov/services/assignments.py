"""Assignments: who is assigned to which area, for which duty and period.

Rules: a `supervisor` duty is for a supervisor on a district, town or community; a
`grid_head`, `full_time` or `part_time` duty is for a worker on a grid or micro-grid. The same
user is never assigned twice to one area for overlapping periods, and an area has at most one
grid head at any moment. Both checks run while the area row is locked FOR NO KEY UPDATE, so two
admins assigning to one area at once are serialized (the user row is locked too, so an
assignment cannot slip in while the user is being deactivated). Admins and supervisors read
assignments to areas in their subtree (services/accounts.py says who reads whom).

Ending an assignment sets `active_to`; rows are never deleted. The CHECK
`active_to > active_from` forbids an empty period, so an assignment ended before it starts is
stored with a one-microsecond period at its planned start (see `end_assignment_at`).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from gridgov.errors import AreaNotFound, Conflict, NotFound, ValidationFailed
from gridgov.models import Area, Assignment, User
from gridgov.services.notifications import notify_assignment
from gridgov.services.paging import Page
from gridgov.services.scope import area_in_subtree
from gridgov.services.users import (
    active_assignment_filter,
    assigned_area_codes,
    audit_admin,
    lock_user,
    now_utc,
    require_people_reader,
    user_target,
)

# Which role may hold a duty, and on which area levels.
DUTY_ROLES = {"supervisor": "supervisor", "grid_head": "worker"}
DUTY_ROLES |= {"full_time": "worker", "part_time": "worker"}
SUPERVISOR_LEVELS = ("district", "town", "community")
WORKER_LEVELS = ("grid", "microgrid")
# The shortest period the database accepts (CHECK active_to > active_from).
MIN_PERIOD = timedelta(microseconds=1)


@dataclass(frozen=True)
class AssignmentView:
    id: int
    user: int
    area: str
    duty: str
    active_from: datetime
    active_to: datetime | None
    active: bool
    created_by: int | None


def assignment_view(assignment: Assignment, area_code: str, now: datetime) -> AssignmentView:
    """An assignment as the API shows it, active or not at `now`."""
    return AssignmentView(
        id=assignment.id,
        user=assignment.user_id,
        area=area_code,
        duty=assignment.duty,
        active_from=assignment.active_from,
        active_to=assignment.active_to,
        active=assignment.active_from <= now
        and (assignment.active_to is None or assignment.active_to > now),
        created_by=assignment.created_by_id,
    )


def open_assignment_filter(now: datetime) -> ColumnElement[bool]:
    """SQL condition: an assignment not ended by `now` (active now or in the future).

    An assignment cancelled before it started (see `end_assignment_at`) is not open.
    """
    return or_(
        Assignment.active_to.is_(None),
        (Assignment.active_to > now) & (Assignment.active_to > Assignment.active_from + MIN_PERIOD),
    )


def assignment_is_open(assignment: Assignment, now: datetime) -> bool:
    """`open_assignment_filter` in Python, for a loaded assignment."""
    end = assignment.active_to
    return end is None or (end > now and end > assignment.active_from + MIN_PERIOD)


def end_assignment_at(assignment: Assignment, now: datetime) -> None:
    """End an open assignment at `now`.

    One not yet started is cancelled: the CHECK active_to > active_from forbids the empty
    period that would say so, so it gets the shortest period the database accepts, and
    `open_assignment_filter` (hence the overlap and grid-head checks) ignores such a period.
    """
    assignment.active_to = max(now, assignment.active_from + MIN_PERIOD)


def end_open_assignments(session: Session, *, user_id: int, now: datetime) -> int:
    """End every open assignment of a user at `now`; how many there were."""
    assignments = session.scalars(
        select(Assignment).where(Assignment.user_id == user_id, open_assignment_filter(now))
    ).all()
    for assignment in assignments:
        end_assignment_at(assignment, now)
    return len(assignments)


def list_assignments(
    session: Session,
    *,
    viewer: User,
    user_id: int | None = None,
    area_code: str | None = None,
    active: bool | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> Page[AssignmentView]:
    """Assignments `viewer` may read, by id, filtered by user, area subtree and active now."""
    require_people_reader(viewer)
    now = now_utc()
    query = (
        select(Assignment, Area.code)
        .join(Area, Area.id == Assignment.area_id)
        .order_by(Assignment.id)
    )
    if viewer.role == "supervisor":
        query = query.where(area_in_subtree(assigned_area_codes(session, user_id=viewer.id)))
    if user_id is not None:
        query = query.where(Assignment.user_id == user_id)
    if area_code:
        query = query.where(area_in_subtree([area_code]))
    if active is True:
        query = query.where(active_assignment_filter(now))
    elif active is False:
        query = query.where(~active_assignment_filter(now))
    if after_id is not None:
        query = query.where(Assignment.id > after_id)
    rows = session.execute(query.limit(limit + 1)).all()
    return Page.of(rows, limit, lambda row: assignment_view(*row, now))


def _lock_area(session: Session, code: str) -> Area:
    area = session.scalar(
        select(Area)
        .where(Area.code == code, Area.retired_at.is_(None))
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    if area is None:
        raise AreaNotFound(f"No current area with code {code!r}.", details={"code": code})
    return area


def _overlapping(start: datetime, end: datetime | None) -> ColumnElement[bool]:
    """SQL condition: an assignment whose period overlaps [start, end) (end None: open)."""
    condition = open_assignment_filter(start)
    if end is not None:
        condition = condition & (Assignment.active_from < end)
    return condition


def create_assignment(
    session: Session,
    *,
    actor: User,
    user_id: int,
    area_code: str,
    duty: str,
    active_from: datetime | None = None,
    active_to: datetime | None = None,
) -> AssignmentView:
    """Assign a user to an area for a period (from now by default), enforcing the duty rules."""
    now = now_utc()
    active_from = active_from or now
    if active_to is not None and active_to <= active_from:
        raise ValidationFailed(
            "active_to must be later than active_from.",
            code="invalid_period",
            errors={"json": {"active_to": ["Must be later than active_from."]}},
        )
    # Lock order: user, then area (as everywhere else that takes both).
    user = lock_user(session, user_id)
    area = _lock_area(session, area_code)
    if not user.is_active:
        raise ValidationFailed(f"User {user.id} is deactivated.", code="user_inactive")
    _check_duty(user, area, duty)
    period = _overlapping(active_from, active_to)
    clash = session.scalar(
        select(Assignment.id).where(
            Assignment.user_id == user.id, Assignment.area_id == area.id, period
        )
    )
    if clash is not None:
        raise Conflict(
            f"User {user.id} is already assigned to {area.code} for part of that period.",
            code="assignment_overlap",
            details={"assignment": clash},
        )
    if duty == "grid_head":
        head = session.scalar(
            select(Assignment.id).where(
                Assignment.area_id == area.id, Assignment.duty == "grid_head", period
            )
        )
        if head is not None:
            raise Conflict(
                f"{area.code} already has a grid head for part of that period.",
                code="grid_head_taken",
                details={"assignment": head},
            )
    assignment = Assignment(
        user_id=user.id,
        area_id=area.id,
        duty=duty,
        active_from=active_from,
        active_to=active_to,
        created_by_id=actor.id,
    )
    session.add(assignment)
    session.flush()
    audit_admin(
        session,
        actor,
        "create_assignment",
        f"{assignment.id}: {user_target(user)} {duty} on {area.code} from {active_from}",
    )
    notify_assignment(
        session, assignment=assignment, area_code=area.code, change="created", actor=actor
    )
    return assignment_view(assignment, area.code, now)


def _check_duty(user: User, area: Area, duty: str) -> None:
    role = DUTY_ROLES.get(duty)
    if role is None:
        raise ValidationFailed(f"Unknown duty {duty!r}.", errors={"json": {"duty": ["Unknown."]}})
    if user.role != role:
        raise ValidationFailed(
            f"The duty {duty} is for a {role}; user {user.id} is a {user.role}.",
            code="assignment_role_mismatch",
            details={"duty": duty, "role": user.role},
        )
    levels = SUPERVISOR_LEVELS if duty == "supervisor" else WORKER_LEVELS
    if area.level not in levels:
        raise ValidationFailed(
            f"The duty {duty} is held on a {' or '.join(levels)}, not on a {area.level}.",
            code="assignment_level_mismatch",
            details={"duty": duty, "level": area.level},
        )


def end_assignment(session: Session, *, actor: User, assignment_id: int) -> AssignmentView:
    """End an assignment now (history kept); ending an ended one changes nothing."""
    assignment = session.get(
        Assignment, assignment_id, with_for_update={"key_share": True}, populate_existing=True
    )
    if assignment is None:
        raise NotFound(
            f"No assignment {assignment_id}.",
            code="assignment_not_found",
            details={"id": assignment_id},
        )
    now = now_utc()
    ended = assignment_is_open(assignment, now)
    if ended:
        end_assignment_at(assignment, now)
        session.flush()
        audit_admin(
            session, actor, "end_assignment", f"{assignment.id} of user {assignment.user_id}"
        )
    code = session.scalar(select(Area.code).where(Area.id == assignment.area_id))
    if ended:
        notify_assignment(
            session, assignment=assignment, area_code=code, change="ended", actor=actor
        )
    return assignment_view(assignment, code, now)
