"""The closed loop of a case (GB/T 30428): which action may move an incident where, for whom.

    reported ──accept──▶ accepted ──dispatch──▶ dispatched ──start──▶ in_progress
       │ reject / duplicate (terminal)              │                      │
       │                                            └────────resolve───────┤
       ▼                                                                   ▼
    returned ◀──return (rework)── resolved ──verify──▶ verified ──close──▶ closed
       └──dispatch──▶ dispatched        dispatched, in_progress ──reassign──▶ dispatched

- escalate keeps the status and moves handling up one level (grid → community → town →
  district) with a fresh clock for the current stage; comment changes nothing but the timeline.
- Supervisors and admins in scope run the loop; a worker may start, resolve and escalate only
  what they hold (handler), and comment on what they can see.
- Who may hold a case (dispatch and reassign `assignee`): an active worker or supervisor with an
  assignment active now to the case's handling area, to an area inside it, or to an area above
  it (a supervisor above). The handling area is the case's area at its handling level (grid →
  its grid, community → its community, town → its town, district → the district); an unrouted
  case has only its district. So a grid-level case goes to the people of that grid; to reach a
  neighbouring grid or another town the case is escalated first. Anyone else is refused with
  invalid_assignee. A holder reads the case because they hold it (services/scope.py), so this
  rule is also what keeps a case from being read outside its area.
- reassign takes a dispatched or in-progress case from its holder (away, deactivated, off
  duty: their eligibility is not checked) and gives it to another eligible holder or unit, back
  in dispatched. It is not rework (rework_count is untouched, so the 返工率 indicator never
  counts it) and keeps the deadline: the handling clock runs from dispatch, and neither
  reassign nor start restarts it. Its event records the previous holder and unit.
- Every action locks the row (SELECT … FOR UPDATE) and checks the expected version, so of two
  people acting at once one succeeds and the other gets a version or transition conflict.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from gridgov.errors import Conflict, Forbidden, NotFound, PreconditionFailed, ValidationFailed
from gridgov.models import (
    HANDLING_LEVELS,
    STATUSES,
    Area,
    Category,
    Incident,
    IncidentEvent,
    User,
)
from gridgov.services.calendar import WorkCalendar
from gridgov.services.notifications import notify_incident_event
from gridgov.services.scope import (
    area_in_subtree,
    get_visible_incident,
    incident_scope,
    on_duty_where,
)
from gridgov.services.time_limits import deadline_for

SUPERVISING = frozenset({"supervisor", "admin"})
HOLDER_ROLES = frozenset({"worker", "supervisor"})
HANDLING_STATUSES = ("reported", "accepted", "dispatched", "in_progress", "returned")


@dataclass(frozen=True)
class Transition:
    sources: tuple[str, ...]
    target: str | None  # None: the status does not change
    required: tuple[str, ...] = ()
    handler_may: bool = False  # the worker holding the case may do it too
    anyone_in_scope: bool = False
    restarts_clock: bool = True  # the deadline of the (new) stage starts again now


TRANSITIONS = {
    "accept": Transition(("reported",), "accepted"),
    "reject": Transition(("reported",), "rejected", ("note",)),
    "duplicate": Transition(("reported",), "duplicate", ("duplicate_of",)),
    "dispatch": Transition(("accepted", "returned"), "dispatched", ("assignee_or_unit",)),
    "reassign": Transition(
        ("dispatched", "in_progress"),
        "dispatched",
        ("note", "assignee_or_unit"),
        restarts_clock=False,
    ),
    "start": Transition(("dispatched",), "in_progress", handler_may=True, restarts_clock=False),
    "resolve": Transition(("dispatched", "in_progress"), "resolved", ("note",), handler_may=True),
    "verify": Transition(("resolved",), "verified"),
    "return": Transition(("resolved",), "returned", ("note",)),
    "close": Transition(("verified",), "closed"),
    "escalate": Transition(HANDLING_STATUSES, None, ("note",), handler_may=True),
    "comment": Transition(STATUSES, None, ("note",), anyone_in_scope=True, restarts_clock=False),
}
ACTIONS = tuple(TRANSITIONS)


# The API fields each requirement of a transition asks for (dispatch: either or both).
REQUIRED_FIELDS = {
    "note": "note",
    "duplicate_of": "duplicate_of",
    "assignee_or_unit": "assignee_or_handling_unit",
}


@dataclass(frozen=True)
class AllowedAction:
    action: str
    required: tuple[str, ...]


def allowed_actions(incident: Incident, user: User) -> list[AllowedAction]:
    """The actions `user` may take on `incident` (one they can see) now, in the loop's order.

    The same checks apply_action makes before it changes anything: role, status, and for
    escalate a level left above; version and required fields are the caller's to supply."""
    allowed = []
    for action, transition in TRANSITIONS.items():
        if incident.status not in transition.sources or not _role_may(incident, user, transition):
            continue
        if action == "escalate" and incident.handling_level == HANDLING_LEVELS[-1]:
            continue
        required = tuple(REQUIRED_FIELDS[name] for name in transition.required)
        allowed.append(AllowedAction(action, required))
    return allowed


