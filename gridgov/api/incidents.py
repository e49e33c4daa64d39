"""Incident intake and reading: /api/v1/incidents."""

import dataclasses
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Response, jsonify, request
from marshmallow import ValidationError, missing
from sqlalchemy.exc import DataError, DBAPIError

from gridgov.api.errors import message_code
from gridgov.api.geojson import feature, feature_collection, geojson_response, wants_geojson
from gridgov.api.input import CONVERSION_ERRORS, UNCONVERTIBLE_VALUE, Blueprint, load_or_raise
from gridgov.api.paging import encode_cursor, invalid_cursor, page_limit, page_position
from gridgov.api.routing import routing_body
from gridgov.api.security import current_user
from gridgov.errors import DomainError, MapBusy, ValidationFailed
from gridgov.extensions import db
from gridgov.schemas.compiled import compile_dump
from gridgov.schemas.geojson import GeoJSONFeatureCollectionSchema
from gridgov.schemas.incidents import (
    ActionSchema,
    BatchResultSchema,
    BatchSchema,
    IncidentCreateSchema,
    IncidentFilterQuerySchema,
    IncidentListQuerySchema,
    IncidentPageSchema,
    IncidentSchema,
    IncidentSummarySchema,
    PossibleDuplicatesSchema,
    StatusCountsSchema,
    TasksSchema,
    TimelineSchema,
)
from gridgov.services import incident_queries, workflow
from gridgov.services import incidents as incident_service
from gridgov.services.scope import get_visible_incident
from gridgov.settings import settings

# If-Match carries the ETag we issue: "<id>-<version>" (weak or strong). At most 19 digits each
# (a bigint): a longer number is no ETag of ours, and int() of 5,000 digits raises.
_ETAG = re.compile(r'^(?:W/)?"(\d{1,19})-(\d{1,19})"$')

log = logging.getLogger(__name__)

blp = Blueprint("incidents", __name__, url_prefix="/api/v1", description="Incidents.")


# Pages of up to 500 items: marshmallow's dump cost more than their query (19 against 17 ms),
# so they are dumped by functions compiled from their schemas (gridgov/schemas/compiled.py)
# and returned as JSON directly (flask-smorest passes a Response through). The incident
# answer of every report too: its schema dump took 0.13 ms, the compiled one 0.08 ms.
_dump_incident = compile_dump(IncidentSchema())
_dump_summaries = compile_dump(IncidentSummarySchema(many=True))
_dump_page = compile_dump(IncidentPageSchema())
_dump_tasks = compile_dump(TasksSchema())


@dataclass(frozen=True)
class IncidentAnswer:
    """What IncidentSchema dumps: an incident's view, with its routing as GET /route answers
    it and, on submission only, the possible duplicates (absent from other answers)."""

    view: incident_service.IncidentView
    routing: dict
    allowed_actions: list[workflow.AllowedAction]
    deadline_working_hours_left: float | None
    possible_duplicates: list | object = missing

    def __getattr__(self, name: str):
        return getattr(self.view, name)


def incident_answer(view: incident_service.IncidentView, viewer, **kwargs) -> IncidentAnswer:
    """An incident's view as `viewer` gets it (with what they may do now), for IncidentSchema."""
    incident = view.incident
    left = None
    if incident.deadline is not None:
        hours = settings().calendar.working_hours_between(datetime.now(UTC), incident.deadline)
        left = round(hours, 2)
    return IncidentAnswer(
        view=view,
        routing=routing_body(view.routing),
        allowed_actions=workflow.allowed_actions(incident, viewer),
        deadline_working_hours_left=left,
        **kwargs,
    )


def incident_response(answer: IncidentAnswer, status: int) -> tuple[Response, int, dict]:
    """The answer as IncidentSchema dumps it, with the incident's ETag."""
    return jsonify(_dump_incident(answer)), status, etag_headers(answer.incident)


def etag_headers(incident) -> dict[str, str]:
    """The ETag of an incident's current version."""
    return {"ETag": f'"{incident.id}-{incident.version}"'}


@blp.route("/incidents", methods=["POST"])
@blp.arguments(IncidentCreateSchema)
@blp.response(201, IncidentSchema)
@blp.alt_response(200, schema=IncidentSchema, description="A replay of the same report.")
@blp.alt_response(409, description="`client_id_conflict`: this client_id carried another report.")
def create_incident(report):
    """Report an incident; replays of the same client_id and content return the same answer."""
    reporter, intake = current_user(), settings().intake
    result = incident_service.submit_incident(
        db.session, reporter=reporter, report=report, settings=intake
    )
    db.session.commit()
    view = incident_service.incident_view(db.session, incident=result.incident)
    duplicates = incident_service.possible_duplicates(
        db.session, incident=result.incident, viewer=reporter, settings=intake
    )
    answer = incident_answer(view, reporter, possible_duplicates=duplicates)
    return incident_response(answer, 201 if result.created else 200)


