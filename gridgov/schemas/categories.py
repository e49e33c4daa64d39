"""Schemas of the category list."""

from marshmallow import Schema, fields


class CategorySchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    group = fields.String(required=True, attribute="group_name")
    default_priority = fields.String(required=True)
    time_limits = fields.Dict(
        required=True,
        metadata={"description": "Per stage (accept, handle, verify): {amount, unit}."},
    )


class CategoryListSchema(Schema):
    items = fields.List(fields.Nested(CategorySchema), required=True)
