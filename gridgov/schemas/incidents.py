"""Schemas of incident intake and reading."""

from datetime import UTC, datetime, timedelta

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates

from gridgov.models import HANDLING_LEVELS, PRIORITIES, STATUSES
from gridgov.schemas.areas import CODE_PATTERN, FormatQuerySchema
from gridgov.schemas.common import (
    INT32_MAX,
    INT64_MAX,
    BBox,
    Inline,
    Instant,
    PageQuerySchema,
)
from gridgov.schemas.location import LocationSchema
from gridgov.schemas.routing import RoutingSchema
from gridgov.services.incidents import NewIncident
from gridgov.services.workflow import ACTIONS, REQUIRED_FIELDS, ActionRequest

CLIENT_ID = validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$", error="Use 1-64 letters, digits, '-' or '_'.")
MAX_PHOTOS = 9
# Phones' clocks drift; a report "from the future" beyond this is refused.
CLOCK_SKEW = timedelta(minutes=5)
MAX_BATCH_ITEMS = 100


class IncidentCreateSchema(Schema):
    client_id = fields.String(required=True, validate=CLIENT_ID)
    category = fields.String(required=True, validate=validate.Length(min=1, max=40))
    description = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    location = fields.Nested(LocationSchema, required=True)
    occurred_at = Instant("When it happened")
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    resolved_on_site = fields.Boolean(load_default=False)
    patrol_id = fields.Integer(validate=validate.Range(min=1, max=INT64_MAX))
    photos = fields.List(
        fields.String(validate=validate.Regexp(r"^[0-9a-f]{32}$")),
        validate=validate.Length(max=MAX_PHOTOS),
        load_default=list,
    )

    @validates("description")
    def not_blank(self, value, **kwargs):
        if not value.strip():
            raise ValidationError("The description must not be blank.")

    @validates("occurred_at")
    def not_in_future(self, value, **kwargs):
        if value > datetime.now(UTC) + CLOCK_SKEW:
            raise ValidationError("occurred_in_future: occurred_at is in the future.")

    @post_load
    def to_report(self, data, **kwargs) -> NewIncident:
        return NewIncident(
            client_id=data["client_id"],
            category=data["category"],
            description=data["description"].strip(),
            location=data["location"],
            occurred_at=data.get("occurred_at"),
            priority=data.get("priority"),
            resolved_on_site=data["resolved_on_site"],
            patrol_id=data.get("patrol_id"),
            photos=tuple(data["photos"]),
        )


class BatchSchema(Schema):
    # Items stay raw here: each one is validated on its own so a bad one blocks no other.
    items = fields.List(
        fields.Raw(),
        required=True,
        validate=validate.Length(
            min=1, max=MAX_BATCH_ITEMS, error="batch_too_large: 1 to {max} items per batch."
        ),
        metadata={"description": f"Up to {MAX_BATCH_ITEMS} reports, each as for POST /incidents."},
    )


class BatchItemResultSchema(Schema):
    client_id = fields.String(allow_none=True)
    status = fields.Integer(required=True, metadata={"description": "201, 200, 409, 422 or 503"})
    id = fields.Integer()
    error = fields.String()
    message = fields.String()
    errors = fields.Dict()


class BatchResultSchema(Schema):
    results = fields.List(fields.Nested(BatchItemResultSchema), required=True)


class CategoryRefSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)


class InputLocationSchema(Schema):
    """Dumps an Incident: the point as the phone sent it."""

    lon = fields.Float(required=True, attribute="input_lon")
    lat = fields.Float(required=True, attribute="input_lat")
    crs = fields.String(required=True, attribute="input_crs")
    accuracy_m = fields.Float(allow_none=True)


class IncidentLocationSchema(Schema):
    lon = fields.Float(required=True, metadata={"description": "WGS-84"})
    lat = fields.Float(required=True, metadata={"description": "WGS-84"})
    input = fields.Nested(InputLocationSchema, required=True, attribute="incident")


class PossibleDuplicateSchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True)
    distance_m = fields.Float(required=True)
    reported_at = fields.DateTime(required=True)


class PossibleDuplicatesSchema(Schema):
    items = fields.List(fields.Nested(PossibleDuplicateSchema), required=True)


def _column(field_class: type[fields.Field], name: str, **kwargs) -> fields.Field:
    """A field read from the incident row of the dumped view."""
    return field_class(attribute=f"incident.{name}", **kwargs)


class AllowedActionSchema(Schema):
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS))
    required = fields.List(
        fields.String(validate=validate.OneOf(tuple(REQUIRED_FIELDS.values()))),
        required=True,
        metadata={
            "description": "Fields the action needs: `note`, `duplicate_of`, or"
            " `assignee_or_handling_unit` (an `assignee`, a `handling_unit`, or both)."
        },
    )


class IncidentSchema(Schema):
    """Dumps an incident's view (services.incidents.IncidentView, with `routing` as the
    routing answer and, on submission, `possible_duplicates`: api/incidents.py)."""

    id = _column(fields.Integer, "id", required=True)
    ref = fields.String(required=True)
    client_id = _column(fields.String, "client_id", required=True)
    status = _column(fields.String, "status", required=True, validate=validate.OneOf(STATUSES))
    category = fields.Nested(CategoryRefSchema, required=True)
    priority = _column(fields.String, "priority", required=True)
    description = _column(fields.String, "description", required=True)
    location = Inline(IncidentLocationSchema, required=True)
    routing = fields.Nested(RoutingSchema, required=True)
    occurred_at = _column(fields.DateTime, "occurred_at", required=True)
    reported_at = _column(fields.DateTime, "created_at", required=True)
    deadline = _column(
        fields.DateTime,
        "deadline",
        allow_none=True,
        metadata={
            "description": "Deadline of the current stage (accept, handle or verify); null once"
            " no clock runs."
        },
    )
    deadline_working_hours_left = fields.Float(
        allow_none=True,
        metadata={
            "description": "Working hours (on the work calendar) from now to the deadline;"
            " negative when overdue by that much."
        },
    )
    handle_deadline = _column(
        fields.DateTime,
        "handle_deadline",
        allow_none=True,
        metadata={"description": "The handling stage's deadline as first set."},
    )
    overdue = fields.Boolean(required=True)
    allowed_actions = fields.List(
        fields.Nested(AllowedActionSchema),
        required=True,
        metadata={
            "description": "The actions the caller may take now, as the state machine allows"
            " them for this user (role, status, holder, level); send the case's ETag in If-Match."
        },
    )
    resolved_on_site = _column(fields.Boolean, "resolved_on_site", required=True)
    reporter_id = _column(fields.Integer, "reporter_id", required=True)
    handler_id = _column(fields.Integer, "handler_id", allow_none=True)
    patrol_id = _column(fields.Integer, "patrol_id", allow_none=True)
    photos = fields.List(fields.String(), required=True)
    version = _column(fields.Integer, "version", required=True)
    handling_level = _column(fields.String, "handling_level", required=True)
    handling_unit = _column(fields.String, "handling_unit", allow_none=True)
    proposed_handler_id = _column(fields.Integer, "proposed_handler_id", allow_none=True)
    resolved_level = _column(fields.String, "resolved_level", allow_none=True)
    duplicate_of = _column(fields.Integer, "duplicate_of_id", allow_none=True)
    rework_count = _column(fields.Integer, "rework_count", required=True)
    escalation_count = _column(fields.Integer, "escalation_count", required=True)
    possible_duplicates = fields.List(
        fields.Nested(PossibleDuplicateSchema),
        metadata={
            "description": "On submission only: open incidents of the same category"
            " reported shortly before, nearby."
        },
    )


