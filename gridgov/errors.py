"""Domain errors: raised by services, turned into the JSON error envelope at the HTTP edge.

Each error has a stable snake_case `code` (what a phone app branches on) and an HTTP status;
one worth retrying soon also names `retry_after` (seconds, sent as the Retry-After header).
"""

from typing import Any


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    code = "domain_error"
    http_status = 400
    retry_after: int | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        errors: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}
        self.errors = errors or {}


class NotFound(DomainError):
    """The thing asked for does not exist (or is outside the caller's scope)."""

    code = "not_found"
    http_status = 404


class AreaNotFound(NotFound):
    """No area with that code."""

    code = "area_not_found"


class CategoryNotFound(NotFound):
    """No category with that code."""

    code = "category_not_found"


class ValidationFailed(DomainError):
    """Input that parsed but makes no sense for the domain."""

    code = "validation_failed"
    http_status = 422


class Conflict(DomainError):
    """The request conflicts with the current state."""

    code = "conflict"
    http_status = 409


class Forbidden(DomainError):
    """The caller may not do this."""

    code = "forbidden"
    http_status = 403


class Unauthorized(DomainError):
    """Missing or bad credentials."""

    code = "unauthorized"
    http_status = 401


class PreconditionFailed(DomainError):
    """A conditional request (If-Match, expected_version) no longer holds."""

    code = "precondition_failed"
    http_status = 412


class PayloadTooLarge(DomainError):
    """The request body or an upload exceeds a limit."""

    code = "payload_too_large"
    http_status = 413


class UnsupportedMediaType(DomainError):
    """The content is of a type this endpoint does not take."""

    code = "unsupported_media_type"
    http_status = 415


class MapBusy(DomainError):
    """A boundary change holds the map longer than intake may wait: retry shortly."""

    code = "map_busy"
    http_status = 503
    retry_after = 5


class BoundaryEditRefused(ValidationFailed):
    """A boundary editing operation that cannot be carried out as asked (the code names why)."""

    code = "edit_refused"


class ChangesetNotFound(NotFound):
    """No boundary change set with that id."""

    code = "changeset_not_found"
