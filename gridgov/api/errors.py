"""The JSON error envelope for every error the service answers with (DESIGN.md §4).

{"code": 422, "status": "Unprocessable Entity", "error": "validation_failed",
 "message": "…", "errors": {…field errors…}, "details": {…}}
"""

import logging
import re
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

from flask import Flask, g, has_request_context, jsonify
from flask_limiter.errors import RateLimitExceeded
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from gridgov.api.input import CONVERSION_ERRORS, UNCONVERTIBLE_VALUE
from gridgov.errors import DomainError
from gridgov.extensions import limiter

log = logging.getLogger(__name__)

# Stable codes for errors that come from the framework rather than from a service.
DEFAULT_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    428: "precondition_required",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}
DB_RETRY_AFTER_SECONDS = 5
# A field message written as "<code>: <text>" names a stable code of its own (for example
# swapped_coordinates); the envelope's `error` then carries it instead of validation_failed.
_CODED_MESSAGE = re.compile(r"^([a-z][a-z0-9_]+): ")


def error_response(
    status: int,
    *,
    error: str | None = None,
    message: str | None = None,
    errors: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
):
    """Build the envelope response for an HTTP status."""
    phrase = HTTPStatus(status).phrase
    if status >= 500 and has_request_context() and g.get("request_id"):
        # The id a caller quotes when reporting the failure; the logs carry the same id.
        details = {**(details or {}), "request_id": g.request_id}
    body = {
        "code": status,
        "status": phrase,
        "error": error or DEFAULT_ERROR_CODES.get(status, "error"),
        "message": message or phrase,
        "errors": errors or {},
        "details": details or {},
    }
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle_http_exception(exc: HTTPException):
    """Werkzeug/flask-smorest HTTP errors, including webargs validation (422)."""
    data = getattr(exc, "data", None) or {}
    status = exc.code or 500
    errors = data.get("messages") or data.get("errors")
    message = data.get("message") or exc.description
    error = data.get("error")
    if status == 422 and errors:
        message = "The request did not validate."
        error = error or next(message_codes(errors), None)
    headers = dict(data.get("headers") or {})
    if status == 405 and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    if isinstance(exc, RateLimitExceeded):
        headers["Retry-After"] = str(retry_after_seconds())
    return error_response(
        status,
        error=error,
        message=message,
        errors=errors,
        details=data.get("details"),
        headers=headers,
    )


def retry_after_seconds() -> int:
    """Seconds until the rate limit just exceeded lets the caller in again."""
    # flask-limiter's own headers are off: it would put its window's Retry-After on every
    # answer of a limited route, a 503 included. Only a 429 carries it, computed here.
    limit = limiter.current_limit
    return max(1, int(limit.reset_at - time.time())) if limit else 60


def message_code(messages: object, default: str = "validation_failed") -> str:
    """The first "<code>: text" code in marshmallow's messages, else `default`."""
    return next(message_codes(messages), default)


def message_codes(messages: object) -> Iterator[str]:
    """Codes of "<code>: text" messages anywhere in marshmallow's nested error messages."""
    if isinstance(messages, str):
        match = _CODED_MESSAGE.match(messages)
        if match:
            yield match.group(1)
    elif isinstance(messages, dict):
        for value in messages.values():
            yield from message_codes(value)
    elif isinstance(messages, list):
        for value in messages:
            yield from message_codes(value)


def handle_domain_error(exc: DomainError):
    """Errors raised on purpose by services."""
    return error_response(
        exc.http_status,
        error=exc.code,
        message=exc.message,
        errors=exc.errors,
        details=exc.details,
        headers={"Retry-After": str(exc.retry_after)} if exc.retry_after else None,
    )


def handle_unconvertible_value(exc: Exception):
    """A value that got past the schemas and could not be converted: 422, and a log line with
    the traceback, which shows the schema that should have bounded it (gridgov/api/input.py)."""
    log.warning("unconvertible input answered 422", exc_info=exc)
    return error_response(422, message=UNCONVERTIBLE_VALUE)


def handle_database_unavailable(exc: DBAPIError):
    """The database is unreachable (restart, failover): ask the client to retry."""
    if isinstance(exc, DataError):  # a value the column cannot hold: the input's fault
        return handle_unconvertible_value(exc)
    if not (isinstance(exc, OperationalError) or exc.connection_invalidated):
        return handle_unexpected(exc)
    log.warning("database unavailable: %s", exc.orig.__class__.__name__ if exc.orig else exc)
    return error_response(
        503,
        error="database_unavailable",
        message="The database is not reachable; retry shortly.",
        details={"retry_after": DB_RETRY_AFTER_SECONDS},
        headers={"Retry-After": str(DB_RETRY_AFTER_SECONDS)},
    )


def handle_unexpected(exc: Exception):
    """Anything else: log it with its traceback, answer without one."""
    log.exception("unhandled error")
    return error_response(500, message="An unexpected error occurred.")


def register_error_handlers(app: Flask) -> None:
    """Route every error through the envelope (called after flask-smorest's own handlers)."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(DBAPIError, handle_database_unavailable)
    for error_class in CONVERSION_ERRORS:
        app.register_error_handler(error_class, handle_unconvertible_value)
    app.register_error_handler(Exception, handle_unexpected)