class CommaList(fields.Field):
    """`a,b,c` in a query string, each item checked against `choices` when given."""

    def __init__(self, choices: tuple[str, ...] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Expected a comma-separated list.")
        items = tuple(part.strip() for part in value.split(",") if part.strip())
        unknown = [item for item in items if self.choices and item not in self.choices]
        if unknown:
            raise ValidationError(f"Unknown value(s): {', '.join(unknown)}.")
        return items


class IncidentFilterQuerySchema(Schema):
    status = CommaList(STATUSES, metadata={"description": "Comma-separated statuses."})
    category = CommaList(metadata={"description": "Comma-separated category codes."})
    area = fields.String(validate=validate.Regexp(CODE_PATTERN))
    bbox = BBox()
    overdue = fields.Boolean()
    reported_from = Instant("Reported at or after", data_key="from")
    reported_to = Instant("Reported before", data_key="to")
    handling_level = CommaList(
        HANDLING_LEVELS, metadata={"description": "Comma-separated handling levels."}
    )
    reporter = fields.Integer(
        validate=validate.Range(min=1, max=INT32_MAX), metadata={"description": "Reporter's id."}
    )


class IncidentListQuerySchema(IncidentFilterQuerySchema, PageQuerySchema, FormatQuerySchema):
    sort = fields.String(
        load_default="id",
        validate=validate.OneOf(("id", "deadline")),
        metadata={
            "description": "`id`: newest first (default). `deadline`: earliest deadline first,"
            " so overdue cases first, those without a deadline last (a supervisor's queue)."
        },
    )


class StatusCountsSchema(Schema):
    by_status = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={"description": "Matching incidents per status (statuses with none left out)."},
    )
    overdue = fields.Integer(required=True)
    total = fields.Integer(required=True)


class IncidentSummarySchema(Schema):
    id = fields.Integer(required=True)
    ref = fields.String(required=True)
    status = fields.String(required=True)
    category = fields.String(required=True)
    category_name = fields.String(required=True)
    priority = fields.String(required=True)
    description = fields.String(required=True)
    lon = fields.Float(required=True)
    lat = fields.Float(required=True)
    town = fields.String(allow_none=True)
    grid = fields.String(allow_none=True)
    microgrid = fields.String(allow_none=True)
    routing_method = fields.String(required=True)
    handling_level = fields.String(required=True)
    handler_id = fields.Integer(allow_none=True)
    reporter_id = fields.Integer(required=True)
    reported_at = fields.DateTime(required=True)
    deadline = fields.DateTime(allow_none=True)
    overdue = fields.Boolean(required=True)
    version = fields.Integer(required=True)


class IncidentPageSchema(Schema):
    items = fields.List(fields.Nested(IncidentSummarySchema), required=True)
    next_cursor = fields.String(allow_none=True)


class ActionSchema(Schema):
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS))
    note = fields.String(load_default="", validate=validate.Length(max=2000))
    assignee = fields.Integer(validate=validate.Range(min=1, max=INT32_MAX))
    handling_unit = fields.String(validate=validate.Length(min=1, max=100))
    duplicate_of = fields.Integer(validate=validate.Range(min=1, max=INT64_MAX))
    expected_version = fields.Integer(
        validate=validate.Range(min=1, max=INT32_MAX),
        metadata={"description": "Alternative to the If-Match header."},
    )

    @post_load
    def to_request(self, data, **kwargs) -> ActionRequest:
        return ActionRequest(
            action=data["action"],
            note=data["note"],
            assignee_id=data.get("assignee"),
            handling_unit=data.get("handling_unit"),
            duplicate_of=data.get("duplicate_of"),
            expected_version=data.get("expected_version"),
        )


class TimelineEntrySchema(Schema):
    id = fields.Integer(required=True)
    action = fields.String(required=True)
    from_status = fields.String(allow_none=True)
    to_status = fields.String(allow_none=True)
    note = fields.String(required=True)
    data = fields.Dict(required=True)
    actor = fields.String(allow_none=True, metadata={"description": "null: the system"})
    at = fields.DateTime(required=True)


class TimelineSchema(Schema):
    items = fields.List(fields.Nested(TimelineEntrySchema), required=True)


class TasksSchema(Schema):
    items = fields.List(fields.Nested(IncidentSummarySchema), required=True)
