"""Injection and traversal probes against every route of the app.

- Every path parameter of every registered route (whatever its method) and every documented
  query parameter of every GET route gets each probe in turn: SQL injection, path traversal,
  a 10,000-character string, Unicode and emoji, NUL bytes.
- Every string (and number) of a minimal valid body of every POST/PATCH endpoint gets each
  probe in turn; the minimal body itself must be accepted, so the probes reach the service.
- Photos: multipart file names with traversal change nothing (files are stored by hash).

Each answer: never a 5xx; an error is the JSON envelope (Open311: the spec's error list);
a success has a documented media type; no SQL, stack trace or file contents anywhere; and the
tables and users are all still there. Every test runs in the rolled-back `db_session`.
"""

import hashlib
import io
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from PIL import Image
from sqlalchemy import func, select, text

from gridgov.models import Area, User
from gridgov.services import open311_clients
from gridgov.spatial import from_db
from tests.factories import make_incident
from tests.fuzz.document_app import document_app, fill_rule, openapi_document, openapi_path
from tests.fuzz.envelope import ENVELOPE_KEYS

PROBES = {
    "sql_or": "' OR '1'='1",
    "sql_drop": "1; DROP TABLE incident;--",
    "sql_union": "330212' UNION SELECT password_hash FROM app_user--",
    "traversal": "../../../../etc/passwd",
    "traversal_encoded": "..%2f..%2fetc%2fpasswd",
    "percent_nul": "%00",
    "traversal_doubled": "....//....//etc/passwd",
    "long": "x" * 10_000,
    "unicode": "网格员 🚧🏙️ \u202eRTL\u202c Zalgo: Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇",
    "nul": "330212\x00' --",
}
# What must never be in an answer: SQL and driver errors, stack traces, file contents, hashes.
LEAKS = (
    "Traceback",
    'File "/',
    "psycopg",
    "sqlalchemy",
    "SQLSTATE",
    "[SQL:",
    "syntax error at or near",
    "root:x:0:0",
    "$argon2",
)
OPEN311 = "/open311/"
MICROGRID = "330212001001001001"
GRID = "330212001001001"
# Values of path parameters that are not probed in a request (by name; "1" for the rest).
PATH_BASELINE = {
    "code": MICROGRID,
    "photo_id": "0" * 32,
    "layer": "grids",
    "fmt": "json",
    "service_code": "env_garbage",
    "filename": "none.css",
}
# Required query parameters, sent alongside the probed one.
QUERY_BASELINE = {"lon": "121.55", "lat": "29.87", "area": "330212", "level": "town"}
# Query parameters of routes outside the OpenAPI document (Open311 by its spec, the map page).
UNDOCUMENTED_QUERY = {
    "open311.list_requests": (
        "service_request_id",
        "service_code",
        "start_date",
        "end_date",
        "status",
        "jurisdiction_id",
    ),
    "open311.discovery": ("jurisdiction_id",),
    "open311.services": ("jurisdiction_id",),
    "web.map_page": ("source",),
}


# --------------------------------------------------------------------------- routes


def _routes(methods: set[str]):
    rules = sorted(document_app().url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))
    for rule in rules:
        for method in sorted((rule.methods or set()) & methods):
            yield rule, method


GET_ROUTES = list(_routes({"GET"}))
ROUTES_WITH_PATH_PARAMETERS = [
    (rule, method)
    for rule, method in _routes({"GET", "POST", "PATCH", "PUT", "DELETE"})
    if rule.arguments
]


def _documented_query(rule) -> tuple[str, ...]:
    operation = openapi_document()["paths"].get(openapi_path(rule.rule), {}).get("get")
    if operation is None:
        return UNDOCUMENTED_QUERY.get(rule.endpoint, ())
    return tuple(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")


GET_WITH_QUERY = [rule for rule, _ in GET_ROUTES if _documented_query(rule)]


def _documented_types(rule, method: str, status: int) -> set[str] | None:
    """Media types the document gives for this answer; None when it gives none."""
    operation = openapi_document()["paths"].get(openapi_path(rule.rule), {}).get(method.lower())
    if operation is None:
        return None
    response = operation["responses"].get(str(status), {})
    return set(response.get("content", {})) or None  # no content documented: nothing to check


# --------------------------------------------------------------------------- checks


def assert_safe(response, *, path: str, rule=None, method: str = "GET") -> None:
    """Not a 5xx, the right error form, a documented type (for `rule`), and nothing leaked."""
    status = response.status_code
    data = response.get_data()
    assert status < 500, f"{status} for {path[:300]}: {data[:300]!r}"
    for leak in LEAKS:
        assert leak.encode() not in data, f"{leak!r} in the answer to {path[:300]}"
    if status >= 400:
        if path.startswith(OPEN311):
            _assert_open311_error(response)
        else:
            assert response.mimetype == "application/json", (path[:300], response.mimetype)
            body = response.get_json()
            assert set(body) == ENVELOPE_KEYS and body["code"] == status, body
    elif rule is not None and (types := _documented_types(rule, method, status)):
        assert response.mimetype in types or response.content_type in types, (
            path[:300],
            response.content_type,
            types,
        )


def _assert_open311_error(response) -> None:
    if response.mimetype == "application/json":
        document = response.get_json()
        assert isinstance(document, list) and document
        assert all(set(error) == {"code", "description"} for error in document), document
    else:
        assert response.mimetype == "text/xml"
        assert b"<errors>" in response.get_data()


@pytest.fixture
def intact(db_session):
    """The tables and the users seen by the test's own transaction before and after it."""

    def snapshot():
        tables = db_session.scalars(
            text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' ORDER BY table_name"
            )
        ).all()
        return tables, db_session.scalar(select(func.count()).select_from(User))

    tables, users = snapshot()
    assert {"app_user", "incident", "area"} <= set(tables)
    yield
    tables_after, users_after = snapshot()
    assert tables_after == tables
    assert users_after >= users  # write probes may add users; nothing may remove one


