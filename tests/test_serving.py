"""gunicorn with gunicorn.conf.py: JSON logs, and SIGTERM lets the request in flight finish.

A real gunicorn (one sync worker) serves tests/serving_wsgi.py on a free 127.0.0.1 port, on
the session's test database. A slow request is started; once it is inside the worker the
master gets SIGTERM; the request must still be answered, and gunicorn must exit 0.
"""

import http.client
import json
import signal
import threading
import time
import urllib.request

import pytest

from tests.e2e.server import GunicornServer, ServerFailed
from tests.helpers import bearer

SLOW_SECONDS = 2.0


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 30):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, dict(response.headers), response.read()


@pytest.fixture
def gunicorn(app, tmp_path):
    """(base URL, process, log file, marker file) of gunicorn started with gunicorn.conf.py."""
    marker = tmp_path / "slow-request-started"
    server = GunicornServer(
        database_url=app.config["SQLALCHEMY_DATABASE_URI"],
        log_path=tmp_path / "gunicorn.log",
        app="tests.serving_wsgi:app",
        env={
            "GRIDGOV_ENV": "test",
            "GRIDGOV_WORKERS": "1",
            "GRIDGOV_GRACEFUL_TIMEOUT": "15",
            "GRIDGOV_LOG_LEVEL": "INFO",  # the readiness polls stay out of the access log
            "GRIDGOV_TEST_SLOW_MARKER": str(marker),
            "GRIDGOV_TEST_SLOW_SECONDS": str(SLOW_SECONDS),
        },
    )
    try:
        server.start()
    except ServerFailed as error:
        pytest.fail(str(error))
    try:
        yield server.base_url, server.process, server.log_path, marker
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


def _post_chunked(base: str, path: str, headers: dict[str, str], size: int):
    """POST `size` bytes of JSON with Transfer-Encoding: chunked (no Content-Length)."""
    body = b'{"padding": "' + b"x" * (size - 15) + b'"}'
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
    try:
        conn.request(
            "POST",
            path,
            body=chunks,
            headers={**headers, "Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_sigterm_finishes_the_request_in_flight_and_exits_0(gunicorn, app, demo_users):
    base, proc, log, marker = gunicorn
    status, headers, _ = _get(f"{base}/api/v1/openapi.json", {"X-Request-ID": "serving-1"})
    assert status == 200
    assert headers["X-Request-ID"] == "serving-1"
    # Through a real server, a chunked body over the JSON limit is refused, not cut short.
    token = bearer(app, demo_users["grid_worker"])
    status, body = _post_chunked(base, "/api/v1/incidents", token, 2 * 1024 * 1024)
    assert (status, body["error"]) == (413, "payload_too_large")

    answer: dict[str, object] = {}

    def slow_request():
        try:
            answer["status"], answer["headers"], answer["body"] = _get(f"{base}/_test/slow")
        except Exception as error:  # reported by the assertions below
            answer["error"] = error
        answer["at"] = time.monotonic()

    thread = threading.Thread(target=slow_request)
    thread.start()
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), log.read_text()
    sent_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)

    thread.join(timeout=30)
    assert "error" not in answer, f"{answer.get('error')!r}\n{log.read_text()}"
    assert answer["status"] == 200
    assert json.loads(answer["body"]) == {"status": "ok", "database": "ok"}
    assert answer["at"] > sent_at  # answered after the signal, not before it
    assert proc.wait(timeout=30) == 0

    lines = [line for line in log.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    access = [e for e in entries if e["logger"] == "gridgov.access"]
    assert [(e["method"], e["path"], e["status"]) for e in access] == [
        ("GET", "/api/v1/openapi.json", 200),
        ("POST", "/api/v1/incidents", 413),
    ]
    assert access[0]["request_id"] == "serving-1"
    assert access[1]["user_id"] == str(demo_users["grid_worker"].id)
    assert {"ts", "level", "duration_ms", "remote_addr"} <= set(access[0])
    messages = [e["message"] for e in entries if e["logger"] == "gunicorn.error"]
    assert any(m.startswith("worker ") and m.endswith(" exiting") for m in messages)
    assert messages[-1] == "gridgov: shutdown complete"
    assert not any("Control socket" in m for m in messages)  # off by default
