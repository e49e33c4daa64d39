"""Schemas of the audit log."""

from marshmallow import Schema, fields, validate

from gridgov.schemas.common import INT32_MAX, PageQuerySchema


class AuditQuerySchema(PageQuerySchema):
    action = fields.String(validate=validate.Length(max=40))
    actor = fields.Integer(validate=validate.Range(min=1, max=INT32_MAX))


class AuditEventSchema(Schema):
    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    actor_id = fields.Integer(allow_none=True)
    actor_name = fields.String(required=True)
    action = fields.String(required=True)
    target = fields.String(required=True)
    outcome = fields.String(required=True)
    remote_addr = fields.String(allow_none=True)
    user_agent = fields.String(required=True)
    data = fields.Dict(required=True)


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEventSchema), required=True)
    next_cursor = fields.String(allow_none=True)
