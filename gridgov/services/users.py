"""Users: authentication, what a user is assigned to now, and what administration shares.

User administration is in services/accounts.py, assignments in services/assignments.py, who
is on duty in services/duty.py.
"""

from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from gridgov.errors import Forbidden, NotFound, Unauthorized
from gridgov.models import Area, Assignment, User
from gridgov.services import audit
from gridgov.services.passwords import hash_password, verify_password

# Verified against when the username is unknown, so both failures take the same time.
_DUMMY_HASH = hash_password("not-a-real-password")


def authenticate(session: Session, *, username: str, password: str) -> User:
    """The active user with these credentials, or Unauthorized(invalid_credentials).

    Every attempt is audited; on a failure the login endpoint still commits the audit event.
    """
    user = session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    valid = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if not (user and valid and user.is_active):
        audit.record(
            session,
            actor=None,
            actor_name=username[:64],
            action="login",
            target=username[:64],
            outcome="failed",
            data={"reason": "inactive" if user and valid else "bad_credentials"},
        )
        raise Unauthorized("Wrong username or password.", code="invalid_credentials")
    audit.record(session, actor=user, action="login", target=user.username)
    return user


def get_active_user(session: Session, *, user_id: int) -> User:
    """The active user behind a token, or Unauthorized (deleted or deactivated since)."""
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise Unauthorized("This account is not active.", code="account_inactive")
    return user


def active_assignment_filter(now: datetime | ColumnElement[datetime] | None = None):
    """SQL condition: an assignment active at `now`: the present, an instant or a column."""
    now = datetime.now(UTC) if now is None else now
    return (Assignment.active_from <= now) & or_(
        Assignment.active_to.is_(None), Assignment.active_to > now
    )


def assigned_area_codes(session: Session, *, user_id: int) -> list[str]:
    """Codes of the areas the user is assigned to now, in code order."""
    return list(
        session.scalars(
            select(Area.code)
            .join(Assignment, Assignment.area_id == Area.id)
            .where(Assignment.user_id == user_id, active_assignment_filter())
            .order_by(Area.code)
        )
    )


# --- shared by the administration of users and assignments ---------------------------------


def now_utc() -> datetime:
    """The current instant (UTC)."""
    return datetime.now(UTC)


def audit_admin(session: Session, actor: User, action: str, target: str) -> None:
    """Log an administrative write by `actor`."""
    audit.record(session, actor=actor, action=action, target=target)


def user_target(user: User) -> str:
    """How audit lines name a user."""
    return f"user {user.id} ({user.username})"


def require_people_reader(viewer: User) -> None:
    """Forbidden unless `viewer` may list people (admins and supervisors)."""
    if viewer.role not in ("admin", "supervisor"):
        raise Forbidden("Only administrators and supervisors may list people.")


def user_not_found(user_id: int) -> NotFound:
    """The error for a user that does not exist or may not be seen."""
    return NotFound(f"No user {user_id}.", code="user_not_found", details={"id": user_id})


def lock_user(session: Session, user_id: int) -> User:
    """The user row, locked FOR KEY SHARE (writes to it wait), or user_not_found."""
    user = session.get(User, user_id, with_for_update={"key_share": True}, populate_existing=True)
    if user is None:
        raise user_not_found(user_id)
    return user
