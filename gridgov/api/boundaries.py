"""Boundary administration (admin): POST /api/v1/boundaries/changes, the history of change sets
(GET /changes, /changes/{id}) and cancelling a scheduled one."""

from dataclasses import asdict

from gridgov.api.input import Blueprint
from gridgov.api.paging import encode_cursor, page_limit, page_position
from gridgov.api.security import current_user, roles_allowed
from gridgov.extensions import db
from gridgov.schemas.boundaries import (
    ChangeSetBodySchema,
    ChangesetDetailSchema,
    ChangesetListQuerySchema,
    ChangesetPageSchema,
    ChangeSetQuerySchema,
    ChangeSetResultSchema,
    ChangesetSchema,
)
from gridgov.schemas.errors import ErrorSchema
from gridgov.services import boundaries as boundary_service
from gridgov.services import changesets as changeset_service
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


@blp.route("/changes", methods=["GET"])
@roles_allowed("admin")
@blp.arguments(ChangesetListQuerySchema, location="query")
@blp.response(200, ChangesetPageSchema)
def list_changes(args):
    """Change sets newest first: applied, pending (scheduled), cancelled and failed ones."""
    position = page_position(args, id=int)
    page = changeset_service.list_changesets(
        db.session,
        status=args.get("status"),
        before_id=position["id"] if position else None,
        limit=page_limit(args),
    )
    next_cursor = encode_cursor({"id": page.items[-1].id}) if page.has_more else None
    return {"items": page.items, "next_cursor": next_cursor}


@blp.route("/changes/<id32:changeset_id>", methods=["GET"])
@roles_allowed("admin")
@blp.response(200, ChangesetDetailSchema)
@blp.alt_response(404, description="No such change set (`changeset_not_found`).")
def get_change(changeset_id):
    """One change set with its areas (GeoJSON) and the case moves it made."""
    view, features, moves = changeset_service.changeset_detail(db.session, changeset_id)
    return {**asdict(view), "features": features, "moves": moves}


@blp.route("/changes/<id32:changeset_id>/cancel", methods=["POST"])
@roles_allowed("admin")
@blp.response(200, ChangesetSchema)
@blp.alt_response(404, description="No such change set (`changeset_not_found`).")
@blp.alt_response(409, description="It is not pending (`changeset_not_pending`).")
def cancel_change(changeset_id):
    """Cancel a scheduled (pending) change set before it falls due."""
    view = changeset_service.cancel(db.session, actor=current_user(), changeset_id=changeset_id)
    db.session.commit()
    return view