@blp.route("/incidents/batch", methods=["POST"])
@blp.arguments(BatchSchema)
@blp.response(200, BatchResultSchema)
def create_batch(batch):
    """Upload a phone's offline queue: each item is answered on its own, none blocks another."""
    reporter, intake = current_user(), settings().intake
    results, busy = [], None
    for item in batch["items"]:
        result = _batch_item(item, reporter, intake, busy)
        results.append(result)
        if result.get("error") == MapBusy.code:
            # One wait for the map is enough: the items after it get the same answer at once.
            busy = result
    db.session.commit()
    return {"results": results}


def _batch_item(item: object, reporter, intake, busy: dict | None) -> dict:
    """One item's answer. Whatever fails stays with its item: a phone retrying its queue must
    never be stuck behind one bad report (only a database that cannot be reached fails all)."""
    raw_id = item.get("client_id") if isinstance(item, dict) else None
    client_id = raw_id if isinstance(raw_id, str) else None
    try:
        if not isinstance(item, dict):
            raise ValidationError({"_schema": ["Each item must be a JSON object."]})
        report = load_or_raise(IncidentCreateSchema(), item)
    except ValidationError as error:
        return {
            "client_id": client_id,
            "status": 422,
            "error": message_code(error.messages),
            "errors": error.messages,
        }
    if busy is not None:
        return {**busy, "client_id": client_id}
    try:
        with db.session.begin_nested():  # a failing item rolls back alone
            result = incident_service.submit_incident(
                db.session, reporter=reporter, report=report, settings=intake
            )
    except DomainError as error:
        return {
            "client_id": client_id,
            "status": error.http_status,
            "error": error.code,
            "message": error.message,
            "errors": error.errors,
        }
    except DBAPIError as error:
        if not isinstance(error, DataError):
            raise  # the database went away: every item would fail, answer 503 for the batch
        return _unexpected_item(client_id, 422, error)
    except CONVERSION_ERRORS as error:
        return _unexpected_item(client_id, 422, error)
    except Exception as error:
        return _unexpected_item(client_id, 500, error)
    return {
        "client_id": client_id,
        "status": 201 if result.created else 200,
        "id": result.incident.id,
    }


def _unexpected_item(client_id: str | None, status: int, error: Exception) -> dict:
    # The savepoint rolled the item back; the others go on. Logged like the request-level
    # handlers in api/errors.py, with the traceback.
    log.log(
        logging.WARNING if status < 500 else logging.ERROR,
        "batch item %r answered %d",
        client_id,
        status,
        exc_info=error,
    )
    if status < 500:
        return {
            "client_id": client_id,
            "status": status,
            "error": "validation_failed",
            "message": UNCONVERTIBLE_VALUE,
        }
    return {
        "client_id": client_id,
        "status": status,
        "error": "internal_error",
        "message": "An unexpected error occurred; this item was not stored.",
    }


@blp.route("/incidents/<id64:incident_id>")
@blp.response(200, IncidentSchema)
@blp.alt_response(404, description="`incident_not_found` (also for incidents outside your scope).")
def get_incident(incident_id):
    """One incident the caller may see, with its ETag."""
    incident = get_visible_incident(db.session, user=current_user(), incident_id=incident_id)
    view = incident_service.incident_view(db.session, incident=incident)
    return incident_response(incident_answer(view, current_user()), 200)


def incident_filters(args: dict) -> incident_queries.IncidentFilters:
    """The list filters of a parsed IncidentListQuerySchema (lists and exports)."""
    return incident_queries.IncidentFilters(
        statuses=args.get("status", ()),
        categories=args.get("category", ()),
        area_code=args.get("area"),
        bbox=args.get("bbox"),
        overdue=args.get("overdue"),
        reported_from=args.get("reported_from"),
        reported_to=args.get("reported_to"),
        handling_levels=args.get("handling_level", ()),
        reporter_id=args.get("reporter"),
    )


@blp.route("/incidents")
@blp.arguments(IncidentListQuerySchema, location="query")
@blp.response(200, IncidentPageSchema)
@blp.alt_response(
    200,
    schema=GeoJSONFeatureCollectionSchema,
    content_type="application/geo+json",
    description="The page (JSON), or with `format=geojson` a FeatureCollection of points.",
    success=True,
)
def list_incidents(args):
    """Incidents in the caller's scope, newest first; filters combine; `format=geojson`."""
    limit = page_limit(args)
    filters = incident_filters(args)
    if args["sort"] == "deadline":
        page, next_cursor = _by_deadline(args, filters, limit)
    else:
        position = page_position(args, id=int)
        before = position["id"] if position else None
        page = incident_queries.list_incidents(
            db.session, user=current_user(), filters=filters, before_id=before, limit=limit
        )
        next_cursor = encode_cursor({"id": page.items[-1].id}) if page.has_more else None
    if wants_geojson(args.get("format")):
        properties = _dump_summaries(page.items)
        features = (feature(_point_json(p), p, p["id"]) for p in properties)
        return geojson_response(feature_collection(features, next_cursor=next_cursor))
    return jsonify(_dump_page({"items": page.items, "next_cursor": next_cursor}))


