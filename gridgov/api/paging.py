"""Opaque cursors for keyset pagination: base64url of a small JSON object."""

import base64
import binascii
import json
from typing import Any

from gridgov.errors import ValidationFailed
from gridgov.settings import settings


def encode_cursor(position: dict[str, Any]) -> str:
    """Encode the sort key of the last row returned."""
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, fields: dict[str, type]) -> dict[str, Any]:
    """Decode a cursor made by `encode_cursor`, checking its keys and their types.

    A forged cursor must be a 422, never reach SQL: a string id, or an integer beyond
    bigint, would otherwise fail in the database.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise invalid_cursor() from exc
    if not isinstance(position, dict) or set(position) != set(fields):
        raise invalid_cursor()
    for key, kind in fields.items():
        value = position[key]
        # type() rather than isinstance(): a bool is not an id.
        if type(value) is not kind or (kind is int and not -(2**63) <= value < 2**63):
            raise invalid_cursor()
    return position


def page_position(args: dict, **fields: type) -> dict[str, Any] | None:
    """Where the request's `cursor` resumes, or None on the first page."""
    return decode_cursor(args["cursor"], fields=fields) if "cursor" in args else None


def page_limit(args: dict) -> int:
    """The requested page size (GRIDGOV_PAGE_SIZE_DEFAULT when absent); 422 beyond the maximum."""
    paging = settings().paging
    limit = args.get("limit", paging.default)
    if limit > paging.max:
        raise ValidationFailed(
            f"A page holds at most {paging.max} items.",
            errors={"query": {"limit": [f"Must be between 1 and {paging.max}."]}},
        )
    return limit


def invalid_cursor() -> ValidationFailed:
    """The error for a cursor this service did not issue."""
    return ValidationFailed(
        "The cursor is not one this service issued.",
        code="invalid_cursor",
        errors={"query": {"cursor": ["Invalid cursor."]}},
    )
