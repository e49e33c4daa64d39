"""Soak test: simulated phones and supervisors against the real app while the database restarts.

Run from the project root (``bench/run soak`` does the same after making sure the venv exists)::

    .venv/bin/python bench/soak.py [--phones 50] [--duration 120] [--restart-at 40%]

It provides the database ``gridgov_soak`` (on a private cluster of its own in
``instance/soak/``, or on DATABASE_URL's server) with the small demo, serves the real app with
gunicorn on a free 127.0.0.1 port, creates one worker per phone through the admin API and lets
the phones report (single and batch uploads, retrying the same client_id and content after a
timeout, a connection error or a 503, as a real phone does), patrol, look up where they stand
(GET /route) and read their tasks while a
few supervisors move cases through the loop with If-Match. In the middle of the run the database
is stopped (``pg_ctl stop -m fast``) and started again; the app is not restarted. Afterwards
every report that was ever acknowledged is looked up in the database. Figures go to stdout and
bench/results/soak-<ts>.json (with the app's log next to it); exit status 1 when a report was
lost or doubled, a 5xx other than 503 (or a 503 without Retry-After) was answered, or the app
did not recover. Only 127.0.0.1 is ever contacted over HTTP.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import psycopg  # noqa: E402
import shapely  # noqa: E402

from bench import harness  # noqa: E402
from bench.harness import (  # noqa: E402
    HOST,
    LEVELS,
    RESULTS_DIR,
    Database,
    Server,
    cpu_count,
    flask_cli,
    loadavg,
    login,
    percentile,
    process_tree,
    provide_database,
    request_once,
    start_server,
    wait_until_ready,
)
from geo.crs import wgs84_to_gcj02  # noqa: E402
from gridgov.services.calendar import CHINA_TZ  # noqa: E402
from gridgov.services.demo import DEMO_CATEGORIES, DEMO_PASSWORD  # noqa: E402
from gridgov_tools import embedded_pg  # noqa: E402

SOAK_DB = "gridgov_soak"
SOAK_LOGIN_LIMIT = "100000/minute"  # per address; see main()
SUPERVISOR_USERS = ("district_supervisor", "town_supervisor")
OPEN_STATUSES = "reported,accepted,dispatched,in_progress,resolved,verified,returned"
KINDS = (
    "report",
    "batch",
    "patrol_start",
    "track",
    "patrol_finish",
    "tasks",
    "route",
    "login",
    "list",
    "get",
    "action",
)
# What a phone does on an iteration without a due retry (weights).
# "login": the app was restarted on the phone and logs in again.
PHONE_ACTIONS = (
    ("report", 0.30),
    ("batch", 0.08),
    ("track", 0.30),
    ("tasks", 0.17),
    ("route", 0.13),  # "you are in grid …" before a report: GET /route, the lookup pool
    ("login", 0.02),
)
MAX_BATCH_ITEMS = 100  # the API's limit; a phone's queue is uploaded in slices of this
MAX_REQUESTS_PER_SECOND = 50  # per simulated client: hard bound on its loop
RETRY_BACKOFF_S = (1.0, 2.0, 4.0, 8.0)  # after a timeout or connection error; 503: Retry-After
CONNECTION_ERRORS = {"reset", "refused", "connection"}


def log(msg: str) -> None:
    """Progress line on stderr (stdout keeps the figures)."""
    harness.log(msg, tag="soak")


# --------------------------------------------------------------------------- HTTP and records


@dataclass
class Answer:
    """One request's outcome: an HTTP status, or an error name (timeout, reset, refused)."""

    status: int | None
    error: str | None
    body: Any
    headers: dict[str, str]
    sent: float
    received: float

    @property
    def ok(self) -> bool:
        """2xx."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def error_code(self) -> str | None:
        """The envelope's `error` code, when the body is one."""
        return self.body.get("error") if isinstance(self.body, dict) else None


@dataclass(slots=True)
class Record:
    """What is kept of every request."""

    kind: str
    who: str
    sent: float  # seconds since the start of the run
    received: float
    status: int | None
    error: str | None  # timeout, reset, refused, … (no HTTP answer)
    error_code: str | None  # the envelope's `error`
    retry_after: str | None
    retry: bool  # a re-send of something sent before


class Recorder:
    """Every request of the run, in the order they ended."""

    def __init__(self, t0: float) -> None:
        """Times are kept relative to t0 (time.monotonic())."""
        self.t0 = t0
        self.records: list[Record] = []
        self.lock = threading.Lock()

    def now(self) -> float:
        """Seconds since the start of the run."""
        return time.monotonic() - self.t0

    def add(self, kind: str, who: str, answer: Answer, retry: bool = False) -> None:
        """Keep one request's outcome."""
        record = Record(
            kind=kind,
            who=who,
            sent=answer.sent,
            received=answer.received,
            status=answer.status,
            error=answer.error,
            error_code=answer.error_code,
            retry_after=answer.headers.get("retry-after"),
            retry=retry,
        )
        with self.lock:
            self.records.append(record)


