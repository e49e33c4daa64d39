"""Fuzz every operation of /api/v1/openapi.json with schemathesis, through the WSGI app.

One pytest test per operation and caller (admin; grid_worker for all but login). Each runs in
`db_session` (tests/conftest.py): the app's requests, made in this thread through the WSGI app,
share the test's connection, so whatever the fuzzer writes (users, incidents, applied boundary
change sets, …) is rolled back after each operation; the two tests below show it with a real
change set, and `database_unchanged` (tests/fuzz/conftest.py) compares every table after.

Settings (schemathesis 4.32; the whole module takes about a minute of CPU on two cores):
- phases: examples, coverage (boundary and invalid values of each parameter), fuzzing;
- fuzzing: 25 examples per operation (8 for login and user creation, which hash passwords
  with Argon2), positive and negative data, no shrinking;
- derandomized with a fixed seed and no example database: the same cases on every run;
- no deadline (schemathesis sets none).
Checks: no 5xx (`not_a_server_error`), bodies of a documented media type and schema
(`content_type_conformance`, `response_schema_conformance`), statuses documented
(`status_code_conformance`). Every operation documents a `default` response (the `Error`
envelope), so that last check cannot fail by itself: what it leaves open, an undocumented
status with another body, the schema check catches, since such an answer must still be the
envelope. Each case the fuzzer found is kept as a plain test in test_found_cases.py.
"""

import schemathesis

from tests.fuzz.document_app import document_app

SEED = 2024
MAX_EXAMPLES = 25
ARGON2_MAX_EXAMPLES = 8

CONFIG = {
    "seed": SEED,
    "suppress-health-check": ["all"],
    "generation": {
        "mode": "all",
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,
        "no-shrink": True,
        "database": "none",
    },
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": False},
    },
    # Each login and each new user hashes a password with Argon2 (~0.1 s): fewer of those.
    "operations": [
        {
            "include-path": ["/api/v1/auth/login", "/api/v1/users"],
            "include-method": "POST",
            "generation": {"max-examples": ARGON2_MAX_EXAMPLES},
        }
    ],
    "checks": {
        "enabled": False,
        "not_a_server_error": {"enabled": True},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
    },
}


# The document is read at collection time (tests/fuzz/document_app.py); the cases run against
# the session's app, on its test database.
schema = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json", document_app(), config=schemathesis.Config.from_dict(CONFIG)
)


def test_document_is_the_apps(app):
    """The fuzzed document is the one the app under test serves."""
    served = app.test_client().get("/api/v1/openapi.json").get_json()
    assert served == schema.raw_schema


MICROGRID = "330212001001001001"
RENAMED = "探针改名的微网格"


def _area_name(app, auth) -> str:
    response = app.test_client().get(f"/api/v1/areas/{MICROGRID}", headers=auth("admin"))
    return response.get_json()["name"]


def test_changes_the_fuzzer_applies_stay_in_its_test(app, auth, db_session):
    """What the fuzzer's own transport applies (here a real boundary change set) is visible to
    the requests after it, on the test's connection, and to nothing else (next test)."""
    feature = (
        app.test_client()
        .get(f"/api/v1/areas/{MICROGRID}?format=geojson", headers=auth("admin"))
        .get_json()
    )
    properties = {**feature["properties"], "name": RENAMED}
    body = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": properties, "geometry": feature["geometry"]}
        ],
    }
    case = schema["/api/v1/boundaries/changes"]["POST"].Case(query={"dry_run": "false"}, body=body)
    response = case.call(app=app, headers=auth("admin"))
    assert response.status_code == 200, response.text
    assert response.json()["applied"] is True
    assert _area_name(app, auth) == RENAMED


def test_the_applied_change_was_rolled_back(app, auth, db_session):
    assert _area_name(app, auth) != RENAMED


@schema.parametrize()
def test_fuzz_as_admin(case, app, auth, db_session):
    case.call_and_validate(app=app, headers=auth("admin"))


# Login takes no token: the admin's run covers it.
@schema.exclude(path="/api/v1/auth/login").parametrize()
def test_fuzz_as_grid_worker(case, app, auth, db_session):
    case.call_and_validate(app=app, headers=auth("grid_worker"))


def test_error_responses_are_the_envelope():
    """Every operation's errors are documented with the `Error` schema: the envelope."""
    document = schema.raw_schema
    error = document["components"]["schemas"]["Error"]
    envelope = {"code", "status", "error", "message", "errors", "details"}
    assert set(error["properties"]) == envelope and set(error["required"]) == envelope
    error_ref = "#/components/schemas/Error"

    def refers_to_error(response: dict) -> bool:
        if "$ref" in response:
            name = response["$ref"].rsplit("/", 1)[-1]
            response = document["components"]["responses"][name]
        schemas = [media["schema"] for media in response.get("content", {}).values()]
        return bool(schemas) and all(
            s.get("$ref") == error_ref or {"$ref": error_ref} in s.get("oneOf", []) for s in schemas
        )

    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            responses = operation["responses"]
            assert refers_to_error(responses["default"]), (method, path)
            for status, response in responses.items():
                if status[0] in "45":
                    assert refers_to_error(response), (method, path, status)
