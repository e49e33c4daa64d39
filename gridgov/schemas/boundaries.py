"""Schemas of boundary change sets and area history."""

from marshmallow import Schema, fields, validate

from geo.topology import BOUNDARY_CRS
from gridgov.models.area import CHANGESET_STATUSES
from gridgov.schemas.common import GeoJSONText, Instant, PageQuerySchema


class ChangeSetQuerySchema(Schema):
    dry_run = fields.Boolean(load_default=True, metadata={"description": "Default true."})
    repair = fields.Boolean(
        load_default=False, metadata={"description": "Repair invalid geometries (reported)."}
    )
    crs = fields.String(load_default="wgs84", validate=validate.OneOf(BOUNDARY_CRS))
    ids = fields.Boolean(
        load_default=False, metadata={"description": "List the ids of re-routed incidents."}
    )


class ChangeSetBodySchema(Schema):
    type = fields.String(required=True, validate=validate.Equal("FeatureCollection"))
    # Features stay raw: the change-set validator reports each problem by code and kind.
    features = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1))
    effective_from = Instant("When the change takes effect")
    description = fields.String(load_default="", validate=validate.Length(max=500))
    # Members a FeatureCollection may carry that we do not use.
    bbox = fields.Raw()
    name = fields.Raw()


class ProblemSchema(Schema):
    code = fields.String(allow_none=True)
    kind = fields.String(required=True)
    detail = fields.String(required=True)
    location = fields.Dict()
    other = fields.String()
    area_m2 = fields.Float()
    severity = fields.String()


class MoveSchema(Schema):
    from_ = fields.String(data_key="from", attribute="from", allow_none=True)
    to = fields.String(allow_none=True)
    count = fields.Integer(required=True)


class ImpactSchema(Schema):
    moved_open_incidents = fields.Integer(required=True)
    moves = fields.List(fields.Nested(MoveSchema), required=True)
    incident_ids = fields.List(fields.Integer(), allow_none=True)
    cases = fields.List(fields.Dict(), allow_none=True)
    assignments_ended = fields.List(fields.Dict())
    areas = fields.Dict()


class ChangeSetResultSchema(Schema):
    valid = fields.Boolean(required=True)
    problems = fields.List(fields.Nested(ProblemSchema), required=True)
    impact = fields.Nested(ImpactSchema, required=True)
    applied = fields.Boolean(required=True)
    changeset = fields.Integer(allow_none=True)
    status = fields.String(
        allow_none=True,
        metadata={"description": "applied, pending (scheduled), or null (nothing stored)."},
    )


class HistoryQuerySchema(Schema):
    geometry = fields.Boolean(load_default=False)


class RevisionSchema(Schema):
    valid_from = fields.DateTime(required=True)
    valid_to = fields.DateTime(allow_none=True)
    name = fields.String(required=True)
    parent = fields.String(allow_none=True)
    changeset = fields.Dict(required=True)
    geometry = GeoJSONText(attribute="geometry_json")


class HistorySchema(Schema):
    code = fields.String(required=True)
    retired_at = fields.DateTime(allow_none=True)
    items = fields.List(fields.Nested(RevisionSchema), required=True)


class ChangesetListQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(CHANGESET_STATUSES))


class ChangesetSchema(Schema):
    id = fields.Integer(required=True)
    source = fields.String(required=True)
    description = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    effective_from = fields.DateTime(required=True)
    applied_at = fields.DateTime(allow_none=True)
    status = fields.String(required=True, metadata={"description": " | ".join(CHANGESET_STATUSES)})
    author = fields.String(allow_none=True)
    counts = fields.Dict(
        required=True,
        metadata={"description": "created, updated, retired, unchanged, moved_open_incidents."},
    )
    reverts = fields.Integer(allow_none=True)
    reverted_by = fields.Integer(allow_none=True)
    failure = fields.Dict(
        allow_none=True, metadata={"description": "A failed set: {at, problems} when it fell due."}
    )


class ChangesetPageSchema(Schema):
    items = fields.List(fields.Nested(ChangesetSchema), required=True)
    next_cursor = fields.String(allow_none=True)


class ChangesetDetailSchema(ChangesetSchema):
    features = fields.Dict(
        required=True,
        metadata={
            "description": "FeatureCollection: what it wrote (applied) or what was submitted."
        },
    )
    moves = fields.List(fields.Nested(MoveSchema), required=True)
