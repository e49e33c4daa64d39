"""The e2e tier calls every endpoint of the app over HTTP at least once.

Read from the shared server's own access log (method and path of every request it answered),
matched against the app's URL map: a new endpoint without an e2e call fails here. Runs last
(tests/e2e/conftest.py orders it).
"""

from werkzeug.exceptions import HTTPException

from gridgov import create_app

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _endpoints(app) -> set[tuple[str, str]]:
    return {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - IGNORED_METHODS
    }


def test_every_endpoint_was_called_over_http(e2e_server, e2e_database):
    app = create_app({"SQLALCHEMY_DATABASE_URI": e2e_database})
    adapter = app.url_map.bind("127.0.0.1")
    called = set()
    for entry in e2e_server.access_entries():
        try:
            endpoint, _ = adapter.match(entry["path"], method=entry["method"])
        except HTTPException:
            continue  # an unknown URL or method: answered, but no endpoint
        called.add((endpoint, entry["method"]))
    missing = sorted(_endpoints(app) - called)
    assert not missing, f"never called over HTTP in tests/e2e: {missing}"
