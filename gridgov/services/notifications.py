"""Notifications: the transactional outbox, a user's list of them, and their devices.

- Written in the transaction of the change that causes them (a workflow action, an assignment
  created or ended), so a rolled-back change leaves no notification and a committed one always
  has its notifications. With each notification one `delivery` per device of its recipient is
  written too; `flask notifications deliver` (services/delivery.py) pushes them later.
- Who is told: dispatch and reassign tell the new holder (`dispatched`), return tells the
  holder who resolved the case (`returned`), escalate tells the supervisors on duty in the
  case's area at its new handling level (`escalated`), an assignment created or ended tells its
  user (`assignment_changed`). Never the person who acted, and never anyone who may not see the
  case (services/scope.py decides, as for every read).
- Each notification has a stable idempotency key naming its cause and recipient (the timeline
  event, or the assignment and what happened to it): writing it twice writes it once, and
  receivers of pushes drop what they already have by it.
"""

import base64
import binascii
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import BigInteger, exists, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from gridgov.errors import NotFound, ValidationFailed
from gridgov.models import (
    Assignment,
    Delivery,
    Device,
    Incident,
    IncidentEvent,
    Notification,
    User,
)
from gridgov.services.paging import Page
from gridgov.services.scope import incident_scope
from gridgov.services.users import active_assignment_filter


@dataclass(frozen=True)
class NotificationView:
    id: int
    kind: str
    incident: int | None
    assignment: int | None
    payload: dict
    idempotency_key: str
    created_at: datetime
    read_at: datetime | None


@dataclass(frozen=True)
class DeviceView:
    id: int
    kind: str
    url: str
    created_at: datetime
    # Only in the answer to the registration: it is never shown again.
    secret: str | None = None


def notify(
    session: Session,
    *,
    user_id: int,
    kind: str,
    key: str,
    payload: dict,
    incident_id: int | None = None,
    assignment_id: int | None = None,
) -> int | None:
    """Write a notification and its deliveries; None when one with `key` already exists."""
    notification_id = session.scalar(
        pg_insert(Notification)
        .values(
            user_id=user_id,
            kind=kind,
            incident_id=incident_id,
            assignment_id=assignment_id,
            payload=payload,
            idempotency_key=key,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(Notification.id)
    )
    if notification_id is not None:
        session.execute(
            insert(Delivery).from_select(
                ["notification_id", "device_id"],
                select(literal(notification_id, BigInteger), Device.id).where(
                    Device.user_id == user_id
                ),
            )
        )
    return notification_id


def notify_incident_event(
    session: Session, *, incident: Incident, event: IncidentEvent, actor: User | None
) -> list[int]:
    """Notifications for a workflow action just recorded as `event`; the recipients' ids."""
    kind, candidates = _event_recipients(session, incident, event)
    payload = {
        "action": event.action,
        "status": incident.status,
        "handling_level": incident.handling_level,
        "deadline": incident.deadline.isoformat() if incident.deadline else None,
        "note": event.note[:200],
    }
    told = []
    for user in candidates:
        if actor is not None and user.id == actor.id:
            continue
        if not _may_see(session, user, incident.id):
            continue
        notify(
            session,
            user_id=user.id,
            kind=kind,
            key=f"event:{event.id}:user:{user.id}",
            payload=payload,
            incident_id=incident.id,
        )
        told.append(user.id)
    return told


def _event_recipients(session: Session, incident: Incident, event: IncidentEvent):
    if event.action in ("dispatch", "reassign") and incident.handler_id is not None:
        return "dispatched", [session.get(User, incident.handler_id)]
    if event.action == "return" and incident.handler_id is not None:
        return "returned", [session.get(User, incident.handler_id)]
    if event.action == "escalate":
        area_id = getattr(incident, f"{incident.handling_level}_id")
        supervisors = session.scalars(
            select(User)
            .where(
                User.role == "supervisor",
                User.is_active.is_(True),
                exists().where(
                    Assignment.user_id == User.id,
                    Assignment.area_id == area_id,
                    active_assignment_filter(),
                ),
            )
            .order_by(User.id)
        ).all()
        return "escalated", supervisors
    return None, []


def _may_see(session: Session, user: User, incident_id: int) -> bool:
    if not user.is_active:
        return False
    visible = select(Incident.id).where(
        Incident.id == incident_id, incident_scope(session, user=user)
    )
    return session.scalar(select(visible.exists()))


def notify_assignment(
    session: Session, *, assignment: Assignment, area_code: str, change: str, actor: User
) -> None:
    """Tell a user their assignment was `change`d (created or ended), unless they did it."""
    if assignment.user_id == actor.id:
        return
    notify(
        session,
        user_id=assignment.user_id,
        kind="assignment_changed",
        key=f"assignment:{assignment.id}:{change}",
        payload={
            "change": change,
            "area": area_code,
            "duty": assignment.duty,
            "active_from": assignment.active_from.isoformat(),
            "active_to": assignment.active_to.isoformat() if assignment.active_to else None,
        },
        assignment_id=assignment.id,
    )


def list_notifications(
    session: Session,
    *,
    user: User,
    unread: bool | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> Page[NotificationView]:
    """The user's notifications, newest first; `unread` True/False keeps only those."""
    query = select(Notification).where(Notification.user_id == user.id)
    if unread is True:
        query = query.where(Notification.read_at.is_(None))
    elif unread is False:
        query = query.where(Notification.read_at.is_not(None))
    if before_id is not None:
        query = query.where(Notification.id < before_id)
    rows = session.scalars(query.order_by(Notification.id.desc()).limit(limit + 1)).all()
    return Page.of(rows, limit, _notification_view)


def _notification_view(row: Notification) -> NotificationView:
    return NotificationView(
        id=row.id,
        kind=row.kind,
        incident=row.incident_id,
        assignment=row.assignment_id,
        payload=row.payload,
        idempotency_key=row.idempotency_key,
        created_at=row.created_at,
        read_at=row.read_at,
    )


def mark_read(
    session: Session, *, user: User, ids: list[int] | None = None, up_to: int | None = None
) -> int:
    """Mark the user's notifications `ids`, or all up to id `up_to`, read; how many changed."""
    if (ids is None) == (up_to is None):
        raise ValidationFailed(
            "Name either the ids to mark read or up_to, not both.",
            errors={"json": {"ids": ["Give ids or up_to."]}},
        )
    chosen = Notification.id.in_(ids) if ids is not None else Notification.id <= up_to
    result = session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None), chosen)
        .values(read_at=func.now())
    )
    return result.rowcount


