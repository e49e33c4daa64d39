"""A real gunicorn serving gridgov on a free 127.0.0.1 port, for tests over HTTP.

The server runs `gunicorn -c gunicorn.conf.py APP` exactly as in production (scripts/run does
the same), with JSON logs in a file the tests read: the access lines tell which endpoints
were called (tests/e2e/test_coverage.py) and a failure's traceback is there to show.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (for a moment)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerFailed(RuntimeError):
    """gunicorn exited or never answered; the message carries its log."""


class GunicornServer:
    """One gunicorn process tree; `start()` returns once /healthz answers 200."""

    def __init__(
        self, *, database_url: str, log_path: Path, app: str = "wsgi:app", env: dict | None = None
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._app = app
        self._env = {
            **os.environ,
            "GRIDGOV_ENV": "development",
            "SECRET_KEY": "e2e-secret-key-of-at-least-32-bytes!!",
            "DATABASE_URL": database_url,
            "GRIDGOV_BIND": f"127.0.0.1:{self.port}",
            "GRIDGOV_WORKERS": "2",
            "GRIDGOV_LOG_FORMAT": "json",
            # /healthz and /readyz are logged at DEBUG: the coverage check needs every line.
            "GRIDGOV_LOG_LEVEL": "DEBUG",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> "GunicornServer":
        """Start gunicorn and wait until it serves."""
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", self._app],
                cwd=PROJECT_ROOT,
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerFailed(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            if self._healthy():
                return self
            time.sleep(0.2)
        self.stop()
        raise ServerFailed(
            f"gunicorn did not answer within {START_TIMEOUT_SECONDS} s:\n{self.log()}"
        )

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        """SIGTERM (graceful), then kill after 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log(self) -> str:
        """Everything gunicorn and the app wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_entries(self) -> Iterator[dict]:
        """The JSON log records written so far (one object a line)."""
        for line in self.log().splitlines():
            if line.startswith("{"):
                yield json.loads(line)

    def access_entries(self) -> list[dict]:
        """The app's access lines: method, path, status, request_id, …"""
        return [e for e in self.log_entries() if e.get("logger") == "gridgov.access"]