def classify_error(error: BaseException) -> str:
    """A short name for a failed request: timeout, reset, refused or the exception's name."""
    if isinstance(error, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(
        error,
        ConnectionResetError
        | BrokenPipeError
        | ConnectionAbortedError
        | http.client.RemoteDisconnected
        | http.client.IncompleteRead
        | http.client.BadStatusLine,
    ):
        return "reset"
    return type(error).__name__


def http_call(
    port: int,
    recorder: Recorder,
    method: str,
    path: str,
    *,
    body: Any = None,
    token: str | None = None,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request to 127.0.0.1:port on a fresh connection, bounded by `timeout` per socket op."""
    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    payload = None
    if body is not None:
        payload = json.dumps(body, ensure_ascii=False).encode()
        all_headers["Content-Type"] = "application/json"
    sent = recorder.now()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=payload, headers=all_headers)
        resp = conn.getresponse()
        raw = resp.read()
        answer_headers = {k.lower(): v for k, v in resp.getheaders()}
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return Answer(resp.status, None, parsed, answer_headers, sent, recorder.now())
    except (OSError, http.client.HTTPException) as error:
        return Answer(None, classify_error(error), None, {}, sent, recorder.now())
    finally:
        conn.close()


# --------------------------------------------------------------------------- the demo map


@dataclass
class MapFacts:
    """The demo's district outline, micro-grids and first town (the town supervisor's)."""

    district: shapely.Geometry
    microgrids: list[tuple[str, shapely.Geometry]]
    first_town: str
    area_counts: dict[str, int]


def read_map(db: Database) -> MapFacts:
    """District boundary, micro-grids (code, boundary) and the first town's code."""
    with psycopg.connect(db.libpq_url, autocommit=True) as conn:
        district = conn.execute(
            "SELECT ST_AsBinary(boundary) FROM area"
            " WHERE level = 'district' AND retired_at IS NULL ORDER BY code LIMIT 1"
        ).fetchone()
        microgrids = conn.execute(
            "SELECT code, ST_AsBinary(boundary) FROM area"
            " WHERE level = 'microgrid' AND retired_at IS NULL ORDER BY code"
        ).fetchall()
        town = conn.execute(
            "SELECT min(code) FROM area WHERE level = 'town' AND retired_at IS NULL"
        ).fetchone()
        counts = dict(
            conn.execute(
                "SELECT level, count(*) FROM area WHERE retired_at IS NULL GROUP BY level"
            ).fetchall()
        )
    if district is None or not microgrids or town[0] is None:
        raise SystemExit(f"soak: {SOAK_DB} holds no demo district")
    grids = [(code, shapely.from_wkb(bytes(wkb))) for code, wkb in microgrids]
    for _, geom in grids:
        shapely.prepare(geom)
    return MapFacts(
        district=shapely.from_wkb(bytes(district[0])),
        microgrids=grids,
        first_town=town[0],
        area_counts=counts,
    )


def point_inside(rng: random.Random, geom: shapely.Geometry) -> tuple[float, float]:
    """A uniform random point inside a polygon (rejection sampling, bounded)."""
    xmin, ymin, xmax, ymax = geom.bounds
    for _ in range(200):
        x, y = rng.uniform(xmin, xmax), rng.uniform(ymin, ymax)
        if shapely.contains_xy(geom, x, y):
            return x, y
    point = geom.representative_point()
    return point.x, point.y


def point_outside(
    rng: random.Random, geom: shapely.Geometry, bbox: tuple[float, float, float, float]
) -> tuple[float, float]:
    """A random point in `bbox` (the district's, with a margin) but not in `geom`."""
    xmin, ymin, xmax, ymax = bbox
    for _ in range(200):
        x, y = rng.uniform(xmin, xmax), rng.uniform(ymin, ymax)
        if not shapely.contains_xy(geom, x, y):
            return x, y
    return xmax, ymax


# --------------------------------------------------------------------------- phones


@dataclass
class Report:
    """One report made on a phone: its client_id, the exact body, and what became of it."""

    client_id: str
    phone: int
    reporter_id: int
    via: str  # "single" or "batch"
    body: dict
    created: float
    attempts: int = 0
    next_try: float = 0.0
    acked_at: float | None = None
    ack_status: int | None = None  # 201, or 200 (a replay: an earlier answer was lost)
    ids: set[int] = field(default_factory=set)  # incident ids the service answered with
    outcomes: list[str] = field(default_factory=list)  # status or error of each attempt
    rejected: str | None = None  # 409/422: will never be acknowledged

    def summary(self) -> dict:
        """A JSON-able record of the report."""
        return {
            "client_id": self.client_id,
            "phone": self.phone,
            "reporter_id": self.reporter_id,
            "via": self.via,
            "content": self.body,
            "created_s": round(self.created, 3),
            "attempts": self.attempts,
            "outcomes": self.outcomes,
            "acked_s": None if self.acked_at is None else round(self.acked_at, 3),
            "ack_status": self.ack_status,
            "ids": sorted(self.ids),
            "rejected": self.rejected,
        }


@dataclass
class Patrol:
    """A phone's current walk."""

    client_id: str
    started_at: str
    id: int | None = None
    uploads_ok: int = 0
    target_uploads: int = 8
    finishing: bool = False
    sent_start: bool = False
    pending: list[dict] = field(default_factory=list)  # fixes not acknowledged yet
    acked: list[str] = field(default_factory=list)  # times of acknowledged fixes


class Shared:
    """State every simulated client reads: the server, the clock, the stop flag, options."""

    def __init__(self, args, port: int, recorder: Recorder, deadline: float) -> None:
        """Bundle what the client threads need."""
        self.args = args
        self.port = port
        self.recorder = recorder
        self.deadline = deadline  # in recorder time
        self.stop = threading.Event()
        self.reports: list[Report] = []
        self.patrols: list[Patrol] = []
        self.worker_ids: set[int] = set()  # this run's workers (earlier runs' are deactivated)
        self.lock = threading.Lock()
        self.stamp = ""

    def running(self) -> bool:
        """Whether the run goes on."""
        return not self.stop.is_set() and self.recorder.now() < self.deadline

    def call(self, kind: str, who: str, method: str, path: str, **kwargs) -> Answer:
        """A request with the run's client timeout, recorded."""
        retry = kwargs.pop("retry", False)
        timeout = kwargs.pop("timeout", self.args.timeout)
        answer = http_call(self.port, self.recorder, method, path, timeout=timeout, **kwargs)
        self.recorder.add(kind, who, answer, retry=retry)
        return answer

    def sleep(self, seconds: float) -> None:
        """Think, but wake up at the end of the run."""
        remaining = self.deadline - self.recorder.now()
        self.stop.wait(max(0.0, min(seconds, remaining)))


def retry_delay(answer: Answer, attempts: int, rng: random.Random) -> float:
    """When to try again: Retry-After on a 503, else a growing back-off; with jitter."""
    if answer.status == 503:
        try:
            base = float(answer.headers.get("retry-after", "5"))
        except ValueError:
            base = 5.0
        return min(base, 30.0) + rng.uniform(0, 2)
    base = RETRY_BACKOFF_S[min(attempts - 1, len(RETRY_BACKOFF_S) - 1)]
    return base * rng.uniform(0.75, 1.25)


class Phone:
    """A grid worker's phone: reports (single or queued), patrols, reads its tasks."""

    def __init__(self, shared: Shared, index: int, user: dict, microgrid, map_bbox) -> None:
        """One phone for one worker user assigned to one micro-grid."""
        self.shared = shared
        self.index = index
        self.who = f"phone{index:03d}"
        self.username = user["username"]
        self.user_id = user["id"]
        self.token = user["token"]
        self.microgrid_code, self.microgrid = microgrid
        self.map_bbox = map_bbox
        self.rng = random.Random(shared.args.seed * 1000 + index)
        self.outbox: list[Report] = []
        self.patrol: Patrol | None = None
        self.last_fix = datetime.now(UTC)
        self.reports_made = 0

    # -- content

    def _location(self) -> dict:
        roll = self.rng.random()
        accuracy = self.rng.choice([5, 8, 12, 20, 35])
        if roll < 0.55:
            x, y = point_inside(self.rng, self.microgrid)
            location = {"lon": round(x, 7), "lat": round(y, 7), "accuracy_m": accuracy}
            if self.rng.random() < 0.5:
                location["crs"] = "wgs84"  # else left to the default
            return location
        if roll < 0.85:
            x, y = wgs84_to_gcj02(*point_inside(self.rng, self.microgrid))
            return {"lon": round(x, 7), "lat": round(y, 7), "crs": "gcj02", "accuracy_m": accuracy}
        x, y = point_outside(self.rng, self.microgrid, self.map_bbox)
        return {"lon": round(x, 7), "lat": round(y, 7), "crs": "wgs84", "accuracy_m": accuracy}

    def new_report(self, via: str) -> Report:
        """A new report with a new client_id; its body never changes afterwards."""
        self.reports_made += 1
        code, name = self.rng.choice([(c[0], c[1]) for c in DEMO_CATEGORIES])
        occurred = datetime.now(CHINA_TZ) - timedelta(minutes=self.rng.randint(0, 180))
        body = {
            "client_id": str(uuid.uuid4()),
            "category": code,
            "description": f"{name}：{self.username} 第{self.reports_made}条"
            f" (soak {self.shared.stamp})",
            "location": self._location(),
            "occurred_at": occurred.isoformat(timespec="seconds"),
        }
        if self.rng.random() < 0.2:
            body["priority"] = self.rng.choice(["low", "normal", "high", "urgent"])
        report = Report(
            client_id=body["client_id"],
            phone=self.index,
            reporter_id=self.user_id,
            via=via,
            body=body,
            created=self.shared.recorder.now(),
        )
        with self.shared.lock:
            self.shared.reports.append(report)
        self.outbox.append(report)
        return report

    # -- requests

    def call(self, kind: str, method: str, path: str, **kwargs) -> Answer:
        """A request with this phone's token; a 401 logs in again (once)."""
        answer = self.shared.call(kind, self.who, method, path, token=self.token, **kwargs)
        if answer.status == 401 and self.relogin():
            answer = self.shared.call(kind, self.who, method, path, token=self.token, **kwargs)
        return answer

    def relogin(self) -> bool:
        """Log in again (token expired, or the app restarted); False when that failed."""
        answer = self.shared.call(
            "login",
            self.who,
            "POST",
            "/api/v1/auth/login",
            body={"username": self.username, "password": self.shared.args.password},
            timeout=max(self.shared.args.timeout, 10.0),
        )
        if answer.status == 200:
            self.token = answer.body["access_token"]
            return True
        return False

    def _acknowledge(self, report: Report, status: int, incident_id: int | None) -> None:
        if report.acked_at is None:
            report.acked_at = self.shared.recorder.now()
            report.ack_status = status
        if incident_id is not None:
            report.ids.add(incident_id)
        if report in self.outbox:
            self.outbox.remove(report)

    def _not_acknowledged(self, report: Report, answer: Answer) -> None:
        if answer.status in (409, 422):  # the same body will never be taken: a bug somewhere
            report.rejected = f"{answer.status} {answer.error_code}"
            self.outbox.remove(report)
            return
        delay = retry_delay(answer, report.attempts, self.rng)
        report.next_try = self.shared.recorder.now() + delay

    def send_single(self, report: Report) -> None:
        """POST /api/v1/incidents with the report's unchanged body."""
        retry = report.attempts > 0
        report.attempts += 1
        answer = self.call("report", "POST", "/api/v1/incidents", body=report.body, retry=retry)
        report.outcomes.append(answer.error or str(answer.status))
        if answer.status in (200, 201):
            self._acknowledge(report, answer.status, answer.body.get("id"))
        else:
            self._not_acknowledged(report, answer)

    def send_batch(self, reports: list[Report]) -> None:
        """POST /api/v1/incidents/batch with the queued reports (unchanged bodies)."""
        retry = any(r.attempts > 0 for r in reports)
        for report in reports:
            report.attempts += 1
        answer = self.call(
            "batch",
            "POST",
            "/api/v1/incidents/batch",
            body={"items": [r.body for r in reports]},
            retry=retry,
        )
        if answer.status != 200:
            for report in reports:
                report.outcomes.append(answer.error or str(answer.status))
                self._not_acknowledged(report, answer)
            return
        by_client = {r.client_id: r for r in reports}
        for item in answer.body.get("results", []):
            report = by_client.pop(item.get("client_id"), None)
            if report is None:
                continue
            status = item.get("status")
            report.outcomes.append(f"item {status}")
            if status in (200, 201):
                self._acknowledge(report, status, item.get("id"))
            else:
                report.rejected = f"item {status} {item.get('error')}"
                self.outbox.remove(report)
        for report in by_client.values():  # not answered at all: try again
            report.outcomes.append("item missing")
            report.next_try = self.shared.recorder.now() + 1.0

    def patrol_step(self) -> None:
        """Start a patrol, append fixes to it, or finish it; each retried until acknowledged."""
        now = datetime.now(UTC)
        if self.patrol is None:
            started = (now - timedelta(seconds=1)).isoformat(timespec="milliseconds")
            self.patrol = Patrol(
                client_id=uuid.uuid4().hex,
                started_at=started,
                target_uploads=self.rng.randint(4, 12),
            )
            with self.shared.lock:
                self.shared.patrols.append(self.patrol)
        patrol = self.patrol
        if patrol.id is None:
            answer = self.call(
                "patrol_start",
                "POST",
                "/api/v1/patrols",
                body={"client_id": patrol.client_id, "started_at": patrol.started_at},
                retry=patrol.sent_start,
            )
            patrol.sent_start = True
            if answer.status in (200, 201):
                patrol.id = answer.body["id"]
            return
        if patrol.finishing or patrol.uploads_ok >= patrol.target_uploads:
            retry, patrol.finishing = patrol.finishing, True
            answer = self.call(
                "patrol_finish",
                "POST",
                f"/api/v1/patrols/{patrol.id}/finish",
                body={},
                retry=retry,
            )
            if answer.status == 200:
                self.patrol = None
            return
        retry = bool(patrol.pending)  # fixes of a failed upload go again, with new ones
        for _ in range(self.rng.randint(1, 10)):
            fix_time = max(now, self.last_fix + timedelta(milliseconds=1))
            self.last_fix = fix_time
            x, y = point_inside(self.rng, self.microgrid)
            fix = {"lon": round(x, 7), "lat": round(y, 7), "t": fix_time.isoformat()}
            if self.rng.random() < 0.3:
                fix["lon"], fix["lat"] = (round(v, 7) for v in wgs84_to_gcj02(x, y))
                fix["crs"] = "gcj02"
            patrol.pending.append(fix)
        points = patrol.pending[:1000]
        answer = self.call(
            "track",
            "POST",
            f"/api/v1/patrols/{patrol.id}/track",
            body={"points": points},
            retry=retry,
        )
        if answer.status == 200:
            patrol.acked.extend(p["t"] for p in points)
            del patrol.pending[: len(points)]
            patrol.uploads_ok += 1

    def step(self) -> None:
        """One iteration: a due retry first, else a random action."""
        now = self.shared.recorder.now()
        due = [r for r in self.outbox if r.next_try <= now]
        due_batch = [r for r in due if r.via == "batch"]
        due_single = [r for r in due if r.via == "single"]
        if due_batch and (not due_single or self.rng.random() < 0.5):
            self.send_batch(due_batch[:MAX_BATCH_ITEMS])
            return
        if due_single:
            self.send_single(due_single[0])
            return
        action = self.rng.choices(
            [a for a, _ in PHONE_ACTIONS], weights=[w for _, w in PHONE_ACTIONS]
        )[0]
        if action == "report":
            self.send_single(self.new_report("single"))
        elif action == "batch":
            queued = [self.new_report("batch") for _ in range(self.rng.randint(1, 20))]
            self.send_batch(queued)
        elif action == "track":
            self.patrol_step()
        elif action == "login":
            self.relogin()
        elif action == "route":
            self.call("route", "GET", "/api/v1/route?" + urlencode(self._location()))
        else:
            self.call("tasks", "GET", "/api/v1/me/tasks")

    def run(self) -> None:
        """Loop with random think time until the end of the run (bounded by count too)."""
        args = self.shared.args
        self.shared.sleep(self.rng.uniform(0, args.think_max))  # phones do not start in step
        for _ in range(int(args.duration * MAX_REQUESTS_PER_SECOND)):
            if not self.shared.running():
                break
            self.step()
            self.shared.sleep(self.rng.uniform(args.think_min, args.think_max))
        self.drain()

    def drain(self) -> None:
        """After the run: only upload the queue (due retries) until it is empty or --drain ends."""
        shared = self.shared
        end = shared.deadline + shared.args.drain
        for _ in range(int(shared.args.drain * MAX_REQUESTS_PER_SECOND) + 1):
            now = shared.recorder.now()
            if not self.outbox or now >= end or shared.stop.is_set():
                break
            wait = min(r.next_try for r in self.outbox) - now
            if wait > 0:
                shared.stop.wait(min(wait, end - now))
                continue
            self.step()  # a due retry is always what step() picks first


# --------------------------------------------------------------------------- supervisors


class Supervisor:
    """A supervisor at the web map: lists open cases and moves one on with If-Match."""

    def __init__(self, shared: Shared, index: int, username: str, token: str) -> None:
        """One supervisor thread (several may share a demo user)."""
        self.shared = shared
        self.who = f"{username}#{index}"
        self.username = username
        self.token = token
        self.rng = random.Random(shared.args.seed * 7919 + index)
        self.outcomes: Counter[str] = Counter()

    def call(self, kind: str, method: str, path: str, **kwargs) -> Answer:
        """A request with this supervisor's token."""
        return self.shared.call(kind, self.who, method, path, token=self.token, **kwargs)

    def next_action(self, item: dict) -> dict | None:
        """The body of a sensible next action for an incident in this status."""
        status, roll = item["status"], self.rng.random()
        note = f"soak {self.shared.stamp} by {self.username}"
        if status == "reported":
            return {"action": "reject", "note": note} if roll < 0.05 else {"action": "accept"}
        if status in ("accepted", "returned"):
            if roll < 0.7 and item.get("reporter_id") in self.shared.worker_ids:
                return {"action": "dispatch", "assignee": item["reporter_id"], "note": note}
            return {"action": "dispatch", "handling_unit": "街道城管中队", "note": note}
        if status == "dispatched":
            return {"action": "start"} if roll < 0.5 else {"action": "resolve", "note": note}
        if status == "in_progress":
            return {"action": "resolve", "note": note}
        if status == "resolved":
            return {"action": "return", "note": note} if roll < 0.15 else {"action": "verify"}
        if status == "verified":
            return {"action": "close"}
        return None

    def step(self) -> None:
        """List open incidents, pick one, act on it (409/412 are expected when others race)."""
        answer = self.call("list", "GET", f"/api/v1/incidents?status={OPEN_STATUSES}&limit=50")
        if answer.status != 200 or not answer.body.get("items"):
            return
        item = self.rng.choice(answer.body["items"])
        etag = f'"{item["id"]}-{item["version"]}"'
        if self.rng.random() < 0.5:
            current = self.call("get", "GET", f"/api/v1/incidents/{item['id']}")
            if current.status != 200:
                return
            item, etag = current.body, current.headers.get("etag", etag)
        body = self.next_action(item)
        if body is None:
            return
        result = self.call(
            "action",
            "POST",
            f"/api/v1/incidents/{item['id']}/actions",
            body=body,
            headers={"If-Match": etag},
        )
        self.outcomes[f"{body['action']} {result.error or result.status}"] += 1

    def run(self) -> None:
        """Loop with random think time until the end of the run (bounded by count too)."""
        args = self.shared.args
        for _ in range(int(args.duration * MAX_REQUESTS_PER_SECOND)):
            if not self.shared.running():
                break
            self.step()
            self.shared.sleep(self.rng.uniform(args.think_min / 2, args.think_max / 2))


# --------------------------------------------------------------------------- the restart


@dataclass
class Restart:
    """When the database went down and came back (seconds of the run)."""

    planned_at: float
    mode: str  # "private cluster, pg_ctl stop -m fast", "command", "none"
    stop_called: float | None = None
    stopped: float | None = None
    start_called: float | None = None
    up: float | None = None
    port_before: int | None = None
    port_after: int | None = None
    postmaster_started_before: str | None = None  # pg_postmaster_start_time(): proves the restart
    postmaster_started_after: str | None = None
    error: str | None = None


def postmaster_start_time(db: Database) -> str | None:
    """pg_postmaster_start_time() of the database server (None when it does not answer)."""
    try:
        with psycopg.connect(db.libpq_url, autocommit=True, connect_timeout=5) as conn:
            return str(conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0])
    except psycopg.Error:
        return None


