"""Input that cannot be parsed or converted is a 4xx, never a 500 (gridgov/api/input.py).

Each case below answered 500 before: values at the edges of Python's ranges (year 1 with a
+14:00 offset, 9999-12-31 plus a day, an integer of 5,000 digits, JSON nested 5,000 deep, an
If-Match number of 5,000 digits), a batch sunk by one such item, and a worker's token making
the server read a change set before refusing it. The class is closed structurally too: every
request schema bounds its dates and integers (test_request_schemas_bound_dates_and_integers).
"""

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from marshmallow import RAISE, Schema, fields

from gridgov.api import input as api_input
from gridgov.api.input import Blueprint
from gridgov.schemas.common import Day, Instant
from gridgov.services import incidents as incident_service
from tests.api.test_errors import assert_envelope

HUGE_INTEGER = "1" * 5000
DEEP_JSON = "[" * 5000 + "]" * 5000
YEAR_ONE = "0001-01-01T00:00:00+14:00"


def report(client_id="edge-1", **extra) -> dict:
    return {
        "client_id": client_id,
        "category": "fire_corridor",
        "description": "楼道堆放杂物",
        "location": {"lon": 121.5435, "lat": 29.8605, "crs": "wgs84"},
        **extra,
    }


def post_raw(client, url, text: str, headers=None):
    return client.post(
        url, data=text, headers={**(headers or {}), "Content-Type": "application/json"}
    )


# --- the class: request schemas -------------------------------------------------------------


def _request_schemas(app):
    for view in app.view_functions.values():
        for parameter in getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", []):
            yield parameter["schema"]


def _fields(schema, seen):
    schema = schema() if isinstance(schema, type) else schema
    if type(schema) in seen:
        return
    seen.add(type(schema))
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        yield from _field_and_inner(f"{type(schema).__name__}.{name}", field, seen)


def _field_and_inner(where, field, seen):
    yield where, field
    if isinstance(field, fields.Nested):
        yield from _fields(field.nested, seen)
    elif isinstance(field, fields.List):
        yield from _field_and_inner(f"{where}[]", field.inner, seen)


def test_request_schemas_bound_dates_and_integers(app):
    seen: set = set()
    problems = []
    for schema in _request_schemas(app):
        for where, field in _fields(schema, seen):
            if isinstance(field, fields.DateTime | fields.Date) and not isinstance(
                field, Instant | Day
            ):
                problems.append(f"{where}: an unbounded {type(field).__name__}")
            if isinstance(field, fields.Integer) and not any(
                getattr(v, "max", None) is not None for v in field.validators
            ):
                problems.append(f"{where}: an Integer without a Range maximum")
    assert len(seen) > 20  # the walk found the API's schemas
    assert not problems, problems


def test_request_bodies_refuse_unknown_fields(app):
    """A body field the schema does not know is an error, never dropped: a misspelt field must
    not pass as its default. (Unknown query parameters are ignored by design.)"""
    bodies = [
        parameter["schema"]
        for view in app.view_functions.values()
        for parameter in getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", [])
        if parameter["in"] == "json"
    ]
    seen: set = set()
    nested = [
        field.nested
        for schema in bodies
        for _, field in _fields(schema, seen)
        if isinstance(field, fields.Nested) and not callable(field.nested)
    ]
    instances = [s() if isinstance(s, type) else s for s in bodies + nested]
    assert len(instances) > 10
    assert all(schema.unknown == RAISE for schema in instances), [
        type(schema).__name__ for schema in instances if schema.unknown != RAISE
    ]


def test_an_unknown_body_field_is_422_naming_it(client, auth):
    response = client.post(
        "/api/v1/incidents", json=report(priorty="high"), headers=auth("grid_worker")
    )
    body = assert_envelope(response, 422, "validation_failed")
    assert "priorty" in body["errors"]["json"]


def test_every_api_blueprint_parses_with_the_gridgov_parser(app):
    import flask_smorest

    smorest = [b for b in app.blueprints.values() if isinstance(b, flask_smorest.Blueprint)]
    assert smorest and all(isinstance(b, Blueprint) for b in smorest)


