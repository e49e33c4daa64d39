"""User administration: who the users are, who may read whom, and changes to them.

Scope (who may read whom) works on area code prefixes: an area's code extends its parent's,
so "area X is in the subtree of A" is `X.code LIKE A.code || '%'`, with no recursion.

- admin: every user and assignment.
- supervisor: the users assigned now to an area in the subtree of one of the supervisor's
  current areas, and the assignments to areas in that subtree (history included).
- worker: only themselves.

Deactivating a user ends their open assignments; a new role must fit the duties they hold.
Every admin write logs an audit line `admin <username>: <action> <target>`.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gridgov.errors import Conflict, ValidationFailed
from gridgov.models import ROLES, Area, Assignment, User
from gridgov.services import tokens
from gridgov.services.assignments import (
    DUTY_ROLES,
    AssignmentView,
    assignment_view,
    end_open_assignments,
    open_assignment_filter,
)
from gridgov.services.paging import Page
from gridgov.services.passwords import hash_password
from gridgov.services.scope import on_duty_under
from gridgov.services.users import (
    active_assignment_filter,
    assigned_area_codes,
    audit_admin,
    lock_user,
    now_utc,
    require_people_reader,
    user_not_found,
    user_target,
)

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,64}$"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
USERNAME_INDEX = "uq_app_user_username_lower"


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


# --- scope ----------------------------------------------------------------------------------


def _user_scope(session: Session, viewer: User, now: datetime) -> ColumnElement[bool]:
    """SQL condition on User: the users `viewer` may read."""
    if viewer.role == "admin":
        return true()
    if viewer.role == "supervisor":
        prefixes = assigned_area_codes(session, user_id=viewer.id)
        return or_(User.id == viewer.id, on_duty_under(prefixes, User.id, at=now))
    return User.id == viewer.id


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
) -> Page[UserView]:
    """Users `viewer` may read, by id, filtered by role, area subtree, active flag and text."""
    require_people_reader(viewer)
    now = now_utc()
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
    return Page.of(users, limit, lambda u: _user_view(u, areas[u.id]))


def _user_detail(session: Session, user: User) -> UserDetail:
    now = now_utc()
    rows = session.execute(
        select(Assignment, Area.code)
        .join(Area, Area.id == Assignment.area_id)
        .where(Assignment.user_id == user.id)
        .order_by(Assignment.active_from.desc(), Assignment.id.desc())
    ).all()
    assignments = [assignment_view(a, code, now) for a, code in rows]
    areas = sorted(a.area for a in assignments if a.active)
    return UserDetail(**vars(_user_view(user, areas)), assignments=assignments)


def get_user(session: Session, *, viewer: User, user_id: int) -> UserDetail:
    """A user with their assignment history, if `viewer` may read them; else user_not_found."""
    user = session.scalar(
        select(User).where(User.id == user_id, _user_scope(session, viewer, now_utc()))
    )
    if user is None:
        raise user_not_found(user_id)
    return _user_detail(session, user)


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
    audit_admin(session, actor, "create_user", f"{user_target(user)} role {role}")
    return _user_detail(session, user)


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
    user = lock_user(session, user_id)
    now = now_utc()
    if is_active is False and user.id == actor.id:
        raise Conflict(
            "An administrator cannot deactivate themselves.", code="cannot_deactivate_self"
        )
    if role is not None and role != user.role:
        _change_role(session, actor=actor, user=user, role=role, now=now)
    if display_name is not None and display_name != user.display_name:
        user.display_name = display_name
        audit_admin(session, actor, "rename_user", user_target(user))
    if password is not None:
        _check_password(password)
        user.password_hash = hash_password(password)
        tokens.revoke_all(session, user_id=user.id)  # a new password logs out everywhere
        audit_admin(session, actor, "set_password", user_target(user))
    if is_active is False and user.is_active:
        ended = end_open_assignments(session, user_id=user.id, now=now)
        user.is_active = False
        user.deactivated_at = now
        tokens.revoke_all(session, user_id=user.id)
        audit_admin(
            session, actor, "deactivate_user", f"{user_target(user)} ending {ended} assignments"
        )
    elif is_active is True and not user.is_active:
        user.is_active = True
        user.deactivated_at = None
        audit_admin(session, actor, "reactivate_user", user_target(user))
    session.flush()
    return _user_detail(session, user)


def _change_role(session: Session, *, actor: User, user: User, role: str, now: datetime) -> None:
    if role not in ROLES:
        raise ValidationFailed(f"Unknown role {role!r}.", errors={"json": {"role": ["Unknown."]}})
    if user.id == actor.id:
        raise Conflict("An administrator cannot change their own role.", code="cannot_demote_self")
    misfits = session.scalars(
        select(Assignment.id).where(
            Assignment.user_id == user.id,
            open_assignment_filter(now),
            Assignment.duty.notin_([d for d, r in DUTY_ROLES.items() if r == role]),
        )
    ).all()
    if misfits:
        raise Conflict(
            f"The user holds assignments a {role} cannot hold; end them first.",
            code="role_conflicts_with_assignments",
            details={"assignments": list(misfits)},
        )
    audit_admin(session, actor, "change_role", f"{user_target(user)} {user.role} -> {role}")
    user.role = role
    tokens.revoke_access(session, user_id=user.id)  # access tokens carry the role
