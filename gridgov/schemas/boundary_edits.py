"""Schemas of the boundary editing operations (/api/v1/boundaries/edits/…) and revert."""

from marshmallow import Schema, ValidationError, fields, validate

from gridgov.schemas.boundaries import ChangeSetResultSchema, ImpactSchema
from gridgov.schemas.common import Instant

CODE = validate.Regexp(r"^[0-9]{6,18}$", error="An area code is 6-18 digits.")
_NAME = validate.Length(min=1, max=100)


def _geojson(*types: str):
    def check(value: dict) -> None:
        if not isinstance(value, dict) or value.get("type") not in types:
            raise ValidationError(f"Expected a GeoJSON {' or '.join(types)} geometry.")

    return check


class EditQuerySchema(Schema):
    dry_run = fields.Boolean(load_default=True, metadata={"description": "Default true."})
    details = fields.String(
        validate=validate.OneOf(["cases"]),
        metadata={"description": "`cases`: list every re-routed open case (id, from, to)."},
    )


class _EditBody(Schema):
    description = fields.String(load_default="", validate=validate.Length(max=500))
    effective_from = Instant("When the change takes effect; ahead of now it is scheduled")


class _Drawn(_EditBody):
    snap_m = fields.Float(
        load_default=1.0,
        validate=validate.Range(min=0, max=10),
        metadata={"description": "Drawn vertices this close to an existing vertex snap to it."},
    )


class SplitBodySchema(_Drawn):
    code = fields.String(required=True, validate=CODE)
    line = fields.Dict(required=True, validate=_geojson("LineString"))
    codes = fields.List(fields.String(validate=CODE), validate=validate.Length(min=2, max=50))
    names = fields.List(fields.String(validate=_NAME), validate=validate.Length(max=50))


class MergeBodySchema(_EditBody):
    codes = fields.List(
        fields.String(validate=CODE), required=True, validate=validate.Length(min=2, max=50)
    )
    code = fields.String(validate=CODE, metadata={"description": "Default: the lowest code."})
    name = fields.String(validate=_NAME)


class MoveEdgeBodySchema(_Drawn):
    codes = fields.List(
        fields.String(validate=CODE), required=True, validate=validate.Length(equal=2)
    )
    line = fields.Dict(required=True, validate=_geojson("LineString"))


class RedrawBodySchema(_Drawn):
    code = fields.String(required=True, validate=CODE)
    geometry = fields.Dict(required=True, validate=_geojson("Polygon", "MultiPolygon"))
    name = fields.String(validate=_NAME)


class CreateBodySchema(_Drawn):
    parent = fields.String(required=True, validate=CODE)
    geometry = fields.Dict(required=True, validate=_geojson("Polygon", "MultiPolygon"))
    name = fields.String(required=True, validate=_NAME)
    code = fields.String(validate=CODE, metadata={"description": "Default: the next free code."})


class RetireBodySchema(_EditBody):
    code = fields.String(required=True, validate=CODE)
    into = fields.String(
        validate=CODE, metadata={"description": "Default: the neighbour with the longest edge."}
    )


class AreaChangeSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(allow_none=True)
    action = fields.String(required=True)
    from_ = fields.String(data_key="from", attribute="from", allow_none=True)


class RecodedSchema(Schema):
    from_ = fields.String(data_key="from", attribute="from", required=True)
    to = fields.String(required=True)


class AffectedAssignmentSchema(Schema):
    id = fields.Integer(required=True)
    user = fields.Integer(required=True)
    username = fields.String(required=True)
    role = fields.String(required=True)
    duty = fields.String(required=True)
    area = fields.String(required=True)
    change = fields.String(required=True)


class EditImpactSchema(ImpactSchema):
    area_changes = fields.List(fields.Nested(AreaChangeSchema), required=True)
    recoded = fields.List(fields.Nested(RecodedSchema), required=True)
    assignments = fields.List(fields.Nested(AffectedAssignmentSchema), required=True)


class EditResultSchema(ChangeSetResultSchema):
    operation = fields.String(required=True)
    impact = fields.Nested(EditImpactSchema, required=True)
    geometry = fields.Dict(
        required=True, metadata={"description": "{before, after}: FeatureCollections."}
    )
    changes = fields.Dict(required=True, metadata={"description": "The change set built."})
    reverts = fields.Integer()
