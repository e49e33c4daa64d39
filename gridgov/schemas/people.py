"""Schemas of the people endpoints: users, assignments and who is on duty."""

from marshmallow import Schema, ValidationError, fields, validate

from gridgov.models import DUTIES, ROLES
from gridgov.schemas.areas import CODE_PATTERN
from gridgov.schemas.common import INT32_MAX, Instant, PageQuerySchema
from gridgov.services.accounts import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    USERNAME_PATTERN,
    password_problem,
)


def _check_password(value: str) -> None:
    problem = password_problem(value)
    if problem:
        # "<code>: text" gives the envelope the stable code weak_password.
        raise ValidationError(f"weak_password: {problem}")


def _password(**kwargs) -> fields.String:
    return fields.String(
        load_only=True,
        validate=_check_password,
        metadata={
            "description": f"{MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} chars, never returned."
        },
        **kwargs,
    )


def _area_code(description: str, **kwargs) -> fields.String:
    return fields.String(
        validate=validate.Regexp(CODE_PATTERN, error="An area code: 6 to 18 digits."),
        metadata={"description": description},
        **kwargs,
    )


_display_name = validate.Length(max=100)
_role = validate.OneOf(ROLES)


# --- users ----------------------------------------------------------------------------------


class UserListQuerySchema(PageQuerySchema):
    role = fields.String(validate=_role)
    area = _area_code("Users assigned now to this area or an area under it.")
    active = fields.Boolean(metadata={"description": "Only active (true) or deactivated users."})
    q = fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Part of the username or display name (any case)."},
    )


class UserCreateSchema(Schema):
    username = fields.String(
        required=True,
        validate=validate.Regexp(USERNAME_PATTERN, error="3-64 characters of A-Z a-z 0-9 _ . -"),
        metadata={"description": "Unique regardless of case."},
    )
    display_name = fields.String(load_default="", validate=_display_name)
    role = fields.String(required=True, validate=_role)
    password = _password(required=True)


class UserUpdateSchema(Schema):
    display_name = fields.String(validate=_display_name)
    role = fields.String(
        validate=_role,
        metadata={"description": "Refused while the user holds assignments the role cannot."},
    )
    is_active = fields.Boolean(
        metadata={"description": "false deactivates the user and ends their open assignments."}
    )
    password = _password()


class UserSchema(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    display_name = fields.String(required=True)
    role = fields.String(required=True)
    is_active = fields.Boolean(required=True)
    deactivated_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    areas = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "Codes of the areas of the user's active assignments."},
    )


class UserPageSchema(Schema):
    items = fields.List(fields.Nested(UserSchema), required=True)
    next_cursor = fields.String(allow_none=True)


# --- assignments ----------------------------------------------------------------------------


class AssignmentSchema(Schema):
    id = fields.Integer(required=True)
    user = fields.Integer(required=True, metadata={"description": "The user's id."})
    area = fields.String(required=True, metadata={"description": "The area's code."})
    duty = fields.String(required=True)
    active_from = fields.DateTime(required=True)
    active_to = fields.DateTime(allow_none=True)
    active = fields.Boolean(required=True, metadata={"description": "Active at the time read."})
    created_by = fields.Integer(allow_none=True)


class UserDetailSchema(UserSchema):
    assignments = fields.List(
        fields.Nested(AssignmentSchema),
        required=True,
        metadata={"description": "Every assignment the user ever had, newest first."},
    )


class AssignmentListQuerySchema(PageQuerySchema):
    user = fields.Integer(
        validate=validate.Range(min=1, max=INT32_MAX), metadata={"description": "A user's id."}
    )
    area = _area_code("Assignments to this area or an area under it.")
    active = fields.Boolean(metadata={"description": "Only assignments active now (or not)."})


class AssignmentCreateSchema(Schema):
    user = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=1, max=INT32_MAX),
        metadata={"description": "A user's id."},
    )
    area = _area_code("The area's code.", required=True)
    duty = fields.String(
        required=True,
        validate=validate.OneOf(DUTIES),
        metadata={
            "description": "supervisor: a supervisor on a district, town or community; "
            "grid_head, full_time, part_time: a worker on a grid or micro-grid."
        },
    )
    active_from = Instant("Start; default now")
    active_to = Instant("End, later than the start; default open", allow_none=True)


class AssignmentPageSchema(Schema):
    items = fields.List(fields.Nested(AssignmentSchema), required=True)
    next_cursor = fields.String(allow_none=True)


# --- who is on duty -------------------------------------------------------------------------


class PersonSchema(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    display_name = fields.String(required=True)
    role = fields.String(required=True)


class OnDutySchema(Schema):
    user = fields.Nested(PersonSchema, required=True)
    duty = fields.String(required=True)
    area = fields.String(required=True, metadata={"description": "Code of the assigned area."})
    active_from = fields.DateTime(required=True)


class OnDutyPageSchema(Schema):
    items = fields.List(fields.Nested(OnDutySchema), required=True)
    next_cursor = fields.String(allow_none=True)