# --------------------------------------------------------------------------- GET and path probes


@pytest.mark.parametrize(
    ("rule", "method"),
    ROUTES_WITH_PATH_PARAMETERS,
    ids=[f"{m} {r.rule}" for r, m in ROUTES_WITH_PATH_PARAMETERS],
)
def test_path_parameter_probes(rule, method, client, auth, intact):
    headers = auth("admin")
    baseline = {name: PATH_BASELINE.get(name, "1") for name in rule.arguments}
    for name in sorted(rule.arguments):
        for probe in PROBES.values():
            # "/" and "%" stay as they are: raw traversal and pre-encoded traversal both arrive.
            path = fill_rule(rule.rule, {**baseline, name: quote(probe, safe="/%")})
            body = {} if method in ("POST", "PATCH", "PUT") else None
            response = client.open(path, method=method, headers=headers, json=body)
            assert_safe(response, path=path, rule=rule, method=method)


@pytest.mark.parametrize("rule", GET_WITH_QUERY, ids=[r.rule for r in GET_WITH_QUERY])
def test_query_parameter_probes(rule, client, auth, intact):
    names = _documented_query(rule)
    headers = auth("admin")
    path = fill_rule(rule.rule, {name: PATH_BASELINE.get(name, "1") for name in rule.arguments})
    required = {k: v for k, v in QUERY_BASELINE.items() if k in names}
    for name in names:
        for probe in PROBES.values():
            response = client.get(path, query_string={**required, name: probe}, headers=headers)
            assert_safe(response, path=path, rule=rule)


def test_collection_app_has_the_session_apps_routes(app):
    """The routes parametrized above (read at collection time) are those of the app tested."""

    def routes(flask_app):
        return {(r.rule, r.endpoint) for r in flask_app.url_map.iter_rules()}

    assert routes(document_app()) == routes(app)


# --------------------------------------------------------------------------- body probes


@pytest.fixture
def context(app, client, auth, db_session, demo_users):
    """Ids the minimal bodies refer to: an incident, an open patrol, a refresh token, …"""
    users = {name: user.id for name, user in demo_users.items()}
    incident = make_incident(db_session, reporter=users["grid_worker"], microgrid_code=MICROGRID)
    # An hour ago: patrols may not be dated further back than the back-dating limit.
    patrol_start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    started = client.post(
        "/api/v1/patrols",
        json={"client_id": "probe-patrol", "started_at": patrol_start.isoformat()},
        headers=auth("grid_worker"),
    )
    assert started.status_code == 201, started.get_json()
    login = client.post(
        "/api/v1/auth/login", json={"username": "grid_head", "password": "demo-pass-2024"}
    )
    assert login.status_code == 200, login.get_json()
    boundary = db_session.scalar(select(Area.boundary).where(Area.code == MICROGRID))
    geometry = from_db(boundary)
    point = geometry.representative_point()
    return {
        "users": users,
        "incident": incident.id,
        "patrol": started.get_json()["id"],
        "patrol_start": patrol_start,
        "refresh_token": login.get_json()["refresh_token"],
        "lon": round(point.x, 7),
        "lat": round(point.y, 7),
        "geometry": geometry.__geo_interface__,
        "split_line": _across(geometry),
        "api_key": open311_clients.create_client(db_session, name="probe client").api_key,
    }


def _across(geometry) -> dict:
    """A GeoJSON line across the middle of a shape, from beyond it to beyond it."""
    minx, miny, maxx, maxy = geometry.bounds
    x = (minx + maxx) / 2
    return {"type": "LineString", "coordinates": [[x, miny - 0.001], [x, maxy + 0.001]]}


