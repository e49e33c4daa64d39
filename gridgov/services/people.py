"""People and assignments: who the users are, where they are on duty and who handles a case.

Scope (who may read whom) works on area code prefixes: an area's code extends its parent's,
so "area X is in the subtree of A" is `X.code LIKE A.code || '%'`, with no recursion.

- admin: every user and assignment.
- supervisor: the users assigned now to an area in the subtree of one of the supervisor's
  current areas, and the assignments to areas in that subtree (history included).
- worker: only themselves.

Assignment rules: a `supervisor` duty is for a supervisor on a district, town or community; a
`grid_head`, `full_time` or `part_time` duty is for a worker on a grid or micro-grid. The same
user is never assigned twice to one area for overlapping periods, and an area has at most one
grid head at any moment. Both checks run while the area row is locked FOR NO KEY UPDATE, so two
admins assigning to one area at once are serialized (the user row is locked too, so an
assignment cannot slip in while the user is being deactivated).

Ending an assignment sets `active_to`; rows are never deleted. The CHECK
`active_to > active_from` forbids an empty period, so an assignment ended before it starts is
stored with a one-microsecond period at its planned start (see `_end`).

Every admin write logs an audit line `admin <username>: <action> <target>`.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, case, false, func, or_, select, true, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gridgov.errors import AreaNotFound, Conflict, Forbidden, NotFound, ValidationFailed
from gridgov.models import ROLES, Area, Assignment, User
from gridgov.services import audit, tokens
from gridgov.services.passwords import hash_password
from gridgov.services.scope import area_in_subtree, on_duty_under
from gridgov.services.users import active_assignment_filter, assigned_area_codes

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,64}$"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
USERNAME_INDEX = "uq_app_user_username_lower"

# Which role may hold a duty, and on which area levels.
DUTY_ROLES = {"supervisor": "supervisor", "grid_head": "worker"}
DUTY_ROLES |= {"full_time": "worker", "part_time": "worker"}
SUPERVISOR_LEVELS = ("district", "town", "community")
WORKER_LEVELS = ("grid", "microgrid")
# Order of the on-duty list: grid heads first.
DUTY_ORDER = ("grid_head", "full_time", "part_time", "supervisor")
# The shortest period the database accepts (CHECK active_to > active_from).
MIN_PERIOD = timedelta(microseconds=1)


# --- views ----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    display_name: str
    role: str
    is_active: bool
    deactivated_at: datetime | None
    created_at: datetime
    areas: list[str]


@dataclass(frozen=True)
class UserDetail(UserView):
    assignments: list[AssignmentView]


@dataclass(frozen=True)
class UserPage:
    items: list[UserView]
    has_more: bool


@dataclass(frozen=True)
class AssignmentPage:
    items: list[AssignmentView]
    has_more: bool


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


@dataclass(frozen=True)
class OnDutyPage:
    items: list[OnDuty]
    has_more: bool


# --- rules shared with the schemas ----------------------------------------------------------


def password_problem(password: str) -> str | None:
    """Why a password is refused (a sentence), or None when it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"At least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"At most {MAX_PASSWORD_LENGTH} characters."
    return None


