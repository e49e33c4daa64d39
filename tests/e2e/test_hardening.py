"""Issue-12 hardening seen through gunicorn: edge values, batches, authorization before the
body, client addresses behind proxies. The same cases run through the test client in
tests/api/test_input.py; here they also cross the real server (its JSON body limits, its
socket handling, ProxyFix in front of the app)."""

import json
import socket
import uuid

import pytest

from tests.e2e.http import Http

YEAR_ONE = "0001-01-01T00:00:00+14:00"
MICROGRID = "330212001001001001"


@pytest.fixture(scope="module")
def spot(e2e_sql) -> dict:
    [(lon, lat)] = e2e_sql(
        "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(boundary) AS p FROM area"
        " WHERE code = :code) AS s",
        {"code": MICROGRID},
    )
    return {"lon": lon, "lat": lat, "crs": "wgs84"}


def _report(spot, **extra) -> dict:
    return {
        "client_id": f"hard-{uuid.uuid4().hex[:12]}",
        "category": "fire_corridor",
        "description": "边界值",
        "location": spot,
        **extra,
    }


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/login", '{"username": ' + "1" * 5000 + ', "password": "x"}'),
        ("/api/v1/auth/login", "[" * 5000 + "]" * 5000),
        ("/api/v1/incidents", "[" * 5000 + "]" * 5000),
    ],
    ids=["login-huge-integer", "login-deep", "incidents-deep"],
)
def test_unholdable_json_is_422_over_http(as_user, path, body):
    answer = as_user("grid_worker").post(
        path, body=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert (answer.status, answer.error) == (422, "validation_failed"), answer


def test_edge_dates_are_4xx_over_http(as_user, anonymous, spot):
    answer = as_user("grid_worker").post(
        "/api/v1/incidents", json=_report(spot, occurred_at=YEAR_ONE)
    )
    assert (answer.status, answer.error) == (422, "out_of_range"), answer
    for query in ("end_date=9999-12-31", "start_date=9999-12-31", "end_date=0001-01-01"):
        answer = anonymous.get(f"/open311/v2/requests.json?{query}")
        assert answer.status == 400, (query, answer)
        assert answer.json()[0]["code"] == 400


def test_a_long_if_match_is_422_over_http(as_user, spot):
    created = as_user("grid_worker").post("/api/v1/incidents", json=_report(spot)).json()
    answer = as_user("town_supervisor").post(
        f"/api/v1/incidents/{created['id']}/actions",
        json={"action": "accept"},
        headers={"If-Match": f'"{created["id"]}-{"1" * 5000}"'},
    )
    assert (answer.status, answer.error) == (422, "invalid_if_match"), answer


def test_one_bad_item_does_not_sink_the_batch_over_http(as_user, spot):
    items = [_report(spot), _report(spot, occurred_at=YEAR_ONE), "not an object", _report(spot)]
    answer = as_user("grid_worker").post("/api/v1/incidents/batch", json={"items": items})
    assert answer.status == 200, answer
    assert [r["status"] for r in answer.json()["results"]] == [201, 422, 422, 201]


def test_a_workers_change_set_is_refused_before_its_body_arrives(e2e_server, as_user):
    """Headers announce 30 MB; only 1 KB is sent, and the 403 comes back anyway."""
    token = as_user("grid_worker").token
    head = (
        "POST /api/v1/boundaries/changes?dry_run=true HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{e2e_server.port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {30 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", e2e_server.port), timeout=10) as conn:
        conn.sendall(head.encode() + b'{"type": "FeatureCollection", "features": [' + b" " * 1024)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)  # socket.timeout here would mean the server waits for the body
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"403", answer[:500]
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"] == "forbidden"


def _failed_logins(server, forwarded_for: str, attempts: int) -> list[int]:
    client = Http(server.base_url)
    return [
        client.post(
            "/api/v1/auth/login",
            json={"username": f"nobody-{uuid.uuid4().hex[:6]}", "password": "wrong"},
            headers={"X-Forwarded-For": forwarded_for},
        ).status
        for _ in range(attempts)
    ]


PROXY_LIMITS = {
    "GRIDGOV_WORKERS": "1",  # memory:// limits count per worker process
    "GRIDGOV_LOGIN_RATE_LIMIT_PER_IP": "3/minute",
    "GRIDGOV_LOGIN_RATE_LIMIT_PER_USERNAME": "100/minute",
}


def test_behind_one_proxy_each_phone_has_its_own_login_limit(start_server):
    server = start_server("proxy-1", {**PROXY_LIMITS, "GRIDGOV_PROXY_HOPS": "1"})
    assert _failed_logins(server, "10.0.0.1", 4) == [401, 401, 401, 429]
    # Another phone behind the same proxy is not locked out by the first one's attempts.
    assert _failed_logins(server, "10.0.0.2", 1) == [401]
    # The proxy appends the address it saw: a phone's forged first entry changes nothing.
    assert _failed_logins(server, "203.0.113.9, 10.0.0.1", 1) == [429]
    lines = [e for e in server.access_entries() if e["path"] == "/api/v1/auth/login"]
    assert lines[-1]["remote_addr"] == "10.0.0.1"


def test_without_trusted_proxies_forwarded_for_is_ignored(start_server):
    server = start_server("proxy-0", {**PROXY_LIMITS, "GRIDGOV_PROXY_HOPS": "0"})
    assert _failed_logins(server, "10.0.0.1", 3) == [401, 401, 401]
    # A caller cannot escape its limit by forging another address.
    assert _failed_logins(server, "10.0.0.2", 1) == [429]
    lines = [e for e in server.access_entries() if e["path"] == "/api/v1/auth/login"]
    assert lines[-1]["remote_addr"] == "127.0.0.1"
