"""Schemas of the categories: the list, and the admin's create and update bodies.

The time limits' shape comes from the services' own names (stages, calendar units,
priorities), so a stage or unit added there is accepted here without a second list.
"""

from marshmallow import Schema, fields, post_load, validate

from gridgov.models.category import PRIORITIES
from gridgov.services.calendar import UNITS
from gridgov.services.time_limits import STAGES

CODE_PATTERN = r"^[a-z][a-z0-9_]{1,39}$"
# A year of working days: longer than any real stage limit, short enough to stay a date.
MAX_AMOUNT = 250 * 24


class StageLimitSchema(Schema):
    amount = fields.Float(
        required=True,
        validate=validate.Range(min=0, min_inclusive=False, max=MAX_AMOUNT),
        allow_nan=False,
    )
    unit = fields.String(required=True, validate=validate.OneOf(UNITS))

    @post_load
    def whole_amounts_stay_integers(self, data, **kwargs):
        # Shown as "2工作日" in Open311's notices and the map, not "2.0工作日".
        if data["amount"].is_integer():
            data["amount"] = int(data["amount"])
        return data


def _stage_limits(**extra) -> dict:
    return {
        stage: fields.Nested(StageLimitSchema, metadata={"description": f"Limit of `{stage}`."})
        for stage in STAGES
    } | extra


StageLimitsSchema = Schema.from_dict(_stage_limits(), name="StageLimitsSchema")
TimeLimitsSchema = Schema.from_dict(
    _stage_limits(
        priority_overrides=fields.Dict(
            keys=fields.String(validate=validate.OneOf(PRIORITIES)),
            values=fields.Nested(StageLimitsSchema),
            metadata={"description": "Per priority, stage limits that win over the above."},
        )
    ),
    name="TimeLimitsSchema",
)


class CategorySchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    group = fields.String(required=True, attribute="group_name")
    default_priority = fields.String(required=True)
    time_limits = fields.Dict(
        required=True,
        metadata={"description": "Per stage (accept, handle, verify): {amount, unit}."},
    )
    active = fields.Boolean(attribute="is_active", dump_only=True)


class CategoryListSchema(Schema):
    items = fields.List(fields.Nested(CategorySchema), required=True)


class CategoryUpdateSchema(Schema):
    """What an admin may change; absent fields stay as they are."""

    name = fields.String(validate=validate.Length(min=1, max=100))
    group = fields.String(attribute="group_name", validate=validate.Length(min=1, max=100))
    default_priority = fields.String(validate=validate.OneOf(PRIORITIES))
    time_limits = fields.Nested(TimeLimitsSchema)
    active = fields.Boolean(attribute="is_active")


class CategoryCreateSchema(CategoryUpdateSchema):
    code = fields.String(required=True, validate=validate.Regexp(CODE_PATTERN))
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    group = fields.String(
        required=True, attribute="group_name", validate=validate.Length(min=1, max=100)
    )
    time_limits = fields.Nested(TimeLimitsSchema, required=True)