@dataclass(frozen=True)
class ActionRequest:
    action: str
    note: str = ""
    assignee_id: int | None = None
    handling_unit: str | None = None
    duplicate_of: int | None = None
    expected_version: int | None = None
    extra: dict = field(default_factory=dict)


def apply_action(
    session: Session,
    *,
    actor: User | None,
    incident_id: int,
    request: ActionRequest,
    calendar: WorkCalendar,
    now: datetime | None = None,
) -> Incident:
    """Run one action on an incident the actor may see; actor None is the system (cron).

    `now` is when it happens (default: the clock); the demo loader dates its cases."""
    now = now or datetime.now(UTC)
    incident = _locked(session, actor=actor, incident_id=incident_id)
    transition = TRANSITIONS[request.action]
    _check_version(incident, request.expected_version)
    _check_role(incident, actor, request.action, transition)
    _check_status(incident, request.action, transition)
    _check_required(request, transition)
    from_status = incident.status
    # One action, one UPDATE: the version goes up by exactly one.
    with session.no_autoflush:
        data = _apply(session, incident, actor, request, calendar, now)
    event = IncidentEvent(
        incident_id=incident.id,
        actor_id=actor.id if actor else None,
        action=request.action,
        from_status=from_status,
        to_status=incident.status,
        note=request.note,
        data=data,
        created_at=now,
    )
    session.add(event)
    session.flush()
    # In the action's transaction: the notifications commit or roll back with it.
    notify_incident_event(session, incident=incident, event=event, actor=actor)
    return incident


def _locked(session: Session, *, actor: User | None, incident_id: int) -> Incident:
    query = select(Incident).where(Incident.id == incident_id).with_for_update()
    if actor is not None:
        query = query.where(incident_scope(session, user=actor))
    incident = session.scalar(query)
    if incident is None:
        raise NotFound(f"No incident {incident_id}.", code="incident_not_found")
    return incident


def _check_version(incident: Incident, expected: int | None) -> None:
    if expected is not None and expected != incident.version:
        raise PreconditionFailed(
            "The incident changed since you read it; reload and retry.",
            code="version_mismatch",
            details={"current_version": incident.version, "expected_version": expected},
        )


def _check_status(incident, action: str, transition: Transition) -> None:
    if incident.status not in transition.sources:
        raise Conflict(
            f"Cannot {action} an incident that is {incident.status}.",
            code="invalid_transition",
            details={"status": incident.status, "action": action},
        )


def _role_may(incident, actor, transition: Transition) -> bool:
    if actor is None or actor.role in SUPERVISING or transition.anyone_in_scope:
        return True
    return transition.handler_may and incident.handler_id == actor.id


def _check_role(incident, actor, action: str, transition: Transition) -> None:
    # Checked before the status, so a refused role learns nothing about the case's state.
    if not _role_may(incident, actor, transition):
        raise Forbidden(f"Your role may not {action} this incident.")


def _check_required(request: ActionRequest, transition: Transition) -> None:
    missing = {}
    for name in transition.required:
        if name == "note" and not request.note.strip():
            missing["note"] = ["A note (the reason) is required for this action."]
        elif name == "duplicate_of" and request.duplicate_of is None:
            missing["duplicate_of"] = ["The id of the incident this one duplicates."]
        elif name == "assignee_or_unit" and not (request.assignee_id or request.handling_unit):
            missing["assignee"] = ["An assignee or a handling unit is required."]
    if missing:
        raise ValidationFailed(
            f"{request.action} needs more information.", code="missing_fields", errors=missing
        )


def _apply(session, incident: Incident, actor, request: ActionRequest, calendar, now) -> dict:
    """Change the incident for the action; return what the timeline event records."""
    action = request.action
    data: dict = {}
    if action == "accept":
        incident.accepted_at = now
    elif action in ("reject", "duplicate", "close"):
        incident.closed_at = now
        if action == "duplicate":
            incident.duplicate_of_id = _original(session, actor, incident, request.duplicate_of)
            data["duplicate_of"] = incident.duplicate_of_id
    elif action in ("dispatch", "reassign"):
        data.update(_hand_over(session, incident, request))
    elif action == "resolve":
        incident.resolved_at = now
        incident.resolved_level = incident.handling_level
        data["resolved_level"] = incident.resolved_level
    elif action == "return":
        incident.rework_count += 1
        incident.resolved_at = None
    elif action == "escalate":
        data.update(_escalate(incident), auto=actor is None)
    transition = TRANSITIONS[action]
    if transition.target is not None:
        incident.status = transition.target
    if transition.restarts_clock:
        _restart_clock(session, incident, now, calendar, fresh_handle=action == "accept")
    return data


def _restart_clock(session, incident: Incident, now, calendar, *, fresh_handle: bool) -> None:
    category = session.get(Category, incident.category_id)
    incident.deadline = deadline_for(
        category, priority=incident.priority, status=incident.status, start=now, calendar=calendar
    )
    if fresh_handle:
        incident.handle_deadline = incident.deadline


