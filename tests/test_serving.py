"""gunicorn with gunicorn.conf.py: JSON logs, and SIGTERM lets the request in flight finish.

A real gunicorn (one sync worker) serves tests/serving_wsgi.py on a free 127.0.0.1 port, on
the session's test database. A slow request is started; once it is inside the worker the
master gets SIGTERM; the request must still be answered, and gunicorn must exit 0.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import bearer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SLOW_SECONDS = 2.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 30):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, dict(response.headers), response.read()


def _wait_until_serving(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if _get(f"{base}/healthz", timeout=2)[0] == 200:
                return
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer within 60 s:\n{log.read_text()}")


@pytest.fixture
def gunicorn(app, tmp_path):
    """(base URL, process, log file, marker file) of gunicorn started with gunicorn.conf.py."""
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    marker = tmp_path / "slow-request-started"
    env = {
        **os.environ,
        "GRIDGOV_ENV": "test",
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "GRIDGOV_BIND": f"127.0.0.1:{port}",
        "GRIDGOV_WORKERS": "1",
        "GRIDGOV_GRACEFUL_TIMEOUT": "15",
        "GRIDGOV_LOG_FORMAT": "json",
        "GRIDGOV_TEST_SLOW_MARKER": str(marker),
        "GRIDGOV_TEST_SLOW_SECONDS": str(SLOW_SECONDS),
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "gunicorn.conf.py",
                "tests.serving_wsgi:app",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base, proc, log)
        yield base, proc, log, marker
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


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
