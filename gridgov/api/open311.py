"""Open311 GeoReport v2 under /open311/v2/: discovery, services, requests (JSON and XML).

What is published and how requests become cases is decided in
gridgov/services/open311_requests.py (module docstring): public reads show only requests made
through Open311, and only their non-personal fields; posted requests are cases like any phone
report. The spec's documents are rendered by gridgov/api/open311_render.py.

Every answer under /open311 is in the spec's own form, errors included: a list of
{"code", "description"} (XML: <errors><error>…) with the HTTP status the spec asks for (400 bad
or missing parameters, 403 api_key, 404 unknown service/request/URL, 503 with Retry-After
while the map is being changed or the database is away), never the /api/v1 error
envelope. Blueprint error handlers cover errors raised in these views; a before-request hook
covers what fails before a view is chosen (unknown URL 404, wrong method 405).
"""

import json
import logging
from datetime import UTC, datetime

from flask import Blueprint, Response, request
from marshmallow import ValidationError
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from gridgov.api import open311_render as render
from gridgov.api.errors import retry_after_seconds
from gridgov.api.input import CONVERSION_ERRORS, UNCONVERTIBLE_VALUE
from gridgov.errors import DomainError
from gridgov.extensions import db, limiter
from gridgov.schemas.open311 import ServiceRequestFormSchema, ServiceRequestsQuerySchema
from gridgov.services import open311_clients
from gridgov.services import open311_requests as requests_service
from gridgov.settings import settings

log = logging.getLogger(__name__)

PREFIX = "/open311/v2"
FMT = "<any(json, xml):fmt>"
CONTENT_TYPES = {
    "json": "application/json; charset=utf-8",
    "xml": "text/xml; charset=utf-8",
}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
DB_RETRY_AFTER_SECONDS = 5

blp = Blueprint("open311", __name__, url_prefix=PREFIX)
# Reads need no key, so they are limited per client address (OPEN311_READ_RATE_LIMIT), all
# read endpoints together; an over-eager client gets 429 with Retry-After.
public_read_limit = limiter.shared_limit(
    lambda: settings().rate_limits.open311_read, scope="open311-read"
)


def _tz():
    return settings().time_zone


def document_response(fmt: str, root: str, document: object, status: int = 200) -> Response:
    """A spec document as JSON or as XML under `root` (the spec's root element)."""
    if fmt == "xml":
        body = render.xml_document(root, document)
    else:
        body = json.dumps(document, ensure_ascii=False).encode()
    return Response(body, status=status, content_type=CONTENT_TYPES[fmt])


