"""Input PostgreSQL cannot hold, refused at the edge: NUL characters in text.

PostgreSQL text and jsonb cannot contain U+0000, and the driver refuses to send it, so a NUL in
any string that reaches a query was a 500. Checked once for every routed request, whatever the
endpoint: path parameters (404: no such thing can exist), query and form values and every key
and string of a JSON body (422 `validation_failed`, naming the field). The HTTP errors raised
here go through the handler of the request's blueprint (the envelope for /api/v1, the spec's
error list for Open311). Uploaded files are bytes and are not looked at.
"""

from collections.abc import Iterator
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import NotFound, UnprocessableEntity

NUL = "\x00"
JSON_NUL = b"\\u0000"
MESSAGE = "Text must not contain NUL (U+0000) characters."
# The bodies werkzeug turns into request.form.
FORM_MIMETYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def register_input_guards(app: Flask) -> None:
    """Check every routed request's input before its view runs."""
    app.before_request(reject_nul_characters)


def reject_nul_characters() -> None:
    if request.url_rule is None:
        return  # unknown URL: the 404 comes from routing
    if any(isinstance(v, str) and NUL in v for v in (request.view_args or {}).values()):
        raise NotFound()
    errors: dict[str, dict[str, list[str]]] = {}
    locations = [("query", request.args)]
    if request.mimetype in FORM_MIMETYPES:  # request.form would parse any other body for nothing
        locations.append(("form", request.form))
    for location, values in locations:
        for name in values:
            if any(NUL in value for value in values.getlist(name)):
                errors.setdefault(location, {})[name] = [MESSAGE]
    # Valid JSON carries a NUL only as the escape \u0000: parse (again) only when it is there.
    if request.is_json and JSON_NUL in request.get_data(cache=True):
        body = request.get_json(silent=True)
        for field in _nul_fields(body, "$"):
            errors.setdefault("json", {})[field] = [MESSAGE]
    if errors:
        names = ", ".join(name for fields in errors.values() for name in fields)
        # The description (used by handlers that show no field errors) names the fields too.
        error = UnprocessableEntity(f"{MESSAGE} ({names})")
        error.data = {"message": MESSAGE, "errors": errors}
        raise error


def _nul_fields(value: Any, path: str) -> Iterator[str]:
    """JSONPath-like names of the strings (and object keys) in `value` that hold a NUL."""
    stack = [(value, path)]
    while stack:  # iterative: a deeply nested body must not exhaust the recursion limit
        value, path = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                yield path
        elif isinstance(value, dict):
            for key, item in value.items():
                if NUL in key:
                    yield path
                stack.append((item, f"{path}.{key}"))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]") for index, item in enumerate(value))
