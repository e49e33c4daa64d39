"""What every HTTP answer respects: request body limits, security headers and CORS.

Body limits, per kind of endpoint (a larger body is answered 413 `payload_too_large` before
it is read):

| kind | endpoints | setting (default) |
|---|---|---|
| boundary change sets | POST /api/v1/boundaries/changes | GRIDGOV_MAX_CHANGESET_BYTES (64 MiB) |
| photo uploads | POST /api/v1/photos | PHOTO_MAX_BYTES + 64 KiB of multipart framing |
| everything else (JSON, forms) | | GRIDGOV_MAX_JSON_BYTES (1 MiB) |

MAX_CONTENT_LENGTH (GRIDGOV_MAX_CONTENT_LENGTH, 64 MiB) stays the ceiling over all of them: a
kind's limit above it is cut down to it. (Flask 3.1 reads `request.max_content_length` per
request; werkzeug refuses a larger Content-Length before reading anything. A chunked body,
which has no Content-Length, is read here up to the limit and refused when it reaches it,
since werkzeug would silently cut it short.)

Headers: `X-Content-Type-Options: nosniff` on every response; on HTML responses also
`X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` and a restrictive
Content-Security-Policy unless the page set its own (the map page and the docs page do).
Responses of the endpoints that carry personal data (/api/v1/me…, /api/v1/auth/…,
/api/v1/users…) get `Cache-Control: no-store`.

CORS (flask-cors): only origins listed in GRIDGOV_CORS_ORIGINS (comma separated) may read
the API, the tiles and Open311 from a browser on another origin; empty (the default) means no
cross-origin access at all. Tokens travel in the Authorization header, never in cookies, so
credentials are not allowed.
"""

from flask import Flask, Response, request
from flask_cors import CORS
from werkzeug.exceptions import RequestEntityTooLarge

from gridgov.settings import settings

MIB = 1024 * 1024
# Room for the multipart boundary lines and part headers around a photo's bytes.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
CHANGESET_ENDPOINTS = frozenset({"boundaries.post_changes"})
PHOTO_UPLOAD_ENDPOINTS = frozenset({"photos.upload_photo"})
BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff"}
HTML_SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # For HTML pages that bring no policy of their own: own-origin files only, no inline code,
    # no framing.
    "Content-Security-Policy": (
        "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"
        " frame-ancestors 'none'"
    ),
}
# Path prefixes whose answers carry personal data: never stored by a browser or proxy cache.
NO_STORE_PREFIXES = ("/api/v1/me", "/api/v1/auth/", "/api/v1/users")

CORS_RESOURCES = r"/(api|tiles|open311)/.*"
CORS_METHODS = ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"]
CORS_ALLOW_HEADERS = ["Authorization", "Content-Type", "If-Match", "X-Request-ID"]
CORS_EXPOSE_HEADERS = ["ETag", "X-Request-ID"]
CORS_MAX_AGE_SECONDS = 600


def register_body_limits(app: Flask) -> None:
    """Set each request's body limit before any other hook runs (call it first).

    Any before_request hook may read the body (the input guards do); werkzeug applies the
    limit in force when the body is first read, so it must be set before all of them.
    """
    app.before_request(_set_body_limit)


def register_http_policy(app: Flask) -> None:
    """Refuse oversized chunked bodies, add the security headers and (if configured) CORS."""
    # After the token gate: a body without Content-Length is only read for callers it let in.
    app.before_request(_refuse_oversized_stream)
    app.after_request(_security_headers)
    origins = list(settings(app).cors_origins)
    if origins:
        CORS(
            app,
            resources={CORS_RESOURCES: {}},
            origins=origins,
            methods=CORS_METHODS,
            allow_headers=CORS_ALLOW_HEADERS,
            expose_headers=CORS_EXPOSE_HEADERS,
            supports_credentials=False,
            max_age=CORS_MAX_AGE_SECONDS,
            vary_header=True,
        )


def body_limit(endpoint: str | None) -> int:
    """The largest request body `endpoint` accepts, capped by MAX_CONTENT_LENGTH."""
    bodies = settings().bodies
    if endpoint in CHANGESET_ENDPOINTS:
        limit = bodies.changeset
    elif endpoint in PHOTO_UPLOAD_ENDPOINTS:
        limit = bodies.photo + MULTIPART_OVERHEAD_BYTES
    else:
        limit = bodies.json
    return limit if bodies.ceiling is None else min(limit, bodies.ceiling)


def _set_body_limit() -> None:
    request.max_content_length = body_limit(request.endpoint)


def _refuse_oversized_stream() -> None:
    # A body without Content-Length (chunked): werkzeug stops reading it at the limit instead
    # of refusing it, and the cut body would fail as invalid JSON. It is read here (at most
    # the limit) and refused when it reaches the limit.
    limit = request.max_content_length
    if limit is not None and _streamed_body() and len(request.get_data(cache=True)) >= limit:
        raise RequestEntityTooLarge()


def _streamed_body() -> bool:
    return bool(
        request.content_length is None
        and request.method not in BODYLESS_METHODS
        and request.environ.get("wsgi.input_terminated")
    )


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.mimetype == "text/html":
        for name, value in HTML_SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    if request.path.startswith(NO_STORE_PREFIXES):
        response.headers["Cache-Control"] = "no-store"
    return response
