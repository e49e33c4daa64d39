"""URL converters for ids: `<id32:user_id>` (integer keys), `<id64:incident_id>` (bigint keys).

Digits only, like werkzeug's `int`. A number larger than the column can hold is no id at all:
the answer is 404, as for any unknown URL, instead of a database "out of range" error. The
404 is raised here rather than by failing the match (werkzeug's ValidationError): a failed
match on /users/<id> would be reported as 405 when another method's rule shares the path.
"""

from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from gridgov.schemas.common import INT32_MAX, INT64_MAX


class _IdConverter(IntegerConverter):
    """A non-negative id up to `max_id` (documented as the parameter's maximum)."""

    max_id: int

    def __init__(self, map, *args, **kwargs):
        super().__init__(map, *args, max=self.max_id, **kwargs)

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > self.max_id:
            raise NotFound()
        return number


class Id32Converter(_IdConverter):
    max_id = INT32_MAX


class Id64Converter(_IdConverter):
    max_id = INT64_MAX


CONVERTERS = {"id32": Id32Converter, "id64": Id64Converter}
