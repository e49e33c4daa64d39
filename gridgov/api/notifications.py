"""The caller's notifications and the devices they are pushed to: /api/v1/me/notifications,
/api/v1/me/devices (gridgov/services/notifications.py; delivery: `flask notifications deliver`).
"""

from gridgov.api.input import Blueprint
from gridgov.api.paging import encode_cursor, page_limit, page_position
from gridgov.api.security import current_user
from gridgov.extensions import db
from gridgov.schemas.notifications import (
    DeviceCreateSchema,
    DeviceSchema,
    MarkedSchema,
    MarkReadSchema,
    NotificationListQuerySchema,
    NotificationPageSchema,
)
from gridgov.services import notifications as notification_service
from gridgov.settings import settings

blp = Blueprint(
    "notifications",
    __name__,
    url_prefix="/api/v1/me",
    description="The caller's notifications and push devices.",
)


@blp.route("/notifications")
@blp.arguments(NotificationListQuerySchema, location="query")
@blp.response(200, NotificationPageSchema)
def list_notifications(args):
    """The caller's notifications, newest first, read and unread (`unread` filters)."""
    position = page_position(args, id=int)
    page = notification_service.list_notifications(
        db.session,
        user=current_user(),
        unread=args.get("unread"),
        before_id=position["id"] if position else None,
        limit=page_limit(args),
    )
    next_cursor = encode_cursor({"id": page.items[-1].id}) if page.has_more else None
    return {"items": page.items, "next_cursor": next_cursor}


@blp.route("/notifications/read", methods=["POST"])
@blp.arguments(MarkReadSchema)
@blp.response(200, MarkedSchema)
def mark_read(body):
    """Mark the caller's notifications read: `ids`, or every one up to the id `up_to`."""
    marked = notification_service.mark_read(
        db.session, user=current_user(), ids=body.get("ids"), up_to=body.get("up_to")
    )
    db.session.commit()
    return {"marked": marked}


@blp.route("/devices", methods=["POST"])
@blp.arguments(DeviceCreateSchema)
@blp.response(201, DeviceSchema)
@blp.alt_response(
    422,
    description="`gateway_not_allowed`, `invalid_subscription`, `webpush_not_configured`,"
    " `validation_failed`.",
)
def register_device(body):
    """Register a device: a webhook of a push gateway adapter (the answer's `secret` signs
    every push to it and is shown only here) or a browser's Web Push subscription."""
    subscription = body.get("subscription")
    config = settings().delivery
    device = notification_service.register_device(
        db.session,
        user=current_user(),
        kind=body["kind"],
        url=subscription["endpoint"] if subscription else body["url"],
        push_keys=subscription["keys"] if subscription else None,
        gateways=config.gateways,
        webpush_enabled=bool(config.vapid_private_key),
    )
    db.session.commit()
    return device


@blp.route("/devices/<id32:device_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, description="`device_not_found` (also another user's).")
def remove_device(device_id):
    """Remove one of the caller's devices; nothing more is pushed to it."""
    notification_service.remove_device(db.session, user=current_user(), device_id=device_id)
    db.session.commit()
