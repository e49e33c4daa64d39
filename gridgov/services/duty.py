"""Who is on duty: the people of an area now, and who should handle a new case."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, false, or_, select, tuple_
from sqlalchemy.orm import Session

from gridgov.errors import AreaNotFound, Forbidden
from gridgov.models import Area, Assignment, User
from gridgov.services.paging import Page
from gridgov.services.users import active_assignment_filter, assigned_area_codes

# Order of the on-duty list: grid heads first.
DUTY_ORDER = ("grid_head", "full_time", "part_time", "supervisor")


@dataclass(frozen=True)
class PersonRef:
    id: int
    username: str
    display_name: str
    role: str


@dataclass(frozen=True)
class OnDuty:
    """One person on duty in an area; `rank` and `assignment_id` are its paging key."""

    user: PersonRef
    duty: str
    area: str
    active_from: datetime
    rank: int
    assignment_id: int


def _may_see_area(session: Session, viewer: User, code: str) -> bool:
    if viewer.role == "admin":
        return True
    assigned = assigned_area_codes(session, user_id=viewer.id)
    if viewer.role == "supervisor":
        return any(code.startswith(a) for a in assigned)
    return any(code.startswith(a) or a.startswith(code) for a in assigned)


def _duty_rank() -> ColumnElement[int]:
    return case({duty: rank for rank, duty in enumerate(DUTY_ORDER)}, value=Assignment.duty)


def workers_on_duty(
    session: Session,
    *,
    viewer: User,
    area_code: str,
    after: tuple[int, int, int] | None = None,
    limit: int = 50,
) -> Page[OnDuty]:
    """Active users on duty now in an area (with its grid or micro-grids), grid heads first."""
    # A grid includes its micro-grids' people, a micro-grid its grid's. `after` is the paging
    # key (duty rank, user id, assignment id) of the last item of the previous page.
    area = session.scalar(select(Area).where(Area.code == area_code, Area.retired_at.is_(None)))
    if area is None:
        raise AreaNotFound(f"No current area with code {area_code!r}.", details={"code": area_code})
    if not _may_see_area(session, viewer, area.code):
        raise Forbidden(f"The area {area.code} is outside your scope.")
    area_ids = select(Area.id).where(Area.id == area.id)
    if area.level == "microgrid" and area.parent_id is not None:
        area_ids = select(Area.id).where(Area.id.in_([area.id, area.parent_id]))
    elif area.level == "grid":
        area_ids = select(Area.id).where(or_(Area.id == area.id, Area.parent_id == area.id))
    rank = _duty_rank()
    query = (
        select(User, Assignment, Area.code, rank.label("rank"))
        .join(Assignment, Assignment.user_id == User.id)
        .join(Area, Area.id == Assignment.area_id)
        .where(
            Assignment.area_id.in_(area_ids),
            active_assignment_filter(),
            User.is_active.is_(True),
        )
        .order_by(rank, User.id, Assignment.id)
    )
    if after is not None:
        query = query.where(tuple_(rank, User.id, Assignment.id) > tuple_(*after))
    rows = session.execute(query.limit(limit + 1)).all()
    return Page.of(rows, limit, _on_duty)


def _on_duty(row) -> OnDuty:
    user, assignment, code, rank = row
    return OnDuty(
        user=PersonRef(
            id=user.id, username=user.username, display_name=user.display_name, role=user.role
        ),
        duty=assignment.duty,
        area=code,
        active_from=assignment.active_from,
        rank=rank,
        assignment_id=assignment.id,
    )


def proposed_handler(
    session: Session, *, microgrid_id: int | None, grid_id: int | None, at: datetime | None = None
) -> User | None:
    """Who should handle a case in this micro-grid/grid at `at` (default now), or None."""
    # Order: the grid head (on the grid or on the micro-grid), a full-time worker of the
    # micro-grid, a full-time worker of the grid, a part-time worker of the micro-grid, then of
    # the grid. Only active users on an assignment active at `at`; lowest user id wins a tie.
    if grid_id is None and microgrid_id is not None:
        grid_id = session.scalar(select(Area.parent_id).where(Area.id == microgrid_id))
    area_ids = [i for i in (microgrid_id, grid_id) if i is not None]
    if not area_ids:
        return None
    on_micro = Assignment.area_id == microgrid_id if microgrid_id is not None else false()
    rank = case(
        (Assignment.duty == "grid_head", 0),
        ((Assignment.duty == "full_time") & on_micro, 1),
        (Assignment.duty == "full_time", 2),
        ((Assignment.duty == "part_time") & on_micro, 3),
        else_=4,
    )
    return session.scalar(
        select(User)
        .join(Assignment, Assignment.user_id == User.id)
        .where(
            Assignment.area_id.in_(area_ids),
            Assignment.duty.in_(("grid_head", "full_time", "part_time")),
            active_assignment_filter(at),
            User.is_active.is_(True),
        )
        .order_by(rank, User.id)
        .limit(1)
    )
