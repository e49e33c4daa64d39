"""Fuzz the whole API over HTTP, against gunicorn, with schemathesis.

tests/fuzz does the same through the WSGI app, one rolled-back transaction per operation.
Here the requests go through the real serving path (gunicorn's parser, its workers, streamed
bodies, the proxy and body-size settings) and commit: the server runs on a database of its
own (`fuzz_database`), so what the fuzzer creates, applies or revokes never reaches the rest
of the tier, and later operations meet what earlier ones left behind.

Phases:
- coverage (boundary and invalid values of every parameter) and fuzzing (random positive and
  negative data), one test per operation and caller (admin; grid_worker for all but login);
- stateful: sequences of calls chained through the links schemathesis infers from the
  document (a created incident, patrol, user, assignment or photo is read, acted on, …).
Checks: no 5xx, statuses documented, bodies of a documented media type and schema, and
invalid data rejected (`negative_data_rejection`: a request the document forbids must not
succeed).

Budget: derandomized with a fixed seed, so every run sends the same cases. The CI default is
small; `scripts/fuzz` runs the same tests with a larger one (GRIDGOV_FUZZ_EXAMPLES,
GRIDGOV_FUZZ_STATEFUL_RUNS, GRIDGOV_FUZZ_STATEFUL_STEPS).
"""

import contextlib
import os

import hypothesis
import pytest
import schemathesis

from tests.e2e.http import Http
from tests.fuzz.document_app import openapi_document

SEED = 2026
EXAMPLES = int(os.environ.get("GRIDGOV_FUZZ_EXAMPLES", "10"))
STATEFUL_RUNS = int(os.environ.get("GRIDGOV_FUZZ_STATEFUL_RUNS", "15"))
STATEFUL_STEPS = int(os.environ.get("GRIDGOV_FUZZ_STATEFUL_STEPS", "10"))
MAX_STATEFUL_ATTEMPTS = 20
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)

CONFIG = {
    "seed": SEED,
    "suppress-health-check": ["all"],
    "generation": {
        "mode": "all",
        "max-examples": EXAMPLES,
        "deterministic": True,
        "no-shrink": True,
        "database": "none",
        # Unknown query parameters are ignored by design (cache busters, newer clients): an
        # extra one is not invalid data. Unknown body fields are refused (tests/api/test_input.py).
        "allow-extra-parameters": False,
    },
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": False},
    },
    "checks": {"enabled": False, **{check: {"enabled": True} for check in CHECKS}},
}

schema = schemathesis.openapi.from_dict(
    openapi_document(), config=schemathesis.Config.from_dict(CONFIG)
)
# Links between operations are inferred (from responses and path parameters) only when the
# stateful phase is on, so the stateful test reads the document with it on.
stateful_schema = schemathesis.openapi.from_dict(
    openapi_document(),
    config=schemathesis.Config.from_dict(
        {**CONFIG, "phases": {**CONFIG["phases"], "stateful": {"enabled": True}}}
    ),
)


@pytest.fixture(scope="module")
def fuzz_server(start_server, fuzz_database, tmp_path_factory):
    """gunicorn on the fuzzer's own database, photos in a throw-away folder."""
    return start_server(
        "fuzz",
        {
            "GRIDGOV_LOGIN_RATE_LIMIT_PER_IP": "100000/minute",
            "GRIDGOV_LOGIN_RATE_LIMIT_PER_USERNAME": "100000/minute",
            "GRIDGOV_OPEN311_READ_RATE_LIMIT": "100000/minute",
            "GRIDGOV_UPLOAD_DIR": str(tmp_path_factory.mktemp("fuzz-uploads")),
        },
        database_url=fuzz_database,
    )


@pytest.fixture(scope="module")
def _tokens() -> dict[str, str]:
    return {}