def register_device(
    session: Session,
    *,
    user: User,
    kind: str,
    url: str,
    gateways: tuple[str, ...],
    push_keys: dict | None = None,
    webpush_enabled: bool = False,
) -> DeviceView:
    """Register a device of `user`: a webhook (the answer carries its signing secret, shown
    only now) or a Web Push subscription (`url` its endpoint, `push_keys` p256dh and auth).

    Its URL must start with one of `gateways` (prefixes the operator allows): the deliverer
    posts wherever a device says, so an arbitrary URL would let any user make the server
    send requests into its own network.
    """
    parts = urlsplit(url)
    # user:password@ would move the host behind an allowed-looking prefix.
    plain = parts.scheme in ("http", "https") and "@" not in parts.netloc
    if not plain or not any(url.startswith(prefix) for prefix in gateways):
        raise ValidationFailed(
            "The URL is not one of the push gateways this service delivers to.",
            code="gateway_not_allowed",
            errors={"json": {"url": ["Not an allowed push gateway."]}},
        )
    secret = None
    if kind == "webpush":
        if not webpush_enabled:
            raise ValidationFailed(
                "Web Push is not configured on this service (no VAPID key).",
                code="webpush_not_configured",
            )
        _check_push_keys(push_keys)
    else:
        secret = secrets.token_hex(32)
    device = Device(user_id=user.id, kind=kind, url=url, secret=secret, push_keys=push_keys)
    session.add(device)
    session.flush()
    return DeviceView(
        id=device.id,
        kind=device.kind,
        url=device.url,
        created_at=device.created_at,
        secret=secret,
    )


# A subscription's keys: an uncompressed P-256 point and a 16-byte secret (RFC 8291).
_KEY_SIZES = {"p256dh": 65, "auth": 16}


def _check_push_keys(push_keys: dict | None) -> None:
    bad = {}
    for name, size in _KEY_SIZES.items():
        try:
            raw = base64.urlsafe_b64decode(push_keys[name] + "=" * (-len(push_keys[name]) % 4))
        except (KeyError, TypeError, ValueError, binascii.Error):
            raw = b""
        if len(raw) != size or (name == "p256dh" and raw[0] != 4):
            bad[name] = [f"Not a subscription's {name} key (base64url, {size} bytes)."]
    if bad:
        raise ValidationFailed(
            "The subscription's keys are not usable.",
            code="invalid_subscription",
            errors={"json": {"subscription": {"keys": bad}}},
        )


def remove_device(session: Session, *, user: User, device_id: int) -> None:
    """Remove one of the user's devices (its pending deliveries go with it)."""
    device = session.scalar(select(Device).where(Device.id == device_id, Device.user_id == user.id))
    if device is None:
        raise NotFound(f"No device {device_id}.", code="device_not_found")
    session.delete(device)
    session.flush()