# --- item 2: edge values --------------------------------------------------------------------


def test_year_one_with_an_offset_is_422(client, auth):
    response = client.post(
        "/api/v1/incidents", json=report(occurred_at=YEAR_ONE), headers=auth("grid_worker")
    )
    body = assert_envelope(response, 422, "out_of_range")
    assert "occurred_at" in body["errors"]["json"]


@pytest.mark.parametrize(
    "query",
    [
        "end_date=9999-12-31",
        "start_date=9999-12-31",
        "end_date=0001-01-01",
        "start_date=9999-12-31T23:59:59-12:00",
    ],
)
def test_open311_dates_at_the_calendar_edges_are_400(client, query):
    response = client.get(f"/open311/v2/requests.json?{query}")
    assert response.status_code == 400, response.data
    [error] = response.get_json()
    assert error["code"] == 400 and "1900" in error["description"]


@pytest.mark.parametrize("url", ["/api/v1/auth/login", "/api/v1/incidents", "/api/v1/patrols"])
@pytest.mark.parametrize(
    "text",
    [DEEP_JSON, '{"username": ' + HUGE_INTEGER + ', "password": "x"}', '{"a": ' + DEEP_JSON + "}"],
    ids=["deep", "huge-integer", "deep-member"],
)
def test_json_too_deep_or_too_long_is_422_on_any_endpoint(client, auth, url, text):
    response = post_raw(client, url, text, auth("grid_worker"))
    body = assert_envelope(response, 422, "validation_failed")
    assert body["errors"] == {"json": [api_input.UNPROCESSABLE_JSON]}


def test_malformed_json_stays_400(client, auth):
    response = post_raw(client, "/api/v1/incidents", '{"client_id": ', auth("grid_worker"))
    assert_envelope(response, 400, "bad_request")


def test_an_if_match_of_5000_digits_is_422(client, auth, db_session):
    created = client.post("/api/v1/incidents", json=report(), headers=auth("grid_worker"))
    incident_id = created.get_json()["id"]
    response = client.post(
        f"/api/v1/incidents/{incident_id}/actions",
        json={"action": "accept"},
        headers={**auth("town_supervisor"), "If-Match": f'"{incident_id}-{HUGE_INTEGER}"'},
    )
    assert_envelope(response, 422, "invalid_if_match")


def test_a_huge_integer_in_a_query_is_422(client, auth):
    response = client.get(f"/api/v1/patrols?user={HUGE_INTEGER}", headers=auth("admin"))
    assert_envelope(response, 422, "validation_failed")


def test_a_conversion_error_in_a_view_is_422_and_logged(app, client, auth, caplog):
    def route_like_a_broken_library(*args, **kwargs):
        raise OverflowError("date value out of range")

    blueprint = Blueprint("edge", __name__, url_prefix="/api/v1/_edge")
    blueprint.route("/overflow")(route_like_a_broken_library)
    sandbox = type(app)(app.import_name)
    sandbox.config.update(app.config)
    # The handler is the app's own: registered by register_error_handlers on any app.
    from gridgov.api.errors import register_error_handlers

    register_error_handlers(sandbox)
    sandbox.register_blueprint(blueprint)
    response = sandbox.test_client().get("/api/v1/_edge/overflow")
    assert_envelope(response, 422, "validation_failed")
    assert any("unconvertible input" in r.getMessage() for r in caplog.records)


def test_the_bounds_are_inclusive_and_checked_in_utc():
    class When(Schema):
        at = Instant()
        day = Day()

    assert When().load({"at": "1900-01-01T00:00:00Z", "day": "2999-12-31"})
    assert When().validate({"at": "1900-01-01T07:59:59+08:00"})  # 1899 in UTC
    assert When().validate({"day": "3000-01-01"})


# --- item 3: one bad item never sinks a batch ------------------------------------------------


def test_an_unconvertible_item_fails_alone(client, auth, db_session):
    items = [report("batch-ok-1"), report("batch-bad", occurred_at=YEAR_ONE), report("batch-ok-2")]
    response = client.post(
        "/api/v1/incidents/batch", json={"items": items}, headers=auth("grid_worker")
    )
    assert response.status_code == 200, response.data
    results = response.get_json()["results"]
    assert [(r["client_id"], r["status"]) for r in results] == [
        ("batch-ok-1", 201),
        ("batch-bad", 422),
        ("batch-ok-2", 201),
    ]
    assert results[1]["error"] == "out_of_range"