@pytest.fixture
def bearer(fuzz_server, fuzz_sql, _tokens):
    """bearer(username) → headers with a working token of that demo user.

    The fuzzer may have logged the user out (which revokes their access tokens) or deactivated
    them in an earlier test: a token that no longer works is replaced, the user reactivated
    and logged in again over HTTP. (Argon2 makes a login cost ~0.1 s: not one per case.)
    """
    server = Http(fuzz_server.base_url)

    def headers(username: str) -> dict[str, str]:
        token = _tokens.get(username)
        if token is None or Http(server.base_url, token).get("/api/v1/me").status != 200:
            fuzz_sql(
                "UPDATE app_user SET is_active = true, deactivated_at = NULL "
                "WHERE username = :name",
                {"name": username},
            )
            token = _tokens[username] = server.login(username).token
        return {"Authorization": f"Bearer {token}"}

    return headers


@pytest.fixture
def admin_headers(bearer):
    return bearer("admin")


@pytest.fixture
def worker_headers(bearer):
    return bearer("grid_worker")


def test_the_fuzzed_document_is_the_servers(fuzz_server):
    """What the fuzzer reads is what gunicorn serves."""
    answer = Http(fuzz_server.base_url).get("/api/v1/openapi.json")
    assert answer.status == 200
    assert answer.json() == schema.raw_schema


@schema.parametrize()
def test_fuzz_over_http_as_admin(case, fuzz_server, admin_headers):
    case.call_and_validate(base_url=fuzz_server.base_url, headers=admin_headers)


@schema.exclude(path="/api/v1/auth/login").parametrize()
def test_fuzz_over_http_as_grid_worker(case, fuzz_server, worker_headers):
    case.call_and_validate(base_url=fuzz_server.base_url, headers=worker_headers)


def test_stateful_over_http_as_admin(fuzz_server, bearer):
    """Chains of calls along the inferred links; logout would end every chain, so it is out."""
    base_url = fuzz_server.base_url
    chained = stateful_schema.exclude(path="/api/v1/auth/logout")
    linked_successes: list[str] = []
    failures: list[str] = []
    chains: list = []
    # A chain may revoke the admin's own tokens (a role change or deactivation through
    # PATCH /users/{id} with an id read from GET /users): after a 401 the next call logs in again.
    headers = {"current": bearer("admin")}

    class AdminStateMachine(chained.as_state_machine()):
        def setup(self):
            chains.append(self)

        def get_call_kwargs(self, case):
            return {"base_url": base_url, "headers": headers["current"]}

        def after_call(self, response, case):
            super().after_call(response, case)
            if response.status_code == 401:
                headers["current"] = bearer("admin")
            if case.path_parameters and response.status_code < 300:
                linked_successes.append(f"{case.method} {case.path}")

        def validate_response(self, response, case, **kwargs):
            try:
                super().validate_response(response, case, **kwargs)
            except Exception as failure:
                failures.append(f"{case.method} {case.formatted_path}: {failure}")
                raise

    assert AdminStateMachine.bundles, "schemathesis found no links to follow"
    # The server keeps what each chain wrote, so when Hypothesis runs a chain again (to report a
    # failure, or to steer away from a path its search tree has seen) the answers, and with
    # them the next rules, can differ: Hypothesis calls that flaky and stops. Failures the
    # checks saw are kept in `failures` whatever happens next, and a stopped run is started
    # again (meeting the newer state) until the budget of chains is spent.
    for _attempt in range(MAX_STATEFUL_ATTEMPTS):
        with contextlib.suppress(hypothesis.errors.Flaky):
            AdminStateMachine.run(
                settings=hypothesis.settings(
                    max_examples=max(STATEFUL_RUNS - len(chains), 1),
                    stateful_step_count=STATEFUL_STEPS,
                    derandomize=True,
                    database=None,
                    deadline=None,
                    phases=[hypothesis.Phase.generate],
                    suppress_health_check=list(hypothesis.HealthCheck),
                )
            )
        if failures or len(chains) >= STATEFUL_RUNS:
            break
    assert not failures, "\n".join(failures)
    assert len(chains) >= STATEFUL_RUNS, f"only {len(chains)} chains ran"
    # The chains reached real objects: an id taken from one answer worked in the next call.
    assert linked_successes, "no call on a linked object succeeded"