def _edit(operation: str, build) -> tuple:
    return ("POST", f"/api/v1/boundaries/edits/{operation}", "admin", "json", build)


def _report(ctx: dict, n: int) -> dict:
    return {
        "client_id": str(uuid.UUID(int=n)),
        "category": "env_garbage",
        "description": "路边垃圾堆放",
        "location": {"lon": ctx["lon"], "lat": ctx["lat"], "crs": "wgs84"},
        "occurred_at": "2024-05-06T09:00:00+08:00",
        "priority": "normal",
    }


# endpoint → (method, path, caller, kind, body(ctx, n)); n numbers the request (unique values).
WRITES = {
    "auth.login": (
        "POST",
        "/api/v1/auth/login",
        None,
        "json",
        lambda ctx, n: {"username": "admin", "password": "demo-pass-2024"},
    ),
    "auth.logout": (
        "POST",
        "/api/v1/auth/logout",
        "grid_head",
        "json",
        lambda ctx, n: {"refresh_token": ctx["refresh_token"]},
    ),
    "boundaries.post_changes": (
        "POST",
        "/api/v1/boundaries/changes",
        "admin",
        "json",
        lambda ctx, n: {
            "type": "FeatureCollection",
            "description": "probe",
            "features": [
                {
                    "type": "Feature",
                    "properties": {
                        "code": MICROGRID,
                        "name": "微网格",
                        "level": "microgrid",
                        "parent": GRID,
                    },
                    "geometry": ctx["geometry"],
                }
            ],
        },
    ),
    "boundary_edits.post_split": _edit(
        "split", lambda ctx, n: {"code": MICROGRID, "line": ctx["split_line"], "snap_m": 1}
    ),
    "boundary_edits.post_merge": _edit(
        "merge", lambda ctx, n: {"codes": [MICROGRID, f"{GRID}002"], "name": "合并"}
    ),
    "boundary_edits.post_move_edge": _edit(
        "move-edge",
        lambda ctx, n: {"codes": [MICROGRID, f"{GRID}002"], "line": ctx["split_line"]},
    ),
    "boundary_edits.post_redraw": _edit(
        "redraw", lambda ctx, n: {"code": MICROGRID, "geometry": ctx["geometry"]}
    ),
    "boundary_edits.post_create": _edit(
        "create", lambda ctx, n: {"parent": GRID, "geometry": ctx["geometry"], "name": "新"}
    ),
    "boundary_edits.post_retire": _edit(
        "retire", lambda ctx, n: {"code": MICROGRID, "into": f"{GRID}002"}
    ),
    "incidents.create_incident": ("POST", "/api/v1/incidents", "grid_worker", "json", _report),
    "incidents.create_batch": (
        "POST",
        "/api/v1/incidents/batch",
        "grid_worker",
        "json",
        lambda ctx, n: {"items": [_report(ctx, n)]},
    ),
    "incidents.act": (
        "POST",
        "/api/v1/incidents/{incident}/actions",
        "admin",
        "json",
        lambda ctx, n: {"action": "comment", "note": "看过了"},
    ),
    "patrols.start_patrol": (
        "POST",
        "/api/v1/patrols",
        "grid_worker",
        "json",
        lambda ctx, n: {"client_id": f"p{n}", "started_at": ctx["patrol_start"].isoformat()},
    ),
    "patrols.upload_track": (
        "POST",
        "/api/v1/patrols/{patrol}/track",
        "grid_worker",
        "json",
        lambda ctx, n: {
            "points": [
                {
                    "lon": ctx["lon"],
                    "lat": ctx["lat"],
                    "crs": "wgs84",
                    "t": (ctx["patrol_start"] + timedelta(seconds=n)).isoformat(),
                }
            ]
        },
    ),
    "patrols.finish_patrol": (
        "POST",
        "/api/v1/patrols/{patrol}/finish",
        "grid_worker",
        "json",
        lambda ctx, n: {"finished_at": (ctx["patrol_start"] + timedelta(minutes=30)).isoformat()},
    ),
    "people.create_user": (
        "POST",
        "/api/v1/users",
        "admin",
        "json",
        lambda ctx, n: {
            "username": f"probe_{n}",
            "display_name": "探针",
            "role": "worker",
            "password": "probe-pass-2024",
        },
    ),
    "people.update_user": (
        "PATCH",
        "/api/v1/users/{grid_worker}",
        "admin",
        "json",
        lambda ctx, n: {"display_name": "专职网格员", "role": "worker"},
    ),
    "people.create_assignment": (
        "POST",
        "/api/v1/assignments",
        "admin",
        "json",
        lambda ctx, n: {
            "user": ctx["users"]["grid_head"],
            "area": MICROGRID,
            "duty": "part_time",
            "active_from": "2030-01-01T00:00:00+08:00",
        },
    ),
    "categories.create_category": (
        "POST",
        "/api/v1/categories",
        "admin",
        "json",
        lambda ctx, n: {
            "code": f"probe_{n}",
            "name": "探针类别",
            "group": "探针",
            "default_priority": "normal",
            "time_limits": {
                "accept": {"amount": 2, "unit": "working_hours"},
                "priority_overrides": {"urgent": {"handle": {"amount": 1, "unit": "working_days"}}},
            },
        },
    ),
    "notifications.mark_read": (
        "POST",
        "/api/v1/me/notifications/read",
        "grid_worker",
        "json",
        lambda ctx, n: {"ids": [n]},
    ),
    "notifications.register_device": (
        "POST",
        "/api/v1/me/devices",
        "grid_worker",
        "json",
        lambda ctx, n: {"kind": "webhook", "url": f"http://127.0.0.1:9/push/{n}"},
    ),
    "categories.update_category": (
        "PATCH",
        "/api/v1/categories/fire_corridor",
        "admin",
        "json",
        lambda ctx, n: {
            "name": "消防通道",
            "time_limits": {"verify": {"amount": 1, "unit": "working_days"}},
        },
    ),
    "open311.create_request": (
        "POST",
        "/open311/v2/requests.json",
        None,
        "form",
        lambda ctx, n: {
            "api_key": ctx["api_key"],
            "service_code": "env_garbage",
            "lat": str(ctx["lat"]),
            "long": str(ctx["lon"]),
            "description": "小区门口垃圾堆了三天",
            "address_string": "钟公庙街道",
            "email": "citizen@example.cn",
            "first_name": "小明",
        },
    ),
}
# Writes whose minimal body has no field to probe (their tokens are probed by the auth tests).
NO_BODY = {
    "auth.refresh",
    "people.end_assignment",
    "photos.upload_photo",
    "boundary_edits.post_revert",
    "boundaries.cancel_change",
}


