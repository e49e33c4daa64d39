"""Request body limits, security headers, the docs page's CSP and the CORS policy."""

import io
import json
import re

import pytest

from config import ConfigError
from gridgov import create_app, logging_setup
from gridgov.api import http_policy
from gridgov.api.docs_page import DOCS_CSP
from gridgov.extensions import db
from gridgov.settings import cors_origins
from tests.helpers import bearer, configure

MIB = 1024 * 1024


def assert_413(response):
    assert response.status_code == 413
    body = response.get_json()
    assert body["error"] == "payload_too_large"
    assert response.headers["X-Request-ID"]
    return body


def json_body(size: int) -> bytes:
    """A syntactically valid JSON object of exactly `size` bytes."""
    head = b'{"description": "size check", "padding": "'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def post_json(client, url, headers, size):
    return client.post(
        url, data=json_body(size), headers={**headers, "Content-Type": "application/json"}
    )


# --- body limits --------------------------------------------------------------------------------


def test_a_2_mib_json_report_is_413(client, auth):
    assert_413(post_json(client, "/api/v1/incidents", auth("grid_worker"), 2 * MIB))


def test_json_just_under_the_limit_is_read(client, auth):
    response = post_json(client, "/api/v1/incidents", auth("grid_worker"), MIB - 10)
    assert response.status_code == 422  # read and validated, not refused for its size


