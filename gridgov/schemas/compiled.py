"""Schemas compiled into plain functions, for answers too large for marshmallow's pace.

`compile_dump(schema)` reads the schema's fields once and returns a function that returns
exactly what `schema.dump(obj)` returns (same keys, same order, same values), at a fifth to a
third of the cost: a 500-item incident page spent more time in `dump` than in its query. The schema
stays the one description of the answer; the compiled function is derived from it, never
written by hand. Only the field kinds the answers use are compiled; anything else (hooks,
Method fields, custom formats, dump defaults) is refused when compiling, so a schema change
the compiler does not understand fails at import rather than answering differently.
tests/api/test_compiled_dump.py compares both on real and on awkward objects.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from marshmallow import Schema, fields, missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from marshmallow.utils import ensure_text_type, get_value

from gridgov.schemas.common import Inline

Dump = Callable[[Any], Any]
_ISO = (None, "iso", "iso8601")


def compile_dump(schema: Schema) -> Dump:
    """A function returning exactly `schema.dump(obj)`."""
    one = _compile_schema(schema)
    if not schema.many:
        return one
    return lambda objs: one(objs) if objs is None else [one(obj) for obj in objs]


def _compile_schema(schema: Schema) -> Dump:
    if schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP]:
        raise TypeError(f"{type(schema).__name__}: dump hooks are not compiled")
    if type(schema).get_attribute is not Schema.get_attribute:
        raise TypeError(f"{type(schema).__name__}: a custom get_attribute is not compiled")
    plan = [
        (
            field.data_key if field.data_key is not None else name,
            _getter(field, name),
            _converter(field),
        )
        for name, field in schema.dump_fields.items()
    ]

    def dump(obj: Any) -> dict:
        result = {}
        for key, get, convert in plan:
            value = get(obj)
            if value is missing:
                continue
            result[key] = value if value is None or convert is None else convert(value)
        return result

    return dump


def _getter(field: fields.Field, name: str) -> Callable[[Any], Any]:
    if field.dump_default is not missing:
        raise TypeError(f"{name}: dump defaults are not compiled")
    if type(field) is Inline:
        return lambda obj: obj
    path = field.attribute if field.attribute is not None else name
    if "." in path:
        return lambda obj: get_value(obj, path)

    def get(obj: Any) -> Any:
        # marshmallow.utils.get_value for one key, inlined: the key, else the attribute.
        if not hasattr(obj, "__getitem__"):
            return getattr(obj, path, missing)
        try:
            return obj[path]
        except (KeyError, IndexError, TypeError, AttributeError):
            return getattr(obj, path, missing)

    return get


def _converter(field: fields.Field) -> Callable[[Any], Any] | None:
    """The field's _serialize for a value that is neither missing nor None (None: as is)."""
    kind = type(field)
    if kind is fields.String:
        return ensure_text_type
    if kind in (fields.Integer, fields.Float) and not field.as_string:
        return field.num_type
    if kind in (fields.Boolean, fields.Raw):
        return None  # the value as it is
    if kind is fields.DateTime and field.format in _ISO:
        return datetime.isoformat
    if kind is fields.Dict and field.key_field is None and field.value_field is None:
        return field.mapping_type
    if kind is fields.List:
        inner = _converter(field.inner)
        if inner is None:
            return list
        return lambda values: [None if v is None else inner(v) for v in values]
    if kind in (fields.Nested, Inline):
        nested = _compile_schema(field.schema)
        if field.schema.many or field.many:
            return lambda objs: [nested(obj) for obj in objs]
        return nested
    raise TypeError(f"{kind.__name__} fields are not compiled")
