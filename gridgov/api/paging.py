"""Opaque cursors for keyset pagination: base64url of a small JSON object."""

import base64
import binascii
import json
from typing import Any

from gridgov.errors import ValidationFailed


def encode_cursor(position: dict[str, Any]) -> str:
    """Encode the sort key of the last row returned."""
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, keys: tuple[str, ...]) -> dict[str, Any]:
    """Decode a cursor made by `encode_cursor`, checking it carries `keys`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise _invalid() from exc
    if not isinstance(position, dict) or set(position) != set(keys):
        raise _invalid()
    return position


def _invalid() -> ValidationFailed:
    return ValidationFailed(
        "The cursor is not one this service issued.",
        code="invalid_cursor",
        errors={"query": {"cursor": ["Invalid cursor."]}},
    )
