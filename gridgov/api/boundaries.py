"""Boundary administration: POST /api/v1/boundaries/changes (admin)."""

from gridgov.api.input import Blueprint
from gridgov.api.security import current_user, roles_allowed
from gridgov.extensions import db
from gridgov.schemas.boundaries import (
    ChangeSetBodySchema,
    ChangeSetQuerySchema,
    ChangeSetResultSchema,
)
from gridgov.schemas.errors import ErrorSchema
from gridgov.services import boundaries as boundary_service
from gridgov.settings import settings

blp = Blueprint(
    "boundaries", __name__, url_prefix="/api/v1/boundaries", description="Boundary changes."
)


@blp.route("/changes", methods=["POST"])
@roles_allowed("admin")
@blp.arguments(ChangeSetQuerySchema, location="query")
@blp.arguments(ChangeSetBodySchema)
@blp.response(200, ChangeSetResultSchema)
@blp.alt_response(
    422,
    # The result (valid: false) for a change set that parsed; the envelope for one that did not.
    schema={"oneOf": [ChangeSetResultSchema, ErrorSchema]},
    description="Invalid change set (not a dry run): nothing was applied.",
)
def post_changes(query, body):
    """Validate a GeoJSON change set, preview its impact, and apply it unless `dry_run`."""
    actor = current_user()
    options = boundary_service.ChangeSetOptions(
        dry_run=query["dry_run"],
        repair=query["repair"],
        crs=query["crs"],
        include_ids=query["ids"],
        effective_from=body.get("effective_from"),
        source="api",
        description=body["description"],
        tolerances=settings().tolerances,
        max_nearest_m=settings().routing_nearest_max_m,
    )
    result = boundary_service.submit_changeset(
        db.session, actor=actor, features=body["features"], options=options
    )
    db.session.commit()
    status = 422 if not result.valid and not query["dry_run"] else 200
    return result.as_dict(), status
