"""Who may see what: the one scoping rule every incident read and write goes through.

- admin: everything.
- supervisor: incidents in the subtree of the areas they are assigned to.
- worker: incidents in the subtree of their assigned grids/micro-grids, plus the ones they
  reported or currently hold (who may be made a holder: gridgov.services.workflow).

Patrols: their worker and admins see them all; a supervisor also sees the patrols of anyone
who was on duty in the subtree of the supervisor's areas when the patrol started.

An incident stores its area at every level, so "in the subtree of area A at level L" is
simply `incident.<L>_id = A.id` (models.INCIDENT_AREA_COLUMNS, one column per level of
geo.levels): no spatial query and no recursion.
"""

from collections import defaultdict
from datetime import datetime

from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.orm import Session

from gridgov.errors import NotFound
from gridgov.models import INCIDENT_AREA_COLUMNS, Area, Assignment, Incident, Patrol, User
from gridgov.services.users import active_assignment_filter, assigned_area_codes


def assigned_area_ids_by_level(session: Session, *, user_id: int) -> dict[str, list[int]]:
    """Active assignment area ids of a user, grouped by area level."""
    rows = session.execute(
        select(Area.level, Area.id)
        .join(Assignment, Assignment.area_id == Area.id)
        .where(Assignment.user_id == user_id, active_assignment_filter())
    ).all()
    by_level: dict[str, list[int]] = defaultdict(list)
    for level, area_id in rows:
        by_level[level].append(area_id)
    return dict(by_level)


def incident_scope(session: Session, *, user: User) -> ColumnElement[bool]:
    """SQL condition selecting the incidents `user` may see and act on."""
    if user.role == "admin":
        return true()
    areas = assigned_area_ids_by_level(session, user_id=user.id)
    conditions = [INCIDENT_AREA_COLUMNS[level].in_(ids) for level, ids in areas.items()]
    if user.role == "worker":
        conditions += [Incident.reporter_id == user.id, Incident.handler_id == user.id]
    return or_(*conditions) if conditions else false()


def get_visible_incident(session: Session, *, user: User, incident_id: int) -> Incident:
    """The incident if `user` may see it; NotFound otherwise (a guessed id reveals nothing)."""
    incident = session.scalar(
        select(Incident).where(Incident.id == incident_id, incident_scope(session, user=user))
    )
    if incident is None:
        raise NotFound(f"No incident {incident_id}.", code="incident_not_found")
    return incident


def area_in_subtree(prefixes: list[str]) -> ColumnElement[bool]:
    """SQL condition: Area.code at or under one of the area codes in `prefixes`."""
    if not prefixes:
        return false()
    return or_(*(Area.code.startswith(prefix, autoescape=True) for prefix in prefixes))


def on_duty_under(
    prefixes: list[str],
    user_id: ColumnElement[int],
    at: datetime | ColumnElement[datetime] | None = None,
) -> ColumnElement[bool]:
    """SQL condition: user `user_id` had an assignment under `prefixes` active at `at`."""
    return on_duty_where(area_in_subtree(prefixes), user_id, at)


def on_duty_where(
    area_condition: ColumnElement[bool],
    user_id: ColumnElement[int] | int,
    at: datetime | ColumnElement[datetime] | None = None,
) -> ColumnElement[bool]:
    """SQL condition: user `user_id` had an assignment active at `at` to an area matching."""
    return (
        select(Assignment.id)
        .join(Area, Area.id == Assignment.area_id)
        .where(Assignment.user_id == user_id, active_assignment_filter(at), area_condition)
        .exists()
    )


def patrol_scope(session: Session, *, user: User) -> ColumnElement[bool]:
    """SQL condition selecting the patrols `user` may read."""
    if user.role == "admin":
        return true()
    own = Patrol.worker_id == user.id
    if user.role != "supervisor":
        return own
    prefixes = assigned_area_codes(session, user_id=user.id)
    # When the patrol started, not now: a worker who moved on leaves their old patrols with
    # the supervisor of the area they walked.
    return or_(own, on_duty_under(prefixes, Patrol.worker_id, at=Patrol.started_at))
