"""What the benchmarks share: the benchmark database, gunicorn servers, CPU probes, timing.

bench/intake.py, tiles.py, boundaries.py and soak.py import this rather than each other. A
benchmark measures the service beside the raw PostGIS statement doing the same work; this
module provides the database both run on (`provide_database`: the private cluster or
DATABASE_URL's server), the app served by gunicorn on a free 127.0.0.1 port (`start_server`,
`wait_until_ready`, `login`), the CPU time of a server and of its database backends
(`CpuProbe`, `cpu_delta`) and the figures (`percentile`, `timed`). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from config import normalize_database_url  # noqa: E402
from gridgov_tools import embedded_pg  # noqa: E402

BENCH_DB = "gridgov_bench"
HOST = "127.0.0.1"  # the only address a benchmark ever sends traffic to
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
MIN_MICROGRIDS = 10_000  # fewer means the small demo is loaded, not the district one
LEVELS = ("district", "town", "community", "grid", "microgrid")
SERVER_START_TIMEOUT = 90.0


# --------------------------------------------------------------------------- small helpers


def log(msg: str, tag: str = "bench") -> None:
    """Progress line on stderr (stdout keeps the figures)."""
    print(f"[{tag}] {msg}", file=sys.stderr, flush=True)


def timed(fn) -> tuple[float, object]:
    """Run fn() and return (milliseconds, result)."""
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_count() -> int:
    """CPUs this process may run on (what `nproc` prints)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return float(sum(fields[:8]) - idle), float(sum(fields[:8]))


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(pct / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds a process has run (all its threads, from schedstat), None when it is gone."""
    total_ns, found = 0, False
    with contextlib.suppress(OSError):
        for task in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total_ns += int(Path(task.path, "schedstat").read_text().split()[0])
                found = True
    if found:
        return total_ns / 1e9
    fields = _proc_stat(pid)  # no schedstat: user + system ticks
    return (int(fields[11]) + int(fields[12])) / CLK_TCK if fields else None


def process_tree(root: int) -> list[int]:
    """root and its children (gunicorn master and workers)."""
    pids = [root]
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                fields = _proc_stat(int(entry.name))
                if fields and int(fields[1]) == root:
                    pids.append(int(entry.name))
    return pids


class CpuProbe:
    """CPU seconds used so far by a server's processes and by the benchmark DB's backends."""

    def __init__(self, db_url: str, local_db: bool) -> None:
        """Keep one monitoring connection (its own backend is excluded)."""
        self.conn = psycopg.connect(db_url, autocommit=True) if local_db else None

    def backends(self, application_name: str) -> list[int]:
        """PIDs of the local PostgreSQL backends with this application_name (one server's)."""
        if self.conn is None:
            return []
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchall()
        return [pid for (pid,) in rows if _is_postgres(pid)]

    def sample(self, server: Server) -> dict[str, dict[int, float]]:
        """{component: {pid: cpu seconds}} for app (gunicorn) and db (its backends)."""
        pids = {"app": process_tree(server.proc.pid)}
        if self.conn is not None:  # a remote server's backends cannot be measured from here
            pids["db"] = self.backends(server.application_name) if server.application_name else []
        sample: dict[str, dict[int, float]] = {}
        for part, part_pids in pids.items():
            cpus = {pid: process_cpu_s(pid) for pid in part_pids}
            sample[part] = {pid: cpu for pid, cpu in cpus.items() if cpu is not None}
        return sample

    def close(self) -> None:
        """Close the monitoring connection."""
        if self.conn is not None:
            self.conn.close()


def _is_postgres(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip().startswith("postgres")
    except OSError:
        return False


def cpu_delta(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> tuple[dict[str, float], list[str]]:
    """CPU seconds per component between two samples, and the parts that lost a process."""
    # A process new in `after` counts fully; one that vanished took its CPU time with it, so
    # that part's figure is only a lower bound (the report says so).
    delta = {
        part: sum(cpu - before[part].get(pid, 0.0) for pid, cpu in after[part].items())
        for part in after
    }
    incomplete = [part for part in after if set(before[part]) - set(after[part])]
    return delta, incomplete


# --------------------------------------------------------------------------- database


@dataclass
class Database:
    """Where the benchmark database lives and how it was provided."""

    url: str  # SQLAlchemy URL (postgresql+psycopg://…/gridgov_bench)
    where: str
    cluster: embedded_pg.EmbeddedCluster | None = None
    started_cluster: bool = False

    @property
    def is_local(self) -> bool:
        """Whether the server runs on this machine (so its backends' CPU can be read)."""
        return self.cluster is not None or urlsplit(self.url).hostname in (
            "127.0.0.1",
            "localhost",
            "::1",
            None,
        )

    @property
    def libpq_url(self) -> str:
        """The same URL for psycopg/libpq."""
        return embedded_pg.libpq_url(self.url)

    @property
    def shown_url(self) -> str:
        """The URL with its password hidden, for reports."""
        return embedded_pg.redact(self.url)


def _with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def provide_database(instance_dir: Path, name: str = BENCH_DB) -> Database:
    """Create database `name` with PostGIS on DATABASE_URL's server or the private cluster."""
    env_url = os.environ.get("DATABASE_URL", "").strip()
    if env_url:
        server_url = normalize_database_url(env_url)
        with psycopg.connect(
            embedded_pg.libpq_url(server_url), autocommit=True, connect_timeout=10
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                log(f"creating database {name} on DATABASE_URL's server")
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = _with_dbname(server_url, name)
        with psycopg.connect(embedded_pg.libpq_url(url), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        return Database(url=url, where="DATABASE_URL's server")
    cluster = embedded_pg.EmbeddedCluster(instance_dir)
    embedded_pg.ensure_binaries()
    started = cluster.start()  # False when it was already running: then it is left running
    db = Database(url="", where="", cluster=cluster, started_cluster=started)
    cluster.ensure_database(name, postgis=True)
    db.url = cluster.url(name)
    db.where = f"private cluster {cluster.data_dir} ({'started' if started else 'already running'})"
    return db


def flask_cli(db: Database, *args: str) -> None:
    """Run `flask --app wsgi …` against the benchmark database (output to stderr)."""
    env = dict(os.environ, DATABASE_URL=db.url, FLASK_APP="wsgi")
    cmd = [sys.executable, "-m", "flask", "--app", "wsgi", *args]
    log("running: flask --app wsgi " + " ".join(args))
    proc = subprocess.run(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=sys.stderr, stderr=sys.stderr, timeout=900
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench: `flask {' '.join(args)}` failed (exit {proc.returncode})")


@dataclass
class DbFacts:
    """What the header and the point generator need from the database."""

    server_version: str
    settings: dict[str, str]
    area_counts: dict[str, int]
    district_wkb: bytes
    incidents_before: int


def read_facts(db: Database) -> DbFacts:
    """Server version, durability settings, area counts and the district boundary."""
    with psycopg.connect(db.libpq_url, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        settings = {
            name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]
            for name in ("synchronous_commit", "fsync", "wal_sync_method", "full_page_writes")
        }
        counts = dict(
            conn.execute(
                "SELECT level, count(*) FROM area WHERE retired_at IS NULL GROUP BY level"
            ).fetchall()
        )
        row = conn.execute(
            "SELECT ST_AsBinary(boundary) FROM area"
            " WHERE level = 'district' AND retired_at IS NULL ORDER BY code LIMIT 1"
        ).fetchone()
        incidents = conn.execute("SELECT count(*) FROM incident").fetchone()[0]
    if row is None:
        raise SystemExit("bench: no district area in gridgov_bench")
    return DbFacts(
        server_version=version,
        settings=settings,
        area_counts={level: counts.get(level, 0) for level in LEVELS},
        district_wkb=bytes(row[0]),
        incidents_before=incidents,
    )


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A gunicorn master process we started (and therefore stop)."""

    name: str
    port: int
    proc: subprocess.Popen
    log_path: Path
    application_name: str | None = None  # set on the server's database connections

    def alive(self) -> bool:
        """Whether the master is still running."""
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the master (it stops its workers), SIGKILL its process group if it lingers."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            # Still unreaped, so the group (its own session, started by us) is surely ours.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        log(f"stopped {self.name} server (pid {self.proc.pid})")


def with_application_name(url: str, application_name: str) -> str:
    """The URL with libpq's application_name set (SQLAlchemy passes it on to psycopg)."""
    parts = urlsplit(url)
    query = "&".join(
        q for q in (parts.query, urlencode({"application_name": application_name})) if q
    )
    return urlunsplit(parts._replace(query=query))


def start_server(
    name: str,
    app: str,
    db: Database,
    args: argparse.Namespace,
    log_path: Path,
    application_name: str | None = None,
    config: str | None = None,
) -> Server:
    """Start gunicorn for `app` on a free 127.0.0.1 port (config: -c; None: gunicorn's default)."""
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "--bind", f"{HOST}:{port}"]
    if config:
        cmd += ["--config", config]
    cmd += ["--workers", str(args.workers), "--worker-class", args.worker_class]
    if args.worker_class == "gthread":
        cmd += ["--threads", "1"]
    cmd += ["--log-level", "warning", "--graceful-timeout", "10", app]
    url = with_application_name(db.url, application_name) if application_name else db.url
    env = dict(os.environ, DATABASE_URL=url)
    env.pop("GRIDGOV_WORKERS", None)
    log_file = log_path.open("w")
    proc = subprocess.Popen(
        cmd,
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log_file.close()
    log(f"started {name} server: gunicorn {app} on {HOST}:{port} (pid {proc.pid})")
    return Server(
        name=name, port=port, proc=proc, log_path=log_path, application_name=application_name
    )


def request_once(
    port: int, method: str, path: str, body: bytes | None = None, headers=None
) -> tuple[int, bytes]:
    """One request to 127.0.0.1:port on a fresh connection; (status, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_until_ready(server: Server, path: str, headers=None) -> None:
    """Poll `path` until it answers 200 (bounded by SERVER_START_TIMEOUT)."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if not server.alive():
            raise SystemExit(
                f"bench: {server.name} server exited (code {server.proc.returncode});"
                f" see {server.log_path}"
            )
        try:
            status, body = request_once(server.port, "GET", path, headers=headers)
            if status == 200:
                return
            last = f"HTTP {status}: {body[:200]!r}"
        except OSError as error:
            last = repr(error)
        time.sleep(0.2)
    raise SystemExit(f"bench: {server.name} server not ready after 90 s ({last})")


def login(port: int, username: str, password: str) -> str:
    """A bearer token from POST /api/v1/auth/login."""
    body = json.dumps({"username": username, "password": password}).encode()
    status, answer = request_once(
        port, "POST", "/api/v1/auth/login", body, {"Content-Type": "application/json"}
    )
    if status != 200:
        raise SystemExit(f"bench: login as {username} failed: HTTP {status} {answer[:300]!r}")
    return json.loads(answer)["access_token"]
