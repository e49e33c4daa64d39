"""Log records as one JSON object per line (or plain text), request ids and the access log.

Format: `GRIDGOV_LOG_FORMAT=json|text` (default json in production, text in development and
test), level `GRIDGOV_LOG_LEVEL` (default INFO). Every record written while a request is
handled carries that request's id, so an error line and its access line can be joined.

The request id is the caller's `X-Request-ID` when it is sane (1-64 characters of
``[A-Za-z0-9._-]``: a proxy's or a phone's own id), else a fresh uuid4 hex. It is kept on
``flask.g.request_id``, echoed in the `X-Request-ID` header of every response (errors
included) and, for 5xx answers, in the error envelope's ``details.request_id``.

The access log (logger ``gridgov.access``) has one line per request, written when the response
is ready: method, path (never the query string, which may carry keys), status, duration,
user id (when a token was verified) and the peer address. Health and readiness probes are
logged at DEBUG only, so a probe every few seconds does not drown the log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, has_request_context, request

LOG_FORMATS = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Request fields a record may carry (passed with `extra=`), in the order they are written.
REQUEST_FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "duration_ms",
    "user_id",
    "remote_addr",
)
# Paths polled by load balancers and orchestrators: their access lines are DEBUG.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})

access_log = logging.getLogger("gridgov.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the request fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as a single line of JSON (newlines inside values are escaped)."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in REQUEST_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if "request_id" not in entry:
            request_id = current_request_id()
            if request_id:
                entry["request_id"] = request_id
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line (time level logger: message), with the request id when there is one."""

    def __init__(self) -> None:
        """Use TEXT_FORMAT."""
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as text, suffixed with [request id] inside a request."""
        line = super().format(record)
        request_id = getattr(record, "request_id", None) or current_request_id()
        return f"{line} [{request_id}]" if request_id else line


def make_formatter(log_format: str) -> logging.Formatter:
    """The formatter for `json` or `text`."""
    if log_format not in LOG_FORMATS:
        raise RuntimeError(f"GRIDGOV_LOG_FORMAT must be json or text, not {log_format!r}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def default_log_format(env_name: str) -> str:
    """GRIDGOV_LOG_FORMAT, else json in production and text elsewhere."""
    return os.environ.get("GRIDGOV_LOG_FORMAT") or ("json" if env_name == "production" else "text")


def configure_logging(log_format: str, level: str | int = "INFO") -> None:
    """Give the root logger one stderr handler with the chosen format (idempotent).

    A root logger that already has handlers of someone else (pytest's capture, a logging
    config of the deployment) is left alone: they decide where records go.
    """
    formatter = make_formatter(log_format)
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_gridgov", False)]
    if ours:
        for handler in ours:
            handler.setFormatter(formatter)
    elif not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler._gridgov = True  # type: ignore[attr-defined]
        handler.setFormatter(formatter)
        root.addHandler(handler)
        # Python warnings become records too, so they keep the one-object-per-line format.
        logging.captureWarnings(True)
    else:
        return
    root.setLevel(level)


def current_request_id() -> str | None:
    """The id of the request being handled, or None outside a request."""
    if not has_request_context():
        return None
    return g.get("request_id")


def accept_request_id(value: str | None) -> str:
    """`value` when it is a sane request id (1-64 of [A-Za-z0-9._-]), else a new uuid4 hex."""
    if value and _REQUEST_ID_RE.match(value):
        return value
    return uuid.uuid4().hex


def _start_request() -> None:
    g.request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
    g.request_started = time.perf_counter()


def _user_id() -> str | None:
    # The identity of a token the gate verified; nothing when no token was checked.
    from flask_jwt_extended import get_jwt_identity

    try:
        identity = get_jwt_identity()
    except RuntimeError:
        return None
    return str(identity) if identity is not None else None


def _finish_request(response: Response) -> Response:
    request_id = g.get("request_id") or accept_request_id(None)
    response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 1) if started else None
    status = response.status_code
    if request.path in PROBE_PATHS:
        level = logging.DEBUG
    else:
        level = logging.WARNING if status >= 500 else logging.INFO
    if access_log.isEnabledFor(level):
        access_log.log(
            level,
            "%s %s %s %sms",
            request.method,
            request.path,
            status,
            duration_ms,
            extra={
                "request_id": request_id,
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration_ms": duration_ms,
                "user_id": _user_id(),
                "remote_addr": request.remote_addr,
            },
        )
    return response


def register_request_logging(app: Flask) -> None:
    """Request ids and the access log on `app` (call before other before_request hooks)."""
    # before_request hooks run in registration order, so the id exists before the token gate
    # or anything else can answer; after_request hooks run in reverse order, so this one runs
    # last and sees the final status and headers.
    app.before_request(_start_request)
    app.after_request(_finish_request)
