"""The JSON error envelope (DESIGN.md §4) as documented in the OpenAPI document.

Documentation only: gridgov.api.errors builds the bodies. Every error response of /api/v1
(the `default` response of each operation and each documented 4xx/5xx) refers to this schema
as the `Error` component.
"""

from marshmallow import Schema, fields


class ErrorSchema(Schema):
    code = fields.Integer(required=True, metadata={"description": "The HTTP status code."})
    status = fields.String(required=True, metadata={"description": "The HTTP status phrase."})
    error = fields.String(
        required=True,
        metadata={
            "description": "Stable snake_case code to branch on (`validation_failed`, "
            "`area_not_found`, `token_expired`, …)."
        },
    )
    message = fields.String(required=True, metadata={"description": "For people; may change."})
    errors = fields.Dict(
        required=True,
        metadata={
            "description": "Field errors by location and field, e.g. "
            '`{"query": {"bbox": ["…"]}}`; empty when none.'
        },
    )
    details = fields.Dict(
        required=True,
        metadata={"description": "More about the error (ids, limits, retry_after); may be empty."},
    )
