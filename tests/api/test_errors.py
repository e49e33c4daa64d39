"""Every error, the framework's included, is the JSON envelope of DESIGN.md §4."""

import pytest
from flask import Blueprint

from gridgov import create_app
from gridgov.errors import Conflict
from tests.helpers import bearer

ENVELOPE_KEYS = {"code", "status", "error", "message", "errors", "details"}


def assert_envelope(response, status, error):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == ENVELOPE_KEYS
    assert body["code"] == status
    assert body["error"] == error
    return body


def test_unknown_url_is_404(client):
    assert_envelope(client.get("/no/such/page"), 404, "not_found")


def test_wrong_method_is_405_with_allow(client, auth):
    response = client.delete("/api/v1/areas", headers=auth("admin"))
    body = assert_envelope(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
    assert body["message"]


@pytest.fixture(scope="module")
def failing_client(app, demo_users):
    """A second app on the same database with routes that fail in two ways."""
    failing = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})
    failing.config["PROPAGATE_EXCEPTIONS"] = False
    bp = Blueprint("failing", __name__)

    @bp.get("/_test/boom")
    def boom():
        raise RuntimeError("secret stack detail")

    @bp.get("/_test/conflict")
    def conflict():
        raise Conflict("already there", code="already_there", details={"id": 7})

    failing.register_blueprint(bp)
    client = failing.test_client()
    client.environ_base.update(
        HTTP_AUTHORIZATION=bearer(failing, demo_users["admin"])["Authorization"]
    )
    return client


def test_unexpected_exception_is_500_without_internals(failing_client):
    response = failing_client.get("/_test/boom")
    body = assert_envelope(response, 500, "internal_error")
    assert "secret" not in response.get_data(as_text=True)
    assert "Traceback" not in body["message"]


def test_domain_error_keeps_its_code_and_details(failing_client):
    body = assert_envelope(failing_client.get("/_test/conflict"), 409, "already_there")
    assert body["details"] == {"id": 7}


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["database"] == "ok"


def test_openapi_document_and_docs_page_are_local(client):
    """Public: no token needed for the document, the page or its assets."""
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    assert "/api/v1/areas" in spec.get_json()["paths"]
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html
    assert client.get("/api/v1/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/api/v1/docs/assets/swagger-ui.css").status_code == 200