def wait_for_database(db: Database, recorder: Recorder, limit_s: float = 120.0) -> float | None:
    """Poll with psycopg until the database accepts a query; the time it did (None: never)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(db.libpq_url, autocommit=True, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return recorder.now()
        except psycopg.Error:
            time.sleep(0.05)
    return None


def restart_database(db: Database, args, recorder: Recorder, restart: Restart, stop) -> None:
    """At restart.planned_at: stop the database, wait --down-seconds, start it again."""
    stop.wait(max(0.0, restart.planned_at - recorder.now()))
    if stop.is_set():
        return
    cluster = db.cluster
    restart.postmaster_started_before = postmaster_start_time(db)
    try:
        if args.restart_command:
            log(f"restarting the database with: {args.restart_command}")
            restart.stop_called = recorder.now()
            proc = subprocess.run(
                args.restart_command, shell=True, cwd=PROJECT_ROOT, timeout=600, check=False
            )
            restart.start_called = restart.stopped = recorder.now()
            if proc.returncode != 0:
                restart.error = f"--restart-command exited with {proc.returncode}"
        else:
            restart.port_before = cluster.port
            log(
                f"stopping the database (pg_ctl stop -m {args.stop_mode}) at {recorder.now():.1f} s"
            )
            restart.stop_called = recorder.now()
            stop_cluster(cluster, args.stop_mode)
            restart.stopped = recorder.now()
            stop.wait(args.down_seconds)
            log(f"starting the database again at {recorder.now():.1f} s")
            restart.start_called = recorder.now()
            cluster.start()
            restart.port_after = cluster.port
    except Exception as error:  # reported; the database is started again below
        restart.error = f"{type(error).__name__}: {error}"
        log(f"restart failed: {restart.error}")
        if cluster is not None and not cluster.is_running():
            with contextlib.suppress(Exception):
                cluster.start()
    restart.up = wait_for_database(db, recorder)
    restart.postmaster_started_after = postmaster_start_time(db)
    log(f"database answering again at {restart.up or float('nan'):.2f} s")


def stop_cluster(cluster: embedded_pg.EmbeddedCluster, mode: str) -> None:
    """EmbeddedCluster.stop() (fast: clean shutdown), or a crash-like immediate stop."""
    if mode == "fast":
        cluster.stop()
        return
    # -m immediate: no shutdown checkpoint; the next start replays the WAL (crash recovery).
    # EmbeddedCluster has no such method, so pg_ctl is run the way its stop() runs it.
    with cluster._lock():
        pg_ctl = str(cluster.bindir / "pg_ctl")
        cluster._run(
            [pg_ctl, "stop", "-m", "immediate", "-w", "-t", "60", "-D", str(cluster.data_dir)]
        )


def watch_workers(master_pid: int, stop: threading.Event, seen: dict[int, float], t0) -> None:
    """Note every gunicorn worker pid (children of the master) and when it was first seen."""
    while not stop.is_set():
        for pid in process_tree(master_pid)[1:]:
            seen.setdefault(pid, round(time.monotonic() - t0, 2))
        stop.wait(0.25)


# --------------------------------------------------------------------------- setup


def admin_call(port: int, token: str, method: str, path: str, body: dict) -> dict:
    """An admin request during setup (long timeout); anything but 2xx stops the run."""
    status, answer = request_once(
        port,
        method,
        path,
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    if not 200 <= status < 300:
        raise SystemExit(f"soak: {method} {path} failed: HTTP {status} {answer[:300]!r}")
    return json.loads(answer)


def pick_microgrids(facts: MapFacts, phones: int, rng: random.Random) -> list:
    """One micro-grid per phone: a quarter in the town supervisor's town, the rest anywhere."""
    in_town = [m for m in facts.microgrids if m[0].startswith(facts.first_town)]
    others = [m for m in facts.microgrids if not m[0].startswith(facts.first_town)]
    rng.shuffle(in_town)
    rng.shuffle(others)
    n_town = min(len(in_town), max(1, phones // 4))
    pool = in_town[:n_town] + others
    return [pool[i % len(pool)] for i in range(phones)]


def create_workers(port: int, args, stamp: str, microgrids: list) -> list[dict]:
    """Worker users (POST /users), each assigned to its micro-grid (POST /assignments)."""
    admin = login(port, "admin", DEMO_PASSWORD)
    users = []
    for index, (code, _) in enumerate(microgrids):
        username = f"soak{stamp}-{index:03d}"
        user = admin_call(
            port,
            admin,
            "POST",
            "/api/v1/users",
            {
                "username": username,
                "display_name": f"压测网格员{index:03d}",
                "role": "worker",
                "password": args.password,
            },
        )
        admin_call(
            port,
            admin,
            "POST",
            "/api/v1/assignments",
            {"user": user["id"], "area": code, "duty": "full_time"},
        )
        users.append({"username": username, "id": user["id"], "microgrid": code})
    return users


def deactivate_workers(port: int, users: list[dict]) -> int:
    """PATCH is_active=false on the run's workers (ends their assignments); how many failed."""
    try:
        admin = login(port, "admin", DEMO_PASSWORD)
    except SystemExit:
        return len(users)
    failed = 0
    for user in users:
        try:
            admin_call(port, admin, "PATCH", f"/api/v1/users/{user['id']}", {"is_active": False})
        except (SystemExit, OSError):
            failed += 1
    return failed


# --------------------------------------------------------------------------- reconciliation


def reconcile(db: Database, reports: list[Report], patrols: list[Patrol]) -> dict:
    """Compare what the phones were told with what the database holds."""
    reporter_ids = sorted({r.reporter_id for r in reports})
    with psycopg.connect(db.libpq_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT i.reporter_id, i.client_id, i.id, c.code, i.description,"
            " i.input_lon, i.input_lat, i.input_crs"
            " FROM incident i JOIN category c ON c.id = i.category_id"
            " WHERE i.reporter_id = ANY(%s)",
            (reporter_ids,),
        ).fetchall()
        patrol_ids = [p.id for p in patrols if p.id is not None]
        fixes = conn.execute(
            "SELECT patrol_id, t FROM track_point WHERE patrol_id = ANY(%s)", (patrol_ids,)
        ).fetchall()
    stored: dict[tuple[int, str], list[tuple]] = defaultdict(list)
    for row in rows:
        stored[(row[0], row[1])].append(row)
    sent = {(r.reporter_id, r.client_id): r for r in reports}
    result: dict[str, Any] = {
        "rows_for_the_run_workers": len(rows),
        "acknowledged": 0,
        "lost": [],
        "duplicated": [],
        "content_mismatch": [],
        "id_mismatch": [],
        "never_acknowledged": 0,
        "never_acknowledged_but_stored": 0,
        "never_acknowledged_rejected": [],
        "acknowledged_on_replay": 0,
        "unknown_rows": [],
    }
    for key, report in sent.items():
        found = stored.get(key, [])
        if len(found) > 1:
            result["duplicated"].append(report.client_id)
        if report.acked_at is None:
            result["never_acknowledged"] += 1
            if found:
                result["never_acknowledged_but_stored"] += 1
            if report.rejected:
                result["never_acknowledged_rejected"].append(
                    {"client_id": report.client_id, "why": report.rejected}
                )
            continue
        result["acknowledged"] += 1
        if report.ack_status == 200:
            result["acknowledged_on_replay"] += 1
        if not found:
            result["lost"].append(report.client_id)
            continue
        row = found[0]
        if report.ids and report.ids != {row[2]}:
            result["id_mismatch"].append(
                {"client_id": report.client_id, "answered": sorted(report.ids), "stored": row[2]}
            )
        problem = content_problem(report.body, row)
        if problem:
            result["content_mismatch"].append({"client_id": report.client_id, "problem": problem})
    result["unknown_rows"] = [key[1] for key in stored if key not in sent]
    stored_fixes = {(pid, t) for pid, t in fixes}
    acked = [
        (p.id, datetime.fromisoformat(t)) for p in patrols if p.id is not None for t in p.acked
    ]
    result["track_points_acknowledged"] = len(acked)
    result["track_points_lost"] = sum(1 for key in acked if key not in stored_fixes)
    return result


def content_problem(body: dict, row: tuple) -> str | None:
    """What differs between the body sent and the stored row (None: all the same)."""
    _, _, _, category, description, lon, lat, crs = row
    location = body["location"]
    expected_crs = location.get("crs", "wgs84")
    if category != body["category"]:
        return f"category {category!r} != {body['category']!r}"
    if description != body["description"]:
        return f"description {description!r} != {body['description']!r}"
    if abs(lon - location["lon"]) > 1e-9 or abs(lat - location["lat"]) > 1e-9:
        return f"input point ({lon}, {lat}) != ({location['lon']}, {location['lat']})"
    if crs != expected_crs:
        return f"input crs {crs!r} != {expected_crs!r}"
    return None


# --------------------------------------------------------------------------- analysis


def analyse(records: list[Record], restart: Restart) -> dict:
    """Per-kind figures, the outage window, recovery and anomalies."""
    per_kind: dict[str, dict] = {}
    for kind in (*KINDS, "all"):
        subset = [r for r in records if kind == "all" or r.kind == kind]
        if not subset:
            continue
        answered = sorted(r.received - r.sent for r in subset if r.status is not None)
        statuses = Counter(r.status for r in subset if r.status is not None)
        errors = Counter(r.error for r in subset if r.error)
        per_kind[kind] = {
            "requests": len(subset),
            "2xx": sum(n for s, n in statuses.items() if 200 <= s < 300),
            "4xx": sum(n for s, n in statuses.items() if 400 <= s < 500),
            "503": statuses.get(503, 0),
            "other_5xx": sum(n for s, n in statuses.items() if s >= 500 and s != 503),
            "timeouts": errors.get("timeout", 0),
            "connection_errors": sum(n for e, n in errors.items() if e != "timeout"),
            "retries": sum(1 for r in subset if r.retry),
            "p50_ms": percentile(answered, 50) * 1000,
            "p99_ms": percentile(answered, 99) * 1000,
            "max_ms": (answered[-1] * 1000) if answered else float("nan"),
            "statuses": {str(s): n for s, n in sorted(statuses.items())},
            "errors": dict(errors),
        }
    codes_4xx = Counter(
        f"{r.kind} {r.status} {r.error_code}" for r in records if r.status and 400 <= r.status < 500
    )
    retry_after_503: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        if r.status == 503:
            retry_after_503[r.kind][str(r.retry_after)] += 1
    anomalies: Counter[str] = Counter()
    for r in records:
        if r.status is not None and r.status >= 500 and r.status != 503:
            anomalies[f"{r.kind}: HTTP {r.status} {r.error_code}"] += 1
        elif r.status == 503 and not r.retry_after:
            anomalies[f"{r.kind}: 503 without Retry-After"] += 1
        elif r.status == 503 and r.error_code != "database_unavailable":
            anomalies[f"{r.kind}: 503 with error {r.error_code!r}"] += 1
        elif r.error and r.error != "timeout":
            anomalies[f"{r.kind}: connection {r.error}"] += 1
    outage: dict[str, Any] = {}
    if restart.stop_called is not None and restart.up is not None:
        down_from, up_at = restart.stop_called, restart.up
        during = [r for r in records if down_from <= r.received <= up_at]
        # Strictly down: sent after the stop completed, answered before the start began.
        strict = [
            r
            for r in records
            if restart.stopped is not None
            and r.sent >= restart.stopped
            and r.received <= (restart.start_called or up_at)
        ]
        after = sorted((r for r in records if r.received > up_at), key=lambda r: r.received)
        first_ok = next((r for r in after if r.status and 200 <= r.status < 300), None)
        late_503 = [r for r in after if r.status == 503]
        first_ok_by_kind = {}
        for kind in KINDS:
            hit = next((r for r in after if r.kind == kind and r.status and r.status < 300), None)
            if hit is not None:
                first_ok_by_kind[kind] = round(hit.received - up_at, 3)
        outage = {
            "window_s": [round(down_from, 3), round(up_at, 3)],
            "answers_in_window": dict(Counter(str(r.status or r.error) for r in during)),
            "503_in_window": sum(1 for r in during if r.status == 503),
            "503_in_window_well_formed": sum(
                1
                for r in during
                if r.status == 503 and r.retry_after and r.error_code == "database_unavailable"
            ),
            "strictly_down_requests": len(strict),
            "strictly_down_not_503": dict(
                Counter(f"{r.kind} {r.status or r.error}" for r in strict if r.status != 503)
            ),
            "recovery_s": None if first_ok is None else round(first_ok.received - up_at, 3),
            "recovery_first_kind": None if first_ok is None else first_ok.kind,
            "recovery_by_kind_s": first_ok_by_kind,
            "503_after_up": len(late_503),
            "last_503_after_up_s": round(late_503[-1].received - up_at, 3) if late_503 else None,
            "503_before_down": sum(
                1 for r in records if r.status == 503 and r.received < down_from
            ),
        }
    else:
        outage = {"503_total": sum(1 for r in records if r.status == 503)}
    return {
        "per_kind": per_kind,
        "codes_4xx": dict(codes_4xx.most_common()),
        "anomalies": dict(anomalies.most_common()),
        "retry_after_on_503": {kind: dict(c) for kind, c in retry_after_503.items()},
        "outage": outage,
    }


def scan_app_log(path: Path) -> dict:
    """Counts of telling lines in the app's log, and the first traceback."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    first_traceback: list[str] = []
    for i, line in enumerate(lines):
        if "Traceback" in line:
            first_traceback = lines[max(0, i - 1) : i + 40]
            break
    return {
        "unhandled_error": sum("unhandled error" in line for line in lines),
        "database_unavailable": sum("database unavailable" in line for line in lines),
        "worker_timeout": sum("WORKER TIMEOUT" in line for line in lines),
        "worker_exit": sum("Worker exiting" in line or "was sent" in line for line in lines),
        "tracebacks": sum("Traceback" in line for line in lines),
        "first_traceback": first_traceback,
    }


# --------------------------------------------------------------------------- output


ROW = "{:<14} {:>8} {:>7} {:>6} {:>6} {:>6} {:>8} {:>6} {:>7} {:>8} {:>8} {:>8}"


def print_report(rep: dict) -> None:
    """The figures on stdout."""
    c, res = rep["config"], rep["results"]
    print(
        f"soak: {c['phones']} phones + {c['supervisors']} supervisors for {c['duration_s']:g} s"
        f" (then up to {c['drain_s']:g} s in which phones only upload their queues);"
        f" gunicorn {c['workers']} sync workers on {HOST}:{rep['port']}; client timeout"
        f" {c['timeout_s']:g} s; think {c['think_s'][0]:g}-{c['think_s'][1]:g} s; seed {c['seed']}"
    )
    print(
        f"machine: nproc {rep['nproc']}, load average at start {rep['loadavg_at_start']};"
        f" database {rep['database']['url']} ({rep['database']['where']})"
    )
    counts = rep["database"]["area_counts"]
    print("areas: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in LEVELS))
    r = rep["restart"]
    if r["mode"] == "none":
        print("restart: none (--no-restart)")
    else:

        def at(key: str) -> str:
            """A time of the restart, or 'never'."""
            return "never" if r[key] is None else f"{r[key]:.2f} s"

        print(
            f"restart ({r['mode']}): stop called at {at('stop_called')}, stopped at"
            f" {at('stopped')}, start called at {at('start_called')}, database answering at"
            f" {at('up')}"
            + (f"; port {r['port_before']} -> {r['port_after']}" if r["port_before"] else "")
            + f"; postmaster started {r['postmaster_started_before']}"
            f" -> {r['postmaster_started_after']}" + (f"; ERROR {r['error']}" if r["error"] else "")
        )
    print()
    print(
        ROW.format(
            "kind",
            "requests",
            "2xx",
            "4xx",
            "503",
            "5xx!",
            "timeouts",
            "conn",
            "retries",
            "p50 ms",
            "p99 ms",
            "max ms",
        )
    )
    for kind, k in res["per_kind"].items():
        print(
            ROW.format(
                kind,
                k["requests"],
                k["2xx"],
                k["4xx"],
                k["503"],
                k["other_5xx"],
                k["timeouts"],
                k["connection_errors"],
                k["retries"],
                f"{k['p50_ms']:.1f}",
                f"{k['p99_ms']:.1f}",
                f"{k['max_ms']:.1f}",
            )
        )
    print("(p50/p99/max over answered requests; 5xx! = 5xx other than 503; conn = reset/refused)")
    if res["codes_4xx"]:
        print("4xx: " + ", ".join(f"{k} x{n}" for k, n in res["codes_4xx"].items()))
    rec = rep["reconcile"]
    rp = rep["reports"]
    print()
    print(
        f"reports: made {rp['made']} ({rp['single']} single, {rp['batched']} in batches);"
        f" acknowledged {rec['acknowledged']} ({rec['acknowledged_on_replay']} only on a replay,"
        f" their first answer lost; {rp['acked_in_drain']} during the drain); never acknowledged"
        f" {rec['never_acknowledged']} (still queued at the end;"
        f" {rec['never_acknowledged_but_stored']} of them stored anyway: committed, answer lost)"
    )
    print(
        f"reconcile: lost {len(rec['lost'])} (must be 0), duplicated {len(rec['duplicated'])}"
        f" (must be 0), content mismatches {len(rec['content_mismatch'])}, id mismatches"
        f" {len(rec['id_mismatch'])}, rejected (409/422) {len(rec['never_acknowledged_rejected'])},"
        f" rows of unknown client_ids {len(rec['unknown_rows'])};"
        f" track points acknowledged {rec['track_points_acknowledged']},"
        f" missing {rec['track_points_lost']}"
    )
    out = res["outage"]
    if "window_s" not in out:
        print(f"503 answers: {out.get('503_total', 0)} (no database restart in this run)")
    else:
        print(
            f"outage {out['window_s'][0]:.2f}-{out['window_s'][1]:.2f} s: answers"
            f" {out['answers_in_window']}; 503 {out['503_in_window']}"
            f" ({out['503_in_window_well_formed']} with Retry-After and database_unavailable);"
            f" sent and answered while fully down: {out['strictly_down_requests']},"
            f" not 503: {out['strictly_down_not_503'] or 'none'}"
        )
        recovery = out["recovery_s"]
        print(
            "recovery: first 2xx "
            + ("NEVER" if recovery is None else f"{recovery:.3f} s ({out['recovery_first_kind']})")
            + " after the database answered again; per kind "
            + ", ".join(f"{k} {v:.2f} s" for k, v in out["recovery_by_kind_s"].items())
            + f"; 503 after that: {out['503_after_up']}"
            + (
                f" (last {out['last_503_after_up_s']:.2f} s after)"
                if out["last_503_after_up_s"] is not None
                else ""
            )
            + f"; 503 before the stop: {out['503_before_down']}"
        )
    if res["retry_after_on_503"]:
        print(
            "Retry-After on 503 (seconds: count): "
            + "; ".join(
                f"{kind} " + ", ".join(f"{v}: {n}" for v, n in values.items())
                for kind, values in res["retry_after_on_503"].items()
            )
        )
    app = rep["app"]
    print(
        f"app: gunicorn master pid {app['master_pid']}"
        f" {'alive, never restarted' if app['master_alive_at_end'] else 'DIED'};"
        f" workers at start {app['workers_at_start']}, at end {app['workers_at_end']},"
        f" recycled during the run: {app['recycled_workers'] or 'none'}"
    )
    lg = rep["app_log"]
    print(
        f"app log: {lg.get('unhandled_error', 0)} unhandled errors,"
        f" {lg.get('tracebacks', 0)} tracebacks, {lg.get('database_unavailable', 0)}"
        f" 'database unavailable' warnings, {lg.get('worker_timeout', 0)} worker timeouts"
        f" ({rep['app_log_path']})"
    )
    print("anomalies: " + (", ".join(f"{k} x{n}" for k, n in res["anomalies"].items()) or "none"))
    if lg.get("first_traceback"):
        print("first traceback in the app log:\n  " + "\n  ".join(lg["first_traceback"]))
    print(
        "supervisor actions: "
        + ", ".join(f"{k} x{n}" for k, n in sorted(rep["supervisor_outcomes"].items()))
    )
    verdict = "PASS" if not rep["failures"] else "FAIL: " + "; ".join(rep["failures"])
    print(f"\nverdict: {verdict}")


def failures(rep: dict) -> list[str]:
    """Why the run failed (empty: it passed)."""
    out: list[str] = []
    rec, res, app = rep["reconcile"], rep["results"], rep["app"]
    if rec["lost"]:
        out.append(f"{len(rec['lost'])} acknowledged reports lost")
    if rec["duplicated"]:
        out.append(f"{len(rec['duplicated'])} reports stored twice")
    if rec["content_mismatch"] or rec["id_mismatch"]:
        out.append("stored content or ids differ from what was acknowledged")
    if rec["never_acknowledged_rejected"]:
        out.append(f"{len(rec['never_acknowledged_rejected'])} reports refused (409/422)")
    if rec["track_points_lost"]:
        out.append(f"{rec['track_points_lost']} acknowledged track points missing")
    five = res["per_kind"].get("all", {}).get("other_5xx", 0)
    if five:
        out.append(f"{five} answers 5xx other than 503")
    if res["anomalies"] and not five:
        out.append(f"{sum(res['anomalies'].values())} malformed 503s or connection errors")
    if not app["master_alive_at_end"]:
        out.append("the gunicorn master died")
    r = rep["restart"]
    if r["mode"] != "none":
        if r["error"] or r["up"] is None:
            out.append(f"the database restart failed ({r['error']})")
        elif r["postmaster_started_before"] == r["postmaster_started_after"]:
            out.append("the database server was not restarted (same postmaster start time)")
        elif res["outage"].get("recovery_s") is None:
            out.append("no 2xx answer after the database came back")
    return out


# --------------------------------------------------------------------------- main


def parse_share_or_seconds(value: str, duration: float) -> float:
    """'40%' of the duration, or plain seconds."""
    value = value.strip()
    if value.endswith("%"):
        return duration * float(value[:-1]) / 100
    return float(value)


def parse_args(argv=None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phones", type=int, default=50, help="simulated workers' phones")
    parser.add_argument("--supervisors", type=int, default=4, help="supervisor threads")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument(
        "--restart-at",
        default="40%",
        help="when to stop the database: a share of the duration ('40%%') or seconds",
    )
    parser.add_argument("--down-seconds", type=float, default=5.0, help="database downtime")
    parser.add_argument(
        "--restart-command",
        help="shell command that restarts the database (required with DATABASE_URL); it"
        " replaces the private cluster's stop/start and should include its own downtime",
    )
    parser.add_argument(
        "--stop-mode",
        choices=("fast", "immediate"),
        default="fast",
        help="how the private cluster is stopped: fast (clean shutdown, EmbeddedCluster.stop())"
        " or immediate (like a crash: recovery from the WAL on start)",
    )
    parser.add_argument("--no-restart", action="store_true", help="soak without the restart")
    parser.add_argument(
        "--drain",
        type=float,
        default=15.0,
        help="seconds after the run in which phones only upload what they still have queued",
    )
    parser.add_argument("--timeout", type=float, default=2.0, help="client timeout (seconds)")
    parser.add_argument("--think-min", type=float, default=1.0, help="shortest think time (s)")
    parser.add_argument("--think-max", type=float, default=3.0, help="longest think time (s)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--seed", type=int, default=2024, help="random seed")
    parser.add_argument(
        "--demo-size", choices=("small", "district"), default="small", help="demo to load"
    )
    parser.add_argument(
        "--instance",
        type=Path,
        default=Path(os.environ.get("GRIDGOV_INSTANCE_DIR", PROJECT_ROOT / "instance")) / "soak",
        help="instance dir of the soak's own private cluster (when DATABASE_URL is not set);"
        " not the development cluster, which other work may be using",
    )
    parser.add_argument(
        "--keep-users", action="store_true", help="leave the run's worker users active"
    )
    args = parser.parse_args(argv)
    if not (1 <= args.phones <= 1000 and 0 <= args.supervisors <= 50):
        parser.error("--phones in [1, 1000], --supervisors in [0, 50]")
    if not (10 <= args.duration <= 3600 and 0.1 <= args.timeout <= 60):
        parser.error("--duration in [10, 3600], --timeout in [0.1, 60]")
    if not (0 <= args.think_min <= args.think_max <= 60 and 0 <= args.down_seconds <= 300):
        parser.error("0 <= --think-min <= --think-max <= 60, --down-seconds in [0, 300]")
    if not 0 <= args.drain <= 600:
        parser.error("--drain in [0, 600]")
    if not 1 <= args.workers <= 64:
        parser.error("--workers in [1, 64]")
    try:
        args.restart_at_s = parse_share_or_seconds(args.restart_at, args.duration)
    except ValueError:
        parser.error("--restart-at: a share like 40%% or seconds")
    if not args.no_restart and not 0 < args.restart_at_s < args.duration:
        parser.error("--restart-at must fall inside the run")
    args.worker_class = "sync"
    args.password = f"soak-{DEMO_PASSWORD}"
    return args


def main(argv=None) -> int:
    """Set up, soak, restart the database midway, reconcile, print; stop what was started."""
    args = parse_args(argv)
    if os.environ.get("DATABASE_URL", "").strip() and not (args.restart_command or args.no_restart):
        print(
            "soak: DATABASE_URL is set, so the database server is not this script's to restart."
            ' Give --restart-command "…" (a shell command that stops and starts that server,'
            " e.g. 'sudo systemctl restart postgresql') or --no-restart to soak without it.",
            file=sys.stderr,
        )
        return 2
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    load_at_start = loadavg()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    app_log = RESULTS_DIR / f"soak-{stamp}-app.log"
    db: Database | None = None
    server: Server | None = None
    users: list[dict] = []
    threads: list[threading.Thread] = []
    shared: Shared | None = None
    seen_workers: dict[int, float] = {}
    monitor_stop = threading.Event()

    def on_sigterm(_signum, _frame):
        """SIGTERM stops the run like Ctrl-C (the finally clause cleans up)."""
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        db = provide_database(args.instance, SOAK_DB)
        if db.cluster is None and not (args.restart_command or args.no_restart):
            raise SystemExit("soak: no private cluster to restart")
        flask_cli(db, "db", "upgrade")
        flask_cli(db, "demo", "load", "--size", args.demo_size, "--if-empty")
        facts = read_map(db)
        rng = random.Random(args.seed)
        microgrids = pick_microgrids(facts, args.phones, rng)
        xmin, ymin, xmax, ymax = facts.district.bounds
        bbox = (xmin - 0.02, ymin - 0.02, xmax + 0.02, ymax + 0.02)

        # Every phone logs in from 127.0.0.1 here, where real phones have addresses of their
        # own: lift the per-address login limit for this server (an explicit setting wins).
        os.environ.setdefault("GRIDGOV_LOGIN_RATE_LIMIT_PER_IP", SOAK_LOGIN_LIMIT)
        server = start_server("app", "wsgi:app", db, args, app_log)
        wait_until_ready(server, "/healthz")
        log(f"creating {args.phones} worker users and their assignments")
        users = create_workers(server.port, args, stamp.replace("-", ""), microgrids)
        log("logging in the phones and the supervisors")
        for user in users:
            user["token"] = login(server.port, user["username"], args.password)
        supervisor_tokens = {
            name: login(server.port, name, DEMO_PASSWORD) for name in SUPERVISOR_USERS
        }

        t0 = time.monotonic()
        recorder = Recorder(t0)
        shared = Shared(args, server.port, recorder, deadline=args.duration)
        shared.stamp = stamp
        shared.worker_ids = {user["id"] for user in users}
        workers_at_start = sorted(process_tree(server.proc.pid)[1:])
        for pid in workers_at_start:
            seen_workers[pid] = 0.0
        phones = [Phone(shared, i, user, microgrids[i], bbox) for i, user in enumerate(users)]
        supervisors = [
            Supervisor(
                shared, i, SUPERVISOR_USERS[i % 2], supervisor_tokens[SUPERVISOR_USERS[i % 2]]
            )
            for i in range(args.supervisors)
        ]
        mode = (
            "none"
            if args.no_restart
            else (
                "command"
                if args.restart_command
                else f"private cluster, pg_ctl stop -m {args.stop_mode}"
            )
        )
        restart = Restart(planned_at=args.restart_at_s, mode=mode)
        threads = [
            threading.Thread(target=c.run, name=getattr(c, "who", "c"), daemon=True)
            for c in (*phones, *supervisors)
        ]
        if mode != "none":
            threads.append(
                threading.Thread(
                    target=restart_database,
                    args=(db, args, recorder, restart, shared.stop),
                    name="restart",
                    daemon=True,
                )
            )
        monitor = threading.Thread(
            target=watch_workers,
            args=(server.proc.pid, monitor_stop, seen_workers, t0),
            daemon=True,
        )
        monitor.start()
        log(
            f"soaking for {args.duration:g} s"
            + ("" if mode == "none" else f"; database restart at {args.restart_at_s:.1f} s")
        )
        for thread in threads:
            thread.start()
        for thread in threads:
            # Bounded: clients stop at the deadline (their last request times out after
            # --timeout); the restart thread is bounded by pg_ctl's and the probe's limits.
            while thread.is_alive():
                thread.join(timeout=0.5)
        elapsed = recorder.now()
        monitor_stop.set()
        monitor.join(timeout=5)
        workers_at_end = sorted(process_tree(server.proc.pid)[1:])
        master_alive = server.alive()
        if not args.keep_users:
            failed = deactivate_workers(server.port, users)
            log(f"deactivated the run's worker users ({failed} failed)")
        server.stop()  # waits for requests still in flight, so their commits are in
        log("reconciling with the database")
        rec = reconcile(db, shared.reports, shared.patrols)
        results = analyse(recorder.records, restart)
    except KeyboardInterrupt:
        if shared is not None:
            shared.stop.set()
        raise
    finally:
        monitor_stop.set()
        if shared is not None:
            shared.stop.set()
        if server is not None:
            server.stop()
        if db is not None and db.cluster is not None:
            if db.started_cluster:
                log("stopping the soak's private cluster (this run started it)")
                with contextlib.suppress(Exception):
                    db.cluster.stop()
            elif not db.cluster.is_running():
                db.cluster.start()  # it was running before the run: leave it so

    reports = shared.reports
    report = {
        "timestamp": stamp,
        "nproc": cpu_count(),
        "loadavg_at_start": load_at_start,
        "port": server.port,
        "config": {
            "phones": args.phones,
            "supervisors": args.supervisors,
            "duration_s": args.duration,
            "elapsed_s": round(elapsed, 2),
            "workers": args.workers,
            "timeout_s": args.timeout,
            "think_s": [args.think_min, args.think_max],
            "seed": args.seed,
            "restart_at_s": args.restart_at_s,
            "down_seconds": args.down_seconds,
            "restart_command": args.restart_command,
            "stop_mode": args.stop_mode,
            "drain_s": args.drain,
        },
        "database": {
            "url": db.shown_url,
            "where": db.where,
            "area_counts": facts.area_counts,
        },
        "restart": restart.__dict__,
        "results": results,
        "reconcile": rec,
        "reports": {
            "made": len(reports),
            "single": sum(1 for r in reports if r.via == "single"),
            "batched": sum(1 for r in reports if r.via == "batch"),
            "acked_in_drain": sum(
                1 for r in reports if r.acked_at is not None and r.acked_at > args.duration
            ),
        },
        "app": {
            "master_pid": server.proc.pid,
            "master_alive_at_end": master_alive,
            "workers_at_start": workers_at_start,
            "workers_at_end": workers_at_end,
            "recycled_workers": {
                str(pid): t for pid, t in seen_workers.items() if pid not in workers_at_start
            },
        },
        "app_log_path": str(app_log.relative_to(PROJECT_ROOT)),
        "app_log": scan_app_log(app_log),
        "supervisor_outcomes": dict(sum((s.outcomes for s in supervisors), Counter())),
    }
    report["failures"] = failures(report)
    print_report(report)
    out = RESULTS_DIR / f"soak-{stamp}.json"
    details = {
        **report,
        "report_log": [r.summary() for r in reports],
        "requests": [
            [
                r.kind,
                r.who,
                round(r.sent, 4),
                round(r.received, 4),
                r.status,
                r.error,
                r.error_code,
                r.retry_after,
                r.retry,
            ]
            for r in recorder.records
        ],
    }
    out.write_text(json.dumps(details, ensure_ascii=False, default=str) + "\n")
    print(f"results: {out.relative_to(PROJECT_ROOT)}")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("soak: interrupted (server and cluster stopped)", file=sys.stderr)
        sys.exit(130)
