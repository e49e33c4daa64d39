"""Reading request input: the one place where a value that cannot be parsed or converted
becomes the 422 envelope instead of a 500.

Marshmallow turns the failures it expects into field messages. What neither it nor the JSON
decoder expects used to escape as a 500: RecursionError from JSON nested thousands deep,
ValueError from an integer of thousands of digits (Python refuses more than 4,300), an
OverflowError from a date at the edge of the calendar, a ValueError from a library converting a
value. They are caught in three places, all built on CONVERSION_ERRORS below:

- `decode_json` decodes every JSON body: Flask's request.get_json (GridgovJSONProvider) and
  flask-smorest's argument parsing (GridgovParser) alike. Syntax errors stay 400 `bad_request`;
  a body that is valid JSON but cannot be held is 422.
- GridgovParser runs every `@blp.arguments` load; a conversion error raised while a schema loads
  (a field, a validator, a post_load) is a 422 naming the location, like a field error.
- A conversion error raised later, while the view runs, is answered 422 by the app's error
  handler (gridgov/api/errors.py) and logged with its traceback: it names a value a schema
  should have bounded.
"""

import json
import logging
from typing import Any

from flask import Request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import Schema, ValidationError
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import UnprocessableEntity

log = logging.getLogger(__name__)

# What converting an input value can raise besides marshmallow's ValidationError. (UnicodeError
# and json.JSONDecodeError are ValueErrors too.)
CONVERSION_ERRORS = (ValueError, ArithmeticError, RecursionError)
UNPROCESSABLE_JSON = "The JSON body is nested too deeply or holds a number too long to process."
UNCONVERTIBLE_VALUE = "A value is out of range or cannot be converted."


class UnprocessableJSON(ValueError):
    """Valid JSON that cannot be decoded into Python values (depth, number length)."""


def decode_json(text: str | bytes, **kwargs: Any) -> Any:
    """json.loads, with UnprocessableJSON for valid JSON too deep or too long to hold."""
    try:
        return json.loads(text, **kwargs)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise  # malformed: the callers' 400
    except (RecursionError, ValueError) as error:
        raise UnprocessableJSON(UNPROCESSABLE_JSON) from error


def unprocessable(location: str, message: str) -> UnprocessableEntity:
    """A 422 that the envelope shows like a field error at `location`."""
    error = UnprocessableEntity(message)
    error.data = {"message": message, "messages": {location: [message]}}
    return error


class GridgovJSONProvider(DefaultJSONProvider):
    """Flask's JSON, decoding bodies with `decode_json`."""

    # Chinese names stay readable in responses; keys keep the order the schemas give them.
    ensure_ascii = False
    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Decode JSON text (request.get_json, flask.json.loads)."""
        return decode_json(s, **kwargs)


class GridgovRequest(Request):
    """A request whose get_json answers 422 for JSON that decodes to nothing holdable."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        """400 for malformed JSON (Flask's), 422 for UnprocessableJSON."""
        if isinstance(e, UnprocessableJSON):
            raise unprocessable("json", str(e))
        return super().on_json_loading_failed(e)


class GridgovParser(FlaskParser):
    """webargs' Flask parser with conversion errors as 422 rather than 500."""

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        if not data:
            return core.missing
        try:
            return decode_json(data)
        except UnprocessableJSON as error:
            raise unprocessable("json", str(error)) from error

    def parse(self, argmap, req=None, *, location=None, **kwargs):
        """Parse like webargs; a conversion error in the schema is a 422 at its location."""
        try:
            return super().parse(argmap, req, location=location, **kwargs)
        except CONVERSION_ERRORS as error:
            where = location or self.location
            log.info("unconvertible %s input: %s", where, type(error).__name__)
            abort(422, messages={where: [UNCONVERTIBLE_VALUE]}, exc=error)


def load_or_raise(schema: Schema, data: Any) -> Any:
    """schema.load(data); a conversion error becomes a ValidationError like a field's."""
    try:
        return schema.load(data)
    except CONVERSION_ERRORS as error:
        raise ValidationError({"_schema": [UNCONVERTIBLE_VALUE]}) from error


class Blueprint(SmorestBlueprint):
    """flask-smorest's Blueprint parsing its arguments with GridgovParser (every API module
    uses this one; tests/api/test_input.py checks that none is left on the plain class)."""

    ARGUMENTS_PARSER = GridgovParser()
