"""Notifications and devices: /api/v1/me/notifications, /api/v1/me/devices."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from gridgov.models import DEVICE_KINDS, NOTIFICATION_KINDS
from gridgov.schemas.common import INT64_MAX, PageQuerySchema


class NotificationListQuerySchema(PageQuerySchema):
    unread = fields.Boolean(metadata={"description": "Only unread (true) or only read (false)."})


class NotificationSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"enum": list(NOTIFICATION_KINDS)})
    incident = fields.Integer(allow_none=True, metadata={"description": "The case's id."})
    assignment = fields.Integer(allow_none=True, metadata={"description": "The assignment's id."})
    payload = fields.Dict(required=True, metadata={"description": "What the phone shows."})
    idempotency_key = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    read_at = fields.DateTime(allow_none=True)


class NotificationPageSchema(Schema):
    items = fields.List(fields.Nested(NotificationSchema), required=True)
    next_cursor = fields.String(allow_none=True)


_ID = fields.Integer(strict=True, validate=validate.Range(min=1, max=INT64_MAX))


class MarkReadSchema(Schema):
    ids = fields.List(
        _ID, validate=validate.Length(min=1, max=500), metadata={"description": "These ids."}
    )
    up_to = fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=INT64_MAX),
        metadata={"description": "Every notification with this id or a lower one."},
    )

    @validates_schema
    def _one_of(self, data, **kwargs):
        if ("ids" in data) == ("up_to" in data):
            raise ValidationError("Give either ids or up_to.", "ids")


class MarkedSchema(Schema):
    marked = fields.Integer(required=True, metadata={"description": "How many became read."})


class PushKeysSchema(Schema):
    p256dh = fields.String(required=True, validate=validate.Length(max=200))
    auth = fields.String(required=True, validate=validate.Length(max=200))


_PUSH_URL = [
    validate.Length(max=2000),
    validate.URL(schemes={"http", "https"}, require_tld=False),
]


class SubscriptionSchema(Schema):
    endpoint = fields.String(required=True, validate=_PUSH_URL)
    keys = fields.Nested(PushKeysSchema, required=True)
    # PushSubscription.toJSON() names it so; the push service's answers tell when it ends.
    expirationTime = fields.Raw(allow_none=True, metadata={"description": "Ignored."})


class DeviceCreateSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(DEVICE_KINDS))
    url = fields.String(
        validate=_PUSH_URL,
        metadata={
            "description": "webhook: the push gateway adapter's URL (GRIDGOV_PUSH_GATEWAYS)."
        },
    )
    subscription = fields.Nested(
        SubscriptionSchema,
        metadata={"description": "webpush: the browser's PushSubscription.toJSON()."},
    )

    @validates_schema
    def _what_the_kind_needs(self, data, **kwargs):
        needed = "url" if data.get("kind") == "webhook" else "subscription"
        other = "subscription" if needed == "url" else "url"
        if needed not in data:
            raise ValidationError(f"Required for a {data.get('kind')} device.", needed)
        if other in data:
            raise ValidationError(f"Not for a {data.get('kind')} device.", other)


class DeviceSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    url = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    secret = fields.String(
        allow_none=True,
        metadata={"description": "webhook: signs its bodies (HMAC-SHA256); shown only once."},
    )