def error_response(status: int, *descriptions: str, headers: dict | None = None) -> Response:
    """The spec's error list with the HTTP status, in the format the URL asked for."""
    document = render.errors_document((status, d) for d in descriptions)
    response = document_response(_error_format(), "errors", document, status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _error_format() -> str:
    fmt = (request.view_args or {}).get("fmt")
    if fmt in CONTENT_TYPES:
        return fmt
    path = request.path.lower()
    if path.endswith(".json"):
        return "json"
    if path.endswith(".xml"):
        return "xml"
    best = request.accept_mimetypes.best_match(["text/xml", "application/json"])
    return "json" if best == "application/json" else "xml"  # XML is the spec's required format


# --------------------------------------------------------------------------- endpoints


@blp.get(f"/discovery.{FMT}")
@public_read_limit
def discovery(fmt):
    """Service Discovery: where the GeoReport v2 endpoint is and what it speaks."""
    config = settings()
    document = render.discovery_document(
        url=request.host_url.rstrip("/") + PREFIX,
        changeset=requests_service.services_changeset(db.session),
        contact=config.open311.contact,
        key_service=config.open311.key_service,
        kind="production" if config.env_name == "production" else "test",
    )
    return document_response(fmt, "discovery", document)


@blp.get(f"/services.{FMT}")
@public_read_limit
def services(fmt):
    """GET Service List: the active categories."""
    documents = [render.service_document(s) for s in requests_service.list_services(db.session)]
    return document_response(fmt, "services", documents)


@blp.get(f"/services/<service_code>.{FMT}")
@public_read_limit
def service_definition(service_code, fmt):
    """GET Service Definition: a service's attributes."""
    service = requests_service.get_service(db.session, code=service_code)
    return document_response(fmt, "service_definition", render.service_definition(service))


@blp.post(f"/requests.{FMT}")
def create_request(fmt):
    """POST Service Request (form-encoded, api_key): a new case, or the same one on a re-post."""
    if request.mimetype not in FORM_TYPES:
        return error_response(
            400, "Send the request as application/x-www-form-urlencoded (GeoReport v2)."
        )
    form = request.form
    api_key = form.get("api_key") or request.args.get("api_key")
    client, reporter = open311_clients.authenticate_client(db.session, api_key=api_key)
    try:
        submission = ServiceRequestFormSchema().load(form.to_dict(flat=False))
    except ValidationError as error:
        return error_response(400, *_descriptions(error.messages))
    result = requests_service.submit_request(
        db.session,
        client=client,
        reporter=reporter,
        submission=submission,
        settings=settings().intake,
        now=datetime.now(UTC),
    )
    db.session.commit()
    view = requests_service.get_request(db.session, request_id=result.incident.id)
    document = [render.post_response(view, account_id=submission.account_id)]
    return document_response(fmt, "service_requests", document, 201 if result.created else 200)


@blp.get(f"/requests.{FMT}")
@public_read_limit
def list_requests(fmt):
    """GET Service Requests: public requests by the spec's filters (90 days, 1000 at most)."""
    try:
        query = ServiceRequestsQuerySchema().load(request.args.to_dict())
    except ValidationError as error:
        return error_response(400, *_descriptions(error.messages))
    tz = _tz()
    views = requests_service.list_requests(db.session, query=query, now=datetime.now(UTC), tz=tz)
    documents = [render.request_document(v, tz) for v in views]
    return document_response(fmt, "service_requests", documents)


@blp.get(f"/requests/<request_id>.{FMT}")
@public_read_limit
def get_request(request_id, fmt):
    """GET Service Request: one public request."""
    if not request_id.isascii() or not request_id.isdigit() or len(request_id) > 18:
        return error_response(404, f"service_request_id {request_id!r} was not found.")
    view = requests_service.get_request(db.session, request_id=int(request_id))
    return document_response(fmt, "service_requests", [render.request_document(view, _tz())])


def _descriptions(messages: object, field: str | None = None) -> list[str]:
    """marshmallow's nested messages as "field: message" lines."""
    if isinstance(messages, dict):
        return [
            line
            for key, value in messages.items()
            for line in _descriptions(value, field if key == "_schema" else field or str(key))
        ]
    if isinstance(messages, list):
        return [line for value in messages for line in _descriptions(value, field)]
    text = str(messages)
    return [text if not field or text.startswith(field) else f"{field}: {text}"]


# --------------------------------------------------------------------------- errors


@blp.errorhandler(DomainError)
def _domain_error(error: DomainError):
    status = error.http_status
    if status in (401, 403):
        status = 403  # spec: 403 for a missing or invalid api_key
    elif status not in (404, 413, 503):
        status = 400  # spec: 400 for anything else the request got wrong (422, 409, …)
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
    return error_response(status, error.message, headers=headers)


@blp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    status = error.code or 500
    if status == 422:
        status = 400
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    if status == 429:
        headers["Retry-After"] = str(retry_after_seconds())
    return error_response(status, error.description or "Error.", headers=headers)


def _unconvertible(error: Exception):
    # As gridgov/api/errors.py does for the API, in the spec's form: the request's fault.
    log.warning("open311: unconvertible input answered 400", exc_info=error)
    return error_response(400, UNCONVERTIBLE_VALUE)


for _error_class in CONVERSION_ERRORS:
    blp.register_error_handler(_error_class, _unconvertible)


@blp.errorhandler(DBAPIError)
def _database_error(error: DBAPIError):
    if isinstance(error, DataError):
        return _unconvertible(error)
    if not (isinstance(error, OperationalError) or error.connection_invalidated):
        return _unexpected(error)
    log.warning("open311: database unavailable: %s", type(error.orig or error).__name__)
    return error_response(
        503,
        "The service is temporarily unavailable; retry shortly.",
        headers={"Retry-After": str(DB_RETRY_AFTER_SECONDS)},
    )


@blp.errorhandler(Exception)
def _unexpected(error: Exception):
    log.exception("open311: unhandled error")
    return error_response(500, "An unexpected error occurred; the request was not completed.")


@blp.before_app_request
def _routing_errors():
    """Unknown URLs and wrong methods under /open311 answer in the spec's form too."""
    error = request.routing_exception
    if error is None or not (request.path == "/open311" or request.path.startswith("/open311/")):
        return None
    if isinstance(error, HTTPException) and (error.code or 500) >= 400:
        return _http_error(error)
    return None  # a redirect (RequestRedirect, 308) is Flask's to answer
