"""What every /api/v1 error must look like (DESIGN.md §4), for the fuzz and probe tests."""

ENVELOPE_KEYS = {"code", "status", "error", "message", "errors", "details"}


def assert_envelope(response, status: int, error: str | None = None) -> dict:
    """The response is the JSON error envelope with `status` (and the stable code `error`)."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == ENVELOPE_KEYS
    assert body["code"] == status
    if error is not None:
        assert body["error"] == error, body
    return body