def _check_password(password: str) -> None:
    problem = password_problem(password)
    if problem:
        raise ValidationFailed(
            f"The password is too weak: {problem}",
            code="weak_password",
            errors={"json": {"password": [problem]}},
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _audit(session: Session, actor: User, action: str, target: str) -> None:
    audit.record(session, actor=actor, action=action, target=target)


def _user_target(user: User) -> str:
    return f"user {user.id} ({user.username})"


# --- scope ----------------------------------------------------------------------------------


def _user_scope(session: Session, viewer: User, now: datetime) -> ColumnElement[bool]:
    """SQL condition on User: the users `viewer` may read."""
    if viewer.role == "admin":
        return true()
    if viewer.role == "supervisor":
        prefixes = assigned_area_codes(session, user_id=viewer.id)
        return or_(User.id == viewer.id, on_duty_under(prefixes, User.id, at=now))
    return User.id == viewer.id


def _require_reader(viewer: User) -> None:
    if viewer.role not in ("admin", "supervisor"):
        raise Forbidden("Only administrators and supervisors may list people.")


# --- users ----------------------------------------------------------------------------------


def _areas_by_user(session: Session, user_ids: list[int], now: datetime) -> dict[int, list[str]]:
    rows = session.execute(
        select(Assignment.user_id, Area.code)
        .join(Area, Area.id == Assignment.area_id)
        .where(Assignment.user_id.in_(user_ids), active_assignment_filter(now))
        .order_by(Assignment.user_id, Area.code)
    ).all()
    areas: dict[int, list[str]] = {user_id: [] for user_id in user_ids}
    for user_id, code in rows:
        areas[user_id].append(code)
    return areas


def _user_view(user: User, areas: list[str]) -> UserView:
    return UserView(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        is_active=user.is_active,
        deactivated_at=user.deactivated_at,
        created_at=user.created_at,
        areas=areas,
    )


def list_users(
    session: Session,
    *,
    viewer: User,
    role: str | None = None,
    area_code: str | None = None,
    active: bool | None = None,
    q: str | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> UserPage:
    """Users `viewer` may read, by id, filtered by role, area subtree, active flag and text."""
    _require_reader(viewer)
    now = _now()
    query = select(User).where(_user_scope(session, viewer, now)).order_by(User.id)
    if role:
        query = query.where(User.role == role)
    if area_code:
        query = query.where(on_duty_under([area_code], User.id, at=now))
    if active is not None:
        query = query.where(User.is_active.is_(active))
    if q:
        query = query.where(
            or_(
                User.username.icontains(q, autoescape=True),
                User.display_name.icontains(q, autoescape=True),
            )
        )
    if after_id is not None:
        query = query.where(User.id > after_id)
    users = list(session.scalars(query.limit(limit + 1)))
    page = users[:limit]
    areas = _areas_by_user(session, [u.id for u in page], now)
    return UserPage(items=[_user_view(u, areas[u.id]) for u in page], has_more=len(users) > limit)


def _assignment_view(assignment: Assignment, area_code: str, now: datetime) -> AssignmentView:
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


def _user_detail(session: Session, user: User) -> UserDetail:
    now = _now()
    rows = session.execute(
        select(Assignment, Area.code)
        .join(Area, Area.id == Assignment.area_id)
        .where(Assignment.user_id == user.id)
        .order_by(Assignment.active_from.desc(), Assignment.id.desc())
    ).all()
    assignments = [_assignment_view(a, code, now) for a, code in rows]
    areas = sorted(a.area for a in assignments if a.active)
    return UserDetail(**vars(_user_view(user, areas)), assignments=assignments)


def get_user(session: Session, *, viewer: User, user_id: int) -> UserDetail:
    """A user with their assignment history, if `viewer` may read them; else user_not_found."""
    user = session.scalar(
        select(User).where(User.id == user_id, _user_scope(session, viewer, _now()))
    )
    if user is None:
        raise _user_not_found(user_id)
    return _user_detail(session, user)


def _user_not_found(user_id: int) -> NotFound:
    return NotFound(f"No user {user_id}.", code="user_not_found", details={"id": user_id})


def _username_taken(session: Session, username: str) -> bool:
    return (
        session.scalar(select(User.id).where(func.lower(User.username) == username.lower()))
        is not None
    )


def _taken(username: str) -> Conflict:
    return Conflict(
        f"The username {username!r} is taken.",
        code="username_taken",
        details={"username": username},
    )


def create_user(
    session: Session,
    *,
    actor: User,
    username: str,
    role: str,
    password: str,
    display_name: str = "",
) -> UserDetail:
    """Create an active user with a hashed password; username_taken if the name is in use."""
    if role not in ROLES:
        raise ValidationFailed(f"Unknown role {role!r}.", errors={"json": {"role": ["Unknown."]}})
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise ValidationFailed(
            f"Invalid username {username!r}.",
            errors={"json": {"username": ["3-64 characters of A-Z a-z 0-9 _ . -"]}},
        )
    _check_password(password)
    if _username_taken(session, username):
        raise _taken(username)
    user = User(
        username=username,
        display_name=display_name,
        role=role,
        password_hash=hash_password(password),
        is_active=True,
    )
    # The check above misses a concurrent insert; the unique index catches it. The savepoint
    # keeps the caller's transaction usable after the failed INSERT.
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError as exc:
        if getattr(getattr(exc.orig, "diag", None), "constraint_name", None) != USERNAME_INDEX:
            raise
        raise _taken(username) from exc
    _audit(session, actor, "create_user", f"{_user_target(user)} role {role}")
    return _user_detail(session, user)


def _lock_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id, with_for_update={"key_share": True}, populate_existing=True)
    if user is None:
        raise _user_not_found(user_id)
    return user


def update_user(
    session: Session,
    *,
    actor: User,
    user_id: int,
    display_name: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
    password: str | None = None,
) -> UserDetail:
    """Change a user's name, role, password or active flag (None: unchanged); never deletes."""
    user = _lock_user(session, user_id)
    now = _now()
    if is_active is False and user.id == actor.id:
        raise Conflict(
            "An administrator cannot deactivate themselves.", code="cannot_deactivate_self"
        )
    if role is not None and role != user.role:
        _change_role(session, actor=actor, user=user, role=role, now=now)
    if display_name is not None and display_name != user.display_name:
        user.display_name = display_name
        _audit(session, actor, "rename_user", _user_target(user))
    if password is not None:
        _check_password(password)
        user.password_hash = hash_password(password)
        tokens.revoke_all(session, user_id=user.id)  # a new password logs out everywhere
        _audit(session, actor, "set_password", _user_target(user))
    if is_active is False and user.is_active:
        ended = _end_open_assignments(session, user_id=user.id, now=now)
        user.is_active = False
        user.deactivated_at = now
        tokens.revoke_all(session, user_id=user.id)
        _audit(
            session, actor, "deactivate_user", f"{_user_target(user)} ending {ended} assignments"
        )
    elif is_active is True and not user.is_active:
        user.is_active = True
        user.deactivated_at = None
        _audit(session, actor, "reactivate_user", _user_target(user))
    session.flush()
    return _user_detail(session, user)


def _open(now: datetime) -> ColumnElement[bool]:
    """SQL condition: an assignment not ended by `now` (active now or in the future).

    An assignment cancelled before it started (see `_end`) is not open.
    """
    return or_(
        Assignment.active_to.is_(None),
        (Assignment.active_to > now) & (Assignment.active_to > Assignment.active_from + MIN_PERIOD),
    )


def _is_open(assignment: Assignment, now: datetime) -> bool:
    """`_open` in Python, for a loaded assignment."""
    end = assignment.active_to
    return end is None or (end > now and end > assignment.active_from + MIN_PERIOD)


def _change_role(session: Session, *, actor: User, user: User, role: str, now: datetime) -> None:
    if role not in ROLES:
        raise ValidationFailed(f"Unknown role {role!r}.", errors={"json": {"role": ["Unknown."]}})
    if user.id == actor.id:
        raise Conflict("An administrator cannot change their own role.", code="cannot_demote_self")
    misfits = session.scalars(
        select(Assignment.id).where(
            Assignment.user_id == user.id,
            _open(now),
            Assignment.duty.notin_([d for d, r in DUTY_ROLES.items() if r == role]),
        )
    ).all()
    if misfits:
        raise Conflict(
            f"The user holds assignments a {role} cannot hold; end them first.",
            code="role_conflicts_with_assignments",
            details={"assignments": list(misfits)},
        )
    _audit(session, actor, "change_role", f"{_user_target(user)} {user.role} -> {role}")
    user.role = role
    tokens.revoke_access(session, user_id=user.id)  # access tokens carry the role


def _end(assignment: Assignment, now: datetime) -> None:
    """End an open assignment at `now`.

    One not yet started is cancelled: the CHECK active_to > active_from forbids the empty
    period that would say so, so it gets the shortest period the database accepts, and
    `_open` (hence the overlap and grid-head checks) ignores such a period.
    """
    assignment.active_to = max(now, assignment.active_from + MIN_PERIOD)


def _end_open_assignments(session: Session, *, user_id: int, now: datetime) -> int:
    assignments = session.scalars(
        select(Assignment).where(Assignment.user_id == user_id, _open(now))
    ).all()
    for assignment in assignments:
        _end(assignment, now)
    return len(assignments)


# --- assignments ----------------------------------------------------------------------------


def list_assignments(
    session: Session,
    *,
    viewer: User,
    user_id: int | None = None,
    area_code: str | None = None,
    active: bool | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> AssignmentPage:
    """Assignments `viewer` may read, by id, filtered by user, area subtree and active now."""
    _require_reader(viewer)
    now = _now()
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
    items = [_assignment_view(a, code, now) for a, code in rows[:limit]]
    return AssignmentPage(items=items, has_more=len(rows) > limit)


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
    condition = _open(start)
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
    now = _now()
    active_from = active_from or now
    if active_to is not None and active_to <= active_from:
        raise ValidationFailed(
            "active_to must be later than active_from.",
            code="invalid_period",
            errors={"json": {"active_to": ["Must be later than active_from."]}},
        )
    # Lock order: user, then area (as everywhere else that takes both).
    user = _lock_user(session, user_id)
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
    _audit(
        session,
        actor,
        "create_assignment",
        f"{assignment.id}: {_user_target(user)} {duty} on {area.code} from {active_from}",
    )
    return _assignment_view(assignment, area.code, now)


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
    now = _now()
    if _is_open(assignment, now):
        _end(assignment, now)
        session.flush()
        _audit(session, actor, "end_assignment", f"{assignment.id} of user {assignment.user_id}")
    code = session.scalar(select(Area.code).where(Area.id == assignment.area_id))
    return _assignment_view(assignment, code, now)


# --- who is on duty -------------------------------------------------------------------------


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
) -> OnDutyPage:
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
    items = [
        OnDuty(
            user=PersonRef(
                id=user.id, username=user.username, display_name=user.display_name, role=user.role
            ),
            duty=assignment.duty,
            area=code,
            active_from=assignment.active_from,
            rank=row_rank,
            assignment_id=assignment.id,
        )
        for user, assignment, code, row_rank in rows[:limit]
    ]
    return OnDutyPage(items=items, has_more=len(rows) > limit)


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
