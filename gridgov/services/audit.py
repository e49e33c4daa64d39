"""The audit log: who did what, when and from where (logins, failed logins, admin actions).

Where a request came from is edge knowledge; the HTTP layer puts it in a context variable at the
start of each request (`set_origin`) so services record it without knowing about Flask. CLI
commands leave it empty.
"""

import logging
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gridgov.models import AuditEvent, User

log = logging.getLogger("gridgov.audit")


@dataclass(frozen=True)
class Origin:
    remote_addr: str | None
    user_agent: str = ""


_origin: ContextVar[Origin | None] = ContextVar("audit_origin", default=None)


def set_origin(origin: Origin | None) -> None:
    """Say where the current request comes from (called by the HTTP layer)."""
    _origin.set(origin)


def record(
    session: Session,
    *,
    actor: User | None,
    action: str,
    target: str = "",
    outcome: str = "ok",
    data: dict | None = None,
    actor_name: str | None = None,
) -> AuditEvent:
    """Append an audit event (flushed with the caller's transaction) and log it."""
    origin = _origin.get() or Origin(None)
    event = AuditEvent(
        actor_id=actor.id if actor else None,
        actor_name=(actor.username if actor else actor_name or "system")[:64],
        action=action,
        target=target[:200],
        outcome=outcome,
        remote_addr=origin.remote_addr,
        user_agent=origin.user_agent[:300],
        data=data or {},
    )
    session.add(event)
    session.flush()
    log.info(
        "audit %s %s %s %s from %s", event.actor_name, action, target, outcome, origin.remote_addr
    )
    return event


def list_events(
    session: Session,
    *,
    action: str | None = None,
    actor_id: int | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> tuple[list[AuditEvent], bool]:
    """Audit events newest first, keyset-paged; (events, has_more)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if action:
        query = query.where(AuditEvent.action == action)
    if actor_id:
        query = query.where(AuditEvent.actor_id == actor_id)
    if before_id:
        query = query.where(AuditEvent.id < before_id)
    events = list(session.scalars(query))
    return events[:limit], len(events) > limit