def _leaves(value, path=()):
    """Paths of the strings and numbers in a JSON-like body."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield path


def _replaced(value, path, new):
    if not path:
        return new
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


def test_every_write_endpoint_has_a_probe_body():
    """A new POST/PATCH/PUT endpoint needs its minimal body here to be probed."""
    writes = {
        rule.endpoint
        for rule, _ in _routes({"POST", "PATCH", "PUT"})
        if not rule.endpoint.endswith(".static")
    }
    assert writes - set(WRITES) - NO_BODY == set()


@pytest.mark.parametrize("endpoint", sorted(WRITES))
def test_body_field_probes(endpoint, client, auth, context, intact):
    method, template, caller, kind, build = WRITES[endpoint]
    rule = next(document_app().url_map.iter_rules(endpoint))
    path = template.format(**context, **context["users"])
    headers = auth(caller) if caller else {}
    counter = iter(range(1, 1_000_000))

    def send(body):
        payload = {"json": body} if kind == "json" else {"data": body}
        return client.open(path, method=method, headers=headers, **payload)

    accepted = send(build(context, next(counter)))
    assert accepted.status_code < 300, accepted.get_data(as_text=True)[:500]
    for leaf in list(_leaves(build(context, 0))):
        for probe in PROBES.values():
            response = send(_replaced(build(context, next(counter)), leaf, probe))
            assert_safe(
                response, path=f"{path} {'.'.join(map(str, leaf))}", rule=rule, method=method
            )


# --------------------------------------------------------------------------- photo file names


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_photo_file_names_do_not_matter(client, auth, upload_dir, tmp_path, intact):
    """Traversal in the multipart file name: stored by hash under the upload folder only."""
    data = _png()
    digest = hashlib.sha256(data).hexdigest()
    answers = []
    for name in [*PROBES.values(), "/etc/passwd", "..\\..\\windows\\win.ini", "a/../../b.png"]:
        response = client.post(
            "/api/v1/photos",
            data={"file": (io.BytesIO(data), name, "image/png")},
            content_type="multipart/form-data",
            headers=auth("grid_worker"),
        )
        assert_safe(response, path=f"/api/v1/photos file name {name[:80]!r}")
        assert response.status_code == 201, response.get_json()
        answers.append(response.get_json())
    # One file, named by the hash of its bytes, inside the upload folder; nothing anywhere else.
    stored = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert stored == [upload_dir / digest[:2] / f"{digest}.png"]
    assert {answer["sha256"] for answer in answers} == {digest}
    for answer in answers:
        photo = client.get(f"/api/v1/photos/{answer['id']}", headers=auth("grid_worker"))
        assert photo.status_code == 200 and photo.get_data() == data