# A deadline in a cursor: microseconds since the epoch; this stands for "no deadline".
_NO_DEADLINE = -1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _by_deadline(args: dict, filters, limit: int):
    position = page_position(args, id=int, due=int)
    after = None
    if position:
        due = position["due"]
        if due != _NO_DEADLINE and not 0 <= due < 2**53:
            raise invalid_cursor()
        deadline = None if due == _NO_DEADLINE else _EPOCH + timedelta(microseconds=due)
        after = (deadline, position["id"])
    page = incident_queries.list_by_deadline(
        db.session, user=current_user(), filters=filters, after=after, limit=limit
    )
    if not page.has_more:
        return page, None
    last = page.items[-1]
    due = (
        _NO_DEADLINE
        if last.deadline is None
        else (last.deadline - _EPOCH) // timedelta(microseconds=1)
    )
    return page, encode_cursor({"id": last.id, "due": due})


@blp.route("/incidents/counts")
@blp.arguments(IncidentFilterQuerySchema, location="query")
@blp.response(200, StatusCountsSchema)
def count_incidents(args):
    """How many incidents in the caller's scope match the filters, per status, and overdue."""
    return incident_queries.count_by_status(
        db.session, user=current_user(), filters=incident_filters(args)
    )


def _point_json(item: dict) -> str:
    return f'{{"type":"Point","coordinates":[{item["lon"]},{item["lat"]}]}}'


@blp.route("/incidents/<id64:incident_id>/actions", methods=["POST"])
@blp.arguments(ActionSchema)
@blp.response(200, IncidentSchema)
@blp.alt_response(409, description="`invalid_transition`: not allowed from the current status.")
@blp.alt_response(412, description="`version_mismatch`: If-Match/expected_version is stale.")
@blp.alt_response(403, description="`forbidden`: your role may not do this.")
@blp.alt_response(
    422,
    description="`missing_fields`; `invalid_assignee`: not an active worker or supervisor on "
    "duty in the case's handling area (escalate first to reach people elsewhere).",
)
def act(action_request, incident_id):
    """Move a case through the loop (accept, dispatch, reassign, resolve, verify, close, …)."""
    action_request = dataclasses.replace(
        action_request, expected_version=_expected_version(incident_id, action_request)
    )
    incident = workflow.apply_action(
        db.session,
        actor=current_user(),
        incident_id=incident_id,
        request=action_request,
        calendar=settings().calendar,
    )
    db.session.commit()
    view = incident_service.incident_view(db.session, incident=incident)
    return incident_response(incident_answer(view, current_user()), 200)


def _expected_version(incident_id: int, action_request) -> int | None:
    header = request.headers.get("If-Match")
    if not header:
        return action_request.expected_version
    match = _ETAG.match(header.strip())
    if not match or int(match.group(1)) != incident_id:
        raise ValidationFailed(
            "If-Match must be the incident's ETag.",
            code="invalid_if_match",
            errors={"headers": {"If-Match": ["Not an ETag of this incident."]}},
        )
    return int(match.group(2))


@blp.route("/incidents/<id64:incident_id>/timeline")
@blp.response(200, TimelineSchema)
def get_timeline(incident_id):
    """Every event of the case, oldest first (append-only)."""
    entries = incident_queries.timeline(db.session, user=current_user(), incident_id=incident_id)
    return {"items": entries}


@blp.route("/incidents/<id64:incident_id>/duplicates")
@blp.response(200, PossibleDuplicatesSchema)
@blp.alt_response(404, description="`incident_not_found` (also for incidents outside your scope).")
def get_possible_duplicates(incident_id):
    """Open cases of the same category reported shortly before this one, close by: what a
    supervisor checks before marking it a duplicate (the same rule as at intake)."""
    viewer = current_user()
    incident = get_visible_incident(db.session, user=viewer, incident_id=incident_id)
    duplicates = incident_service.possible_duplicates(
        db.session, incident=incident, viewer=viewer, settings=settings().intake
    )
    return {"items": duplicates}


@blp.route("/me/tasks")
@blp.response(200, TasksSchema)
def my_tasks():
    """The caller's open work: what they hold (workers) or must move on (supervisors)."""
    rows = incident_queries.tasks(db.session, user=current_user())
    return jsonify(_dump_tasks({"items": rows}))