def post_chunked(client, url, headers, size):
    """A body without Content-Length, as a chunked request reaches the app from gunicorn."""
    return client.post(
        url,
        input_stream=io.BytesIO(json_body(size)),
        headers={**headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_chunked_body_over_the_limit_is_413_not_cut_short(client, auth):
    worker = auth("grid_worker")
    assert_413(post_chunked(client, "/api/v1/incidents", worker, 2 * MIB))
    assert_413(post_chunked(client, "/api/v1/incidents", worker, MIB))
    # Under the limit it is read whole (and validated).
    assert post_chunked(client, "/api/v1/incidents", worker, MIB - 10).status_code == 422


def test_the_json_limit_is_configurable(app, client, auth, monkeypatch):
    configure(monkeypatch, app, MAX_JSON_BYTES=10_000)
    assert_413(post_json(client, "/api/v1/incidents", auth("grid_worker"), 20_000))
    assert_413(post_json(client, "/api/v1/patrols", auth("grid_worker"), 20_000))


def test_change_sets_have_their_own_larger_limit(app, client, auth, monkeypatch):
    configure(monkeypatch, app, MAX_CHANGESET_BYTES=3 * MIB)
    admin = auth("admin")
    # 2 MiB: over the JSON limit but within the change-set limit, so it is read and validated.
    assert post_json(client, "/api/v1/boundaries/changes", admin, 2 * MIB).status_code == 422
    assert_413(post_json(client, "/api/v1/boundaries/changes", admin, 4 * MIB))


def test_photo_uploads_are_limited_by_photo_max_bytes_plus_framing(
    app, client, auth, monkeypatch, tmp_path
):
    configure(monkeypatch, app, UPLOAD_DIR=tmp_path)
    headers = auth("grid_worker")

    def upload(size):
        return client.post(
            "/api/v1/photos",
            headers=headers,
            data={"file": (io.BytesIO(b"\0" * size), "p.jpg", "image/jpeg")},
            content_type="multipart/form-data",
        )

    # Default PHOTO_MAX_BYTES (8 MiB): 1.5 MiB is read (and refused as not an image).
    assert upload(int(1.5 * MIB)).get_json()["error"] == "photo_not_an_image"
    configure(monkeypatch, app, PHOTO_MAX_BYTES=100_000)
    # Over PHOTO_MAX_BYTES but within the framing allowance: the service's own answer.
    assert upload(120_000).get_json()["error"] == "photo_too_large"
    # Beyond PHOTO_MAX_BYTES + framing: refused before the body is read.
    assert_413(upload(100_000 + http_policy.MULTIPART_OVERHEAD_BYTES + 1))


def test_max_content_length_stays_the_ceiling(app, client, auth, monkeypatch):
    configure(monkeypatch, app, MAX_CONTENT_LENGTH=500_000)
    assert_413(post_json(client, "/api/v1/incidents", auth("grid_worker"), 600_000))
    with app.test_request_context():
        assert http_policy.body_limit("boundaries.post_changes") == 500_000
        assert http_policy.body_limit("photos.upload_photo") == 500_000
        assert http_policy.body_limit("incidents.create_incident") == 500_000
    configure(monkeypatch, app, MAX_CONTENT_LENGTH=None)
    with app.test_request_context():
        assert http_policy.body_limit("boundaries.post_changes") == 64 * MIB
        assert http_policy.body_limit("incidents.create_incident") == MIB


def test_the_body_limit_is_set_before_any_hook_that_could_read_the_body(app):
    first_hooks = app.before_request_funcs[None][:2]
    assert first_hooks == [logging_setup._start_request, http_policy._set_body_limit]


def test_the_endpoints_named_in_the_limits_exist(app):
    endpoints = set(app.view_functions)
    assert endpoints >= http_policy.CHANGESET_ENDPOINTS
    assert endpoints >= http_policy.PHOTO_UPLOAD_ENDPOINTS


# --- security headers ---------------------------------------------------------------------------


def test_every_response_says_nosniff(client, auth):
    for response in (
        client.get("/healthz"),
        client.get("/api/v1/categories", headers=auth("grid_worker")),
        client.get("/no/such/page"),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_docs_page_has_a_strict_csp_and_no_inline_script(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == DOCS_CSP
    assert "'unsafe-inline'" not in DOCS_CSP
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    html = response.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
    assert len(scripts) == 3
    assert all('src="/api/v1/' in attrs and not body.strip() for attrs, body in scripts)
    assert "style=" not in html and "<style" not in html
    assert 'data-spec-url="/api/v1/openapi.json"' in html
    init = client.get("/api/v1/docs/page/swagger-init.js")
    assert init.status_code == 200
    assert "SwaggerUIBundle" in init.get_data(as_text=True)


def test_swagger_ui_options_reach_the_page_as_data(app, client, monkeypatch):
    monkeypatch.setitem(
        app.config, "OPENAPI_SWAGGER_UI_CONFIG", {"docExpansion": "none", "quote": "it's <b>"}
    )
    html = client.get("/api/v1/docs").get_data(as_text=True)
    (attribute,) = re.findall(r"data-config='([^']*)'", html)
    decoded = attribute.replace("&#34;", '"').replace("&quot;", '"')
    assert json.loads(decoded) == {"docExpansion": "none", "quote": "it's <b>"}


def test_the_map_page_keeps_its_own_csp(client):
    response = client.get("/map")
    assert response.status_code == 200
    assert "worker-src" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_personal_data_is_not_stored_by_caches(client, auth):
    me = client.get("/api/v1/me", headers=auth("grid_worker"))
    assert me.status_code == 200
    assert me.headers["Cache-Control"] == "no-store"
    tasks = client.get("/api/v1/me/tasks", headers=auth("grid_worker"))
    assert tasks.headers["Cache-Control"] == "no-store"
    refresh = client.post("/api/v1/auth/refresh")
    assert refresh.status_code == 401
    assert refresh.headers["Cache-Control"] == "no-store"
    users = client.get("/api/v1/users", headers=auth("admin"))
    assert users.headers["Cache-Control"] == "no-store"
    categories = client.get("/api/v1/categories", headers=auth("grid_worker"))
    assert "no-store" not in categories.headers.get("Cache-Control", "")


# --- CORS ---------------------------------------------------------------------------------------

ALLOWED = "https://map.example.org"
REFUSED = "https://evil.example.net"


@pytest.fixture(scope="module")
def cors_client(app, demo_users):
    """A second app on the test database with two allowed origins."""
    cors_app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "CORS_ORIGINS": f" {ALLOWED}/, https://ops.example.org ",
        }
    )
    client = cors_app.test_client()
    client.token = bearer(cors_app, demo_users["grid_worker"])
    yield client
    with cors_app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_an_allowed_origin_may_read_and_sees_etag_and_request_id(cors_client):
    response = cors_client.get(
        "/api/v1/categories", headers={**cors_client.token, "Origin": ALLOWED}
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = {
        h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert exposed == {"etag", "x-request-id"}
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_a_refused_origin_gets_no_cors_headers(cors_client):
    response = cors_client.get(
        "/api/v1/categories", headers={**cors_client.token, "Origin": REFUSED}
    )
    assert response.status_code == 200  # the server answers; the browser withholds it
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_preflight_lists_the_methods_and_headers_allowed(cors_client):
    response = cors_client.options(
        "/api/v1/incidents",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, if-match, x-evil",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"}
    allowed = {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert allowed == {"authorization", "content-type", "if-match"}
    assert response.headers["Access-Control-Max-Age"] == "600"
    refused = cors_client.options(
        "/api/v1/incidents",
        headers={"Origin": REFUSED, "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_without_configured_origins_there_is_no_cross_origin_access(client, auth):
    response = client.get("/api/v1/categories", headers={**auth("grid_worker"), "Origin": ALLOWED})
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options(
        "/api/v1/incidents", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_origins_setting():
    assert cors_origins("") == ()
    assert cors_origins(" https://a.example/ ,, https://b.example:8443") == (
        "https://a.example",
        "https://b.example:8443",
    )
    with pytest.raises(ConfigError, match="GRIDGOV_CORS_ORIGINS"):
        cors_origins("*")
