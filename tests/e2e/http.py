"""A small HTTP client for the e2e tier: whole bodies, raw control, nothing hidden.

Built on http.client so that a body cut short (a chunked transfer without its last chunk)
raises http.client.IncompleteRead instead of passing as a short success, and so that a test
can send exactly the bytes and headers it means to.
"""

import http.client
import json as jsonlib
import urllib.parse
from dataclasses import dataclass
from typing import Any

from gridgov.services.demo import DEMO_PASSWORD

TIMEOUT_SECONDS = 60


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.body)

    @property
    def error(self) -> str | None:
        """The envelope's stable `error` code (None for a body without one)."""
        body = self.json()
        return body.get("error") if isinstance(body, dict) else None

    def __repr__(self) -> str:
        return f"<Answer {self.status} {self.body[:300]!r}>"


class Http:
    """Requests to one server, optionally as one user (a bearer token)."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.token = token
        self._netloc = urllib.parse.urlsplit(base_url).netloc

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: bytes | None = None,
        params: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Send one request on a fresh connection and read the whole answer."""
        all_headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        if params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        connection = http.client.HTTPConnection(self._netloc, timeout=TIMEOUT_SECONDS)
        try:
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            return Answer(response.status, response.headers, response.read())
        finally:
            connection.close()

    def get(self, path: str, **kwargs) -> Answer:
        """GET `path`."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> Answer:
        """POST `path`."""
        return self.request("POST", path, **kwargs)

    def login(self, username: str, password: str = DEMO_PASSWORD) -> "Http":
        """A client carrying `username`'s access token (logged in over HTTP)."""
        answer = self.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert answer.status == 200, answer
        client = Http(self.base_url, answer.json()["access_token"])
        client.refresh_token = answer.json()["refresh_token"]
        client.user = answer.json()["user"]
        return client
