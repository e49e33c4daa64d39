"""The cases the schemathesis fuzzer (test_openapi_fuzz.py) found, as plain requests.

Each was a 500 or an answer that did not match the OpenAPI document; each test pins the fixed
behaviour.
"""

import pytest

from tests.factories import make_incident
from tests.fuzz.envelope import assert_envelope

MICROGRID = "330212001001001001"

# One past the largest id an `integer` (users, assignments) or `bigint` (incidents, patrols)
# primary key can hold: PostgreSQL refused such parameters ("integer out of range"), a 500.
PAST_INT32 = 2**31
PAST_INT64 = 2**63
# A path id bigger than any bigint (the fuzzer's was 28 digits).
HUGE = 3447605599603668035963977728


TRACK = {"points": [{"lon": 121.55, "lat": 29.87, "t": "2024-05-06T09:00:00+08:00"}]}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/v1/users/{PAST_INT32}", None),
        ("PATCH", f"/api/v1/users/{PAST_INT32}", {}),
        ("DELETE", f"/api/v1/assignments/{PAST_INT32}", None),
        ("GET", f"/api/v1/patrols/{HUGE}", None),
        ("POST", f"/api/v1/patrols/{HUGE}/finish", {"finished_at": "0129-09-01T16:27:39.5+16:02"}),
        ("POST", f"/api/v1/patrols/{PAST_INT64}/track", TRACK),
        ("GET", f"/api/v1/incidents/{PAST_INT64}", None),
        ("GET", f"/api/v1/incidents/{HUGE}/timeline", None),
        ("POST", f"/api/v1/incidents/{HUGE}/actions", {"action": "comment", "note": "x"}),
    ],
)
def test_path_id_beyond_the_column_is_not_found(client, auth, method, path, body):
    """An id no row can have is an unknown URL (404 envelope), not a database error."""
    response = client.open(path, method=method, headers=auth("admin"), json=body)
    assert_envelope(response, 404, "not_found")


def test_path_id_at_the_column_limit_is_still_routed(client, auth):
    """The bound is the column's: the largest id it holds reaches the view (its own 404)."""
    response = client.get(f"/api/v1/patrols/{PAST_INT64 - 1}", headers=auth("admin"))
    assert_envelope(response, 404, "patrol_not_found")
    response = client.get(f"/api/v1/users/{PAST_INT32 - 1}", headers=auth("admin"))
    assert_envelope(response, 404, "user_not_found")


def test_assignment_list_user_beyond_int32_is_422(client, auth):
    """GET /assignments?user=4939453366 (the fuzzer's case) was a 500."""
    response = client.get(
        "/api/v1/assignments",
        query_string={"user": 4939453366, "area": "3668443920", "active": "false"},
        headers=auth("admin"),
    )
    body = assert_envelope(response, 422, "validation_failed")
    assert "user" in body["errors"]["query"]


def test_assignment_create_user_beyond_int32_is_422(client, auth):
    response = client.post(
        "/api/v1/assignments",
        json={"user": PAST_INT32, "area": "330212001001", "duty": "supervisor"},
        headers=auth("admin"),
    )
    body = assert_envelope(response, 422, "validation_failed")
    assert "user" in body["errors"]["json"]


def test_incident_patrol_id_beyond_bigint_is_422(client, auth):
    report = {
        "client_id": "5b0c6f0e-8d0c-4a51-9a0e-0a3f5a7f0001",
        "category": "env_garbage",
        "description": "垃圾堆放",
        "location": {"lon": 121.55, "lat": 29.87},
        "patrol_id": PAST_INT64,
    }
    response = client.post("/api/v1/incidents", json=report, headers=auth("grid_worker"))
    body = assert_envelope(response, 422, "validation_failed")
    assert "patrol_id" in body["errors"]["json"]


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("accepted", {"action": "dispatch", "assignee": PAST_INT32}),
        ("reported", {"action": "duplicate", "duplicate_of": PAST_INT64}),
    ],
)
def test_action_ids_beyond_their_columns_are_422(
    client, auth, db_session, demo_users, status, action
):
    incident = make_incident(
        db_session, reporter=demo_users["grid_worker"].id, microgrid_code=MICROGRID, status=status
    )
    response = client.post(
        f"/api/v1/incidents/{incident.id}/actions", json=action, headers=auth("admin")
    )
    body = assert_envelope(response, 422, "validation_failed")
    assert set(body["errors"]["json"]) == set(action) - {"action"}


