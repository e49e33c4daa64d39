"""Boundary editing (admin): POST /api/v1/boundaries/edits/{operation} and
POST /api/v1/boundaries/changes/{id}/revert, each building an ordinary change set."""

from gridgov.api.input import Blueprint
from gridgov.api.security import current_user, roles_allowed
from gridgov.extensions import db
from gridgov.schemas.boundary_edits import (
    CreateBodySchema,
    EditQuerySchema,
    EditResultSchema,
    MergeBodySchema,
    MoveEdgeBodySchema,
    RedrawBodySchema,
    RetireBodySchema,
    SplitBodySchema,
)
from gridgov.schemas.errors import ErrorSchema
from gridgov.services import boundary_edits as edit_service
from gridgov.services.boundaries import ChangeSetOptions
from gridgov.settings import settings

blp = Blueprint(
    "boundary_edits",
    __name__,
    url_prefix="/api/v1/boundaries",
    description="Boundary editing: split, merge, move an edge, redraw, create, retire, revert.",
)

_REFUSED = (
    "The operation cannot be carried out (`error`: `line_misses_area`, `line_only_touches`,"
    " `line_does_not_split`, `piece_too_small`, `not_adjacent`, `not_siblings`, `gap_left`,"
    " `code_taken`, …; `details.location` and `details.codes` say where), or (not a dry run)"
    " the change set it built is invalid: nothing was applied."
)


def _options(query, body) -> ChangeSetOptions:
    return ChangeSetOptions(
        dry_run=query["dry_run"],
        include_ids=query.get("details") == "cases",
        source="edit",
        description=body.get("description", ""),
        effective_from=body.get("effective_from"),
        tolerances=settings().tolerances,
        max_nearest_m=settings().routing_nearest_max_m,
    )


def _edit(operation: str, query, body):
    fields = {k: v for k, v in body.items() if k not in ("description", "effective_from")}
    answer = edit_service.OPERATIONS[operation](
        db.session, actor=current_user(), options=_options(query, body), **fields
    )
    return _answer(query, answer)


def _answer(query, answer: edit_service.EditAnswer):
    db.session.commit()
    status = 422 if not answer.result.valid and not query["dry_run"] else 200
    return answer.as_dict(), status


def _documented(view):
    view = blp.alt_response(
        422, schema={"oneOf": [EditResultSchema, ErrorSchema]}, description=_REFUSED
    )(view)
    view = blp.alt_response(404, description="No such area (`area_not_found`).")(view)
    return blp.response(200, EditResultSchema)(view)


@blp.route("/edits/split", methods=["POST"])
@roles_allowed("admin")
@blp.arguments(EditQuerySchema, location="query")
@blp.arguments(SplitBodySchema)
@_documented
def post_split(query, body):
    """Split an area along a drawn line; the largest piece keeps the code unless `codes` say."""
    return _edit("split", query, body)


@blp.route("/edits/merge", methods=["POST"])
@roles_allowed("admin")
@blp.arguments(EditQuerySchema, location="query")
@blp.arguments(MergeBodySchema)
@_documented
def post_merge(query, body):
    """Merge adjacent areas of one parent (sharing an edge, not just a point)."""
    return _edit("merge", query, body)


@blp.route("/edits/move-edge", methods=["POST"])
@roles_allowed("admin")
@blp.arguments(EditQuerySchema, location="query")
@blp.arguments(MoveEdgeBodySchema)
@_documented
def post_move_edge(query, body):
    """Replace the edge two neighbours share by a drawn line, crossing them outline to outline."""
    return _edit("move-edge", query, body)


@blp.route("/edits/redraw", methods=["POST"])
@roles_allowed("admin")
@blp.arguments(EditQuerySchema, location="query")
@blp.arguments(RedrawBodySchema)
@_documented
def post_redraw(query, body):
    """Give an area a new shape: neighbours give up what it covers and take what it leaves."""
    return _edit("redraw", query, body)


@blp.route("/edits/create", methods=["POST"])
@roles_allowed("admin")
@blp.arguments(EditQuerySchema, location="query")
@blp.arguments(CreateBodySchema)
@_documented
def post_create(query, body):
    """A new area under `parent`, taking from its siblings what it covers."""
    return _edit("create", query, body)


@blp.route("/edits/retire", methods=["POST"])
@roles_allowed("admin")
@blp.arguments(EditQuerySchema, location="query")
@blp.arguments(RetireBodySchema)
@_documented
def post_retire(query, body):
    """Retire an area; its land goes to `into` or the neighbour sharing the longest edge."""
    return _edit("retire", query, body)


@blp.route("/changes/<id32:changeset_id>/revert", methods=["POST"])
@roles_allowed("admin")
@blp.arguments(EditQuerySchema, location="query")
@blp.response(200, EditResultSchema)
@blp.alt_response(404, description="No such change set (`changeset_not_found`).")
@blp.alt_response(
    409, description="An area it changed was changed again since (`revert_conflict`)."
)
@blp.alt_response(422, schema={"oneOf": [EditResultSchema, ErrorSchema]}, description=_REFUSED)
def post_revert(query, changeset_id):
    """Restore the revisions an applied change set replaced, as a new change set."""
    answer = edit_service.revert(
        db.session,
        actor=current_user(),
        changeset_id=changeset_id,
        options=_options(query, {}),
    )
    return _answer(query, answer)