def _escalate(incident: Incident) -> dict:
    level = HANDLING_LEVELS.index(incident.handling_level)
    if level + 1 >= len(HANDLING_LEVELS):
        raise Conflict(
            "The incident is already handled at the district, the top level.",
            code="invalid_transition",
            details={"status": incident.status, "action": "escalate"},
        )
    previous = incident.handling_level
    incident.handling_level = HANDLING_LEVELS[level + 1]
    incident.escalation_count += 1
    return {"from_level": previous, "to_level": incident.handling_level}


def _original(session, actor, incident: Incident, original_id: int) -> int:
    if original_id == incident.id:
        raise ValidationFailed(
            "An incident cannot duplicate itself.",
            code="invalid_duplicate",
            errors={"duplicate_of": ["Must be another incident."]},
        )
    try:
        original = get_visible_incident(session, user=actor, incident_id=original_id)
    except NotFound as error:
        raise ValidationFailed(
            f"No incident {original_id} that you can see.",
            code="invalid_duplicate",
            errors={"duplicate_of": ["Unknown incident."]},
        ) from error
    if original.status == "duplicate":
        raise ValidationFailed(
            "Point at the original, not at another duplicate.",
            code="invalid_duplicate",
            errors={"duplicate_of": [f"Incident {original_id} is itself a duplicate."]},
        )
    return original.id


def _hand_over(session, incident: Incident, request: ActionRequest) -> dict:
    """Give the case to an eligible holder and/or unit; return what the event records."""
    handler_id = _assignee(session, incident, request.assignee_id)
    previous = {
        "previous_assignee": incident.handler_id,
        "previous_handling_unit": incident.handling_unit,
    }
    reassign = request.action == "reassign"
    if reassign and (handler_id, request.handling_unit) == tuple(previous.values()):
        raise ValidationFailed(
            "The case is already held by that assignee and unit.",
            code="invalid_assignee",
            errors={"assignee": ["Already holds the case: name another holder."]},
        )
    incident.handler_id = handler_id
    incident.handling_unit = request.handling_unit
    data = {"assignee": handler_id, "handling_unit": request.handling_unit}
    return data | previous if reassign else data


def _handling_area_ids(incident: Incident) -> list[int]:
    """The case's area at its handling level first, then the areas above it (unrouted: district)."""
    levels = HANDLING_LEVELS[HANDLING_LEVELS.index(incident.handling_level) :]
    return [i for i in (getattr(incident, f"{level}_id") for level in levels) if i is not None]


def _assignee(session, incident: Incident, assignee_id: int | None) -> int | None:
    if assignee_id is None:
        return None
    user = session.get(User, assignee_id)
    if user is None or not user.is_active or user.role not in HOLDER_ROLES:
        raise ValidationFailed(
            "The assignee must be an active worker or supervisor.",
            code="invalid_assignee",
            errors={"assignee": [f"No active worker or supervisor {assignee_id}."]},
        )
    area_ids = _handling_area_ids(incident)
    area = session.get(Area, area_ids[0])
    # At the handling area or under it (its people), or above it (supervisors over it).
    reach = or_(area_in_subtree([area.code]), Area.id.in_(area_ids))
    if not session.scalar(select(on_duty_where(reach, user.id))):
        raise ValidationFailed(
            f"User {user.id} is not on duty in {area.level} {area.code}, where this case is "
            f"handled ({incident.handling_level} level); escalate the case to hand it to "
            "someone outside that area.",
            code="invalid_assignee",
            errors={"assignee": [f"Not on duty in the case's area {area.code}."]},
            details={"area": area.code, "handling_level": incident.handling_level},
        )
    return user.id


@dataclass(frozen=True)
class EscalationReport:
    escalated: list[tuple[int, str, str]]  # incident id, from level, to level
    overdue_at_top: int


def escalate_overdue(
    session: Session, *, calendar: WorkCalendar, now: datetime | None = None, limit: int = 1000
) -> EscalationReport:
    """Escalate every overdue open case one level (idempotent: each gets a fresh deadline)."""
    now = now or datetime.now(UTC)
    overdue = (
        select(Incident.id)
        .where(
            Incident.status.in_(HANDLING_STATUSES),
            Incident.deadline < now,
            Incident.handling_level != HANDLING_LEVELS[-1],
        )
        .order_by(Incident.deadline, Incident.id)
        .limit(limit)
        # Two overlapping cron runs split the work instead of queueing behind each other.
        .with_for_update(skip_locked=True)
    )
    escalated = []
    for incident_id in session.scalars(overdue).all():
        incident = apply_action(
            session,
            actor=None,
            incident_id=incident_id,
            request=ActionRequest("escalate", note="Escalated automatically: overdue."),
            calendar=calendar,
        )
        event_levels = HANDLING_LEVELS[HANDLING_LEVELS.index(incident.handling_level) - 1]
        escalated.append((incident.id, event_levels, incident.handling_level))
    at_top = session.scalar(
        select(func.count())
        .select_from(Incident)
        .where(
            Incident.status.in_(HANDLING_STATUSES),
            Incident.deadline < now,
            Incident.handling_level == HANDLING_LEVELS[-1],
        )
    )
    return EscalationReport(escalated=escalated, overdue_at_top=at_top)