def test_nul_character_in_a_query_is_422(client, auth):
    """GET /users?q=w…\\x00… (the fuzzer's case): PostgreSQL text cannot hold NUL; was a 500."""
    response = client.get(
        "/api/v1/users", query_string={"q": "w\\\x00x", "active": "true"}, headers=auth("admin")
    )
    body = assert_envelope(response, 422, "validation_failed")
    assert list(body["errors"]["query"]) == ["q"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "location", "field"),
    [
        ("GET", "/api/v1/areas/330212%00", {}, None, None),
        ("GET", "/api/v1/incidents", {"query_string": {"category": "a\x00b"}}, "query", "category"),
        (
            "POST",
            "/api/v1/auth/login",
            {"json": {"username": "admin\x00", "password": "x"}},
            "json",
            "$.username",
        ),
        (
            "POST",
            "/api/v1/boundaries/changes",
            {"json": {"type": "FeatureCollection", "features": [{"\x00": 1}]}},
            "json",
            "$.features[0]",
        ),
    ],
)
def test_nul_characters_anywhere_are_refused(client, auth, method, path, kwargs, location, field):
    """Found by the probes (test_probes.py): a NUL in a path, query or JSON string was a 500."""
    response = client.open(path, method=method, headers=auth("admin"), **kwargs)
    if location is None:
        assert_envelope(response, 404, "not_found")
    else:
        body = assert_envelope(response, 422, "validation_failed")
        assert list(body["errors"][location]) == [field]


def test_nul_in_an_open311_form_is_the_specs_400(client):
    response = client.post("/open311/v2/requests.json", data={"service_code": "a\x00"})
    assert response.status_code == 400
    assert response.get_json()[0]["description"].endswith("(service_code)")


def _documented(client, path: str, method: str, status: str) -> dict:
    document = client.get("/api/v1/openapi.json").get_json()
    return document["paths"][path][method]["responses"][status]["content"]


@pytest.mark.parametrize(
    ("template", "path", "query", "media_type"),
    [
        ("/api/v1/areas", "/api/v1/areas", {"format": "geojson"}, "application/geo+json"),
        (
            "/api/v1/areas/{code}",
            f"/api/v1/areas/{MICROGRID}",
            {"format": "geojson"},
            "application/geo+json",
        ),
        ("/api/v1/incidents", "/api/v1/incidents", {"format": "geojson"}, "application/geo+json"),
        (
            "/api/v1/stats/indicators",
            "/api/v1/stats/indicators",
            {"area": "330212", "format": "csv"},
            "text/csv",
        ),
        (
            "/api/v1/stats/ranking",
            "/api/v1/stats/ranking",
            {"level": "town", "format": "csv"},
            "text/csv",
        ),
    ],
)
def test_other_media_types_of_a_200_are_documented(client, auth, template, path, query, media_type):
    """The fuzzer's `GET /areas?format=geojson` got application/geo+json, which the document
    did not list (it had only application/json): now both are there."""
    response = client.get(path, query_string=query, headers=auth("admin"))
    assert response.status_code == 200
    assert response.mimetype == media_type
    assert {"application/json", media_type} <= set(_documented(client, template, "get", "200"))


def test_invalid_change_set_answer_is_documented(client, auth):
    """POST /boundaries/changes?dry_run=false with features that are no Features answers 422
    with the change-set result (valid: false), not the envelope the document promised."""
    response = client.post(
        "/api/v1/boundaries/changes?dry_run=false",
        json={"type": "FeatureCollection", "features": [[False, {}], []]},
        headers=auth("admin"),
    )
    assert response.status_code == 422
    body = response.get_json()
    assert body["valid"] is False and body["applied"] is False
    assert {p["kind"] for p in body["problems"]} == {"invalid_feature"}
    schema = _documented(client, "/api/v1/boundaries/changes", "post", "422")["application/json"]
    assert {"$ref": "#/components/schemas/ChangeSetResult"} in schema["schema"]["oneOf"]


def test_audit_actor_beyond_int32_is_422(client, auth):
    response = client.get("/api/v1/audit?actor=2147483648", headers=auth("admin"))
    assert response.status_code == 422
    assert response.get_json()["error"] == "validation_failed"


@pytest.mark.parametrize(
    "url, position",
    [
        ("/api/v1/incidents", {"id": "x"}),
        ("/api/v1/incidents", {"id": 2**70}),
        ("/api/v1/incidents", {"id": True}),
        ("/api/v1/audit", {"id": "x"}),
        ("/api/v1/areas", {"code": 5}),
        ("/api/v1/users", {"id": 1.5}),
        ("/api/v1/patrols", {"started_at": "2026-01-01", "id": 1}),  # no offset
        ("/api/v1/patrols", {"started_at": 7, "id": 1}),
    ],
)
def test_forged_cursor_values_are_422_not_a_database_error(client, auth, url, position):
    from gridgov.api.paging import encode_cursor

    response = client.get(
        url, query_string={"cursor": encode_cursor(position)}, headers=auth("admin")
    )
    assert response.status_code == 422
    assert response.get_json()["error"] == "invalid_cursor"