def test_an_unexpected_failure_of_one_item_fails_that_item_only(
    client, auth, db_session, monkeypatch
):
    real_submit = incident_service.submit_incident

    def submit(session, *, report, **kwargs):
        if report.client_id == "batch-boom":
            # What a bug or a library surprise looks like: after writing, before finishing.
            real_submit(session, report=report, **kwargs)
            raise RuntimeError("surprise")
        return real_submit(session, report=report, **kwargs)

    monkeypatch.setattr(incident_service, "submit_incident", submit)
    items = [report("batch-a"), report("batch-boom"), report("batch-b")]
    response = client.post(
        "/api/v1/incidents/batch", json={"items": items}, headers=auth("grid_worker")
    )
    results = response.get_json()["results"]
    assert [(r["client_id"], r["status"]) for r in results] == [
        ("batch-a", 201),
        ("batch-boom", 500),
        ("batch-b", 201),
    ]
    assert results[1]["error"] == "internal_error"
    listed = client.get("/api/v1/incidents", headers=auth("grid_worker")).get_json()["items"]
    mine = {i["id"] for i in listed}
    stored = {r["id"] for r in results if "id" in r}
    assert stored <= mine and len(stored) == 2  # the failed item's row was rolled back
    monkeypatch.setattr(incident_service, "submit_incident", real_submit)
    again = client.post("/api/v1/incidents", json=report("batch-boom"), headers=auth("grid_worker"))
    assert again.status_code == 201  # the failed item was never stored, not half-stored


# --- item 4: the role is checked before the body is read -------------------------------------


class CountingStream(io.RawIOBase):
    """A request body of `size` bytes that counts what the app reads of it."""

    def __init__(self, size: int) -> None:
        self.size, self.position, self.read_bytes = size, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True  # the test client measures the body by seeking to its end and back

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = self.size + offset if whence == io.SEEK_END else offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), self.size - self.position))
        buffer[:n] = b" " * n
        self.position += n
        self.read_bytes += n
        return n


@pytest.mark.parametrize(
    ("user", "url", "method"),
    [
        ("grid_worker", "/api/v1/boundaries/changes?dry_run=true", "POST"),
        ("town_supervisor", "/api/v1/boundaries/changes?dry_run=true", "POST"),
        ("grid_worker", "/api/v1/users", "POST"),
        ("town_supervisor", "/api/v1/assignments", "POST"),
        ("admin", "/api/v1/patrols", "POST"),
    ],
)
def test_a_refused_role_is_answered_before_the_body_is_read(client, auth, user, url, method):
    body = CountingStream(30 * 1024 * 1024)
    response = client.open(
        url,
        method=method,
        input_stream=body,
        content_length=body.size,
        headers={**auth(user), "Content-Type": "application/json"},
    )
    assert_envelope(response, 403, "forbidden")
    assert body.read_bytes == 0


def test_a_missing_token_is_answered_before_the_body_is_read(client):
    body = CountingStream(30 * 1024 * 1024)
    response = client.post(
        "/api/v1/boundaries/changes",
        input_stream=body,
        content_length=body.size,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 401
    assert body.read_bytes == 0


def test_admins_still_post_change_sets(client, auth):
    response = client.post(
        "/api/v1/boundaries/changes?dry_run=true",
        json={"type": "FeatureCollection", "features": [{"type": "Feature"}]},
        headers=auth("admin"),
    )
    assert response.status_code == 200
    assert response.get_json()["valid"] is False


def test_patrols_start_only_for_workers_and_supervisors(client, auth):
    started = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    body = {"client_id": "role-check", "started_at": started}
    assert client.post("/api/v1/patrols", json=body, headers=auth("grid_worker")).status_code == 201
    assert (
        client.post("/api/v1/patrols", data=json.dumps(body), headers=auth("admin")).status_code
        == 403
    )
