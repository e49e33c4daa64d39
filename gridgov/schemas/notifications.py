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


class DeviceCreateSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(DEVICE_KINDS))
    url = fields.String(
        required=True,
        validate=[
            validate.Length(max=2000),
            validate.URL(schemes={"http", "https"}, require_tld=False),
        ],
        metadata={"description": "The push gateway adapter's URL (GRIDGOV_PUSH_GATEWAYS)."},
    )


class DeviceSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    url = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    secret = fields.String(
        metadata={"description": "Signs the webhook bodies (HMAC-SHA256); shown only once."}
    )
