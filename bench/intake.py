"""Intake benchmark: GET /api/v1/route against a raw psycopg baseline, and POST /api/v1/incidents.

Run from the project root (``bench/run`` does the same after making sure the venv exists)::

    .venv/bin/python bench/intake.py [--duration 15] [--concurrency 8] [--workers 2]

It sets up a database ``gridgov_bench`` (on the private cluster, or on DATABASE_URL's server)
with the district-size demo, serves the real app and bench/raw_route_app.py with gunicorn on
free 127.0.0.1 ports, alternates the two route endpoints (raw, real, raw, real), then measures
incident intake with durable commits. Figures go to stdout and bench/results/intake-<ts>.json.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import psycopg  # noqa: E402
import shapely  # noqa: E402

from bench.harness import (  # noqa: E402
    BENCH_DB,
    CLK_TCK,
    HOST,
    MIN_MICROGRIDS,
    RESULTS_DIR,
    CpuProbe,
    Database,
    Server,
    cpu_count,
    cpu_delta,
    cpu_model,
    flask_cli,
    loadavg,
    log,
    login,
    machine_cpu_times,
    percentile,
    provide_database,
    read_facts,
    start_server,
    wait_until_ready,
)

INSIDE_SHARE = 0.9
P99_TARGET_MS = 20.0
RATIO_TARGET = 0.9
MAX_REQUESTS_PER_SECOND = 100_000  # hard cap on the requests of one phase (loops bounded by count)
GUNICORN_CONFIGS = {  # --gunicorn-config: gunicorn's -c for both servers
    "bench": str(PROJECT_ROOT / "bench" / "gunicorn_bench.py"),
    "project": str(PROJECT_ROOT / "gunicorn.conf.py"),
}


# --------------------------------------------------------------------------- points


@dataclass
class Points:
    """A fixed, seeded sequence of test points (lon, lat)."""

    route: list[tuple[float, float]]  # 90 % inside the district, 10 % outside it in its bbox
    inside: list[tuple[float, float]]  # inside the district only (incident reports)
    bbox: tuple[float, float, float, float]


def make_points(district_wkb: bytes, count: int, seed: int) -> Points:
    """Uniform points in the district's bounding box, INSIDE_SHARE of them inside the polygon."""
    district = shapely.from_wkb(district_wkb)
    shapely.prepare(district)
    xmin, ymin, xmax, ymax = district.bounds
    rng = random.Random(seed)
    inside: list[tuple[float, float]] = []
    outside: list[tuple[float, float]] = []
    for _ in range(1000):  # bounded: each pass draws 10,000 candidates
        if len(inside) >= count and len(outside) >= count // 5 + 1:
            break
        xs = [rng.uniform(xmin, xmax) for _ in range(10_000)]
        ys = [rng.uniform(ymin, ymax) for _ in range(10_000)]
        hits = shapely.contains_xy(district, xs, ys)
        for x, y, hit in zip(xs, ys, hits, strict=True):
            (inside if hit else outside).append((x, y))
    inside_iter, outside_iter = itertools.cycle(inside), itertools.cycle(outside)
    route = [
        next(inside_iter) if rng.random() < INSIDE_SHARE else next(outside_iter)
        for _ in range(count)
    ]
    return Points(route=route, inside=inside[:count], bbox=(xmin, ymin, xmax, ymax))


def method_mix(db: Database, points: list[tuple[float, float]]) -> dict[str, int]:
    """How the route SQL classifies a sample of the points (covered, nearest, unrouted)."""
    from bench.raw_route_app import MAX_NEAREST_M, NEAREST_CANDIDATES, ROUTE_SQL

    mix: Counter[str] = Counter()
    with psycopg.connect(db.libpq_url, autocommit=True) as conn:
        for lon, lat in points:
            params = {"lon": lon, "lat": lat, "max_m": MAX_NEAREST_M}
            row = conn.execute(ROUTE_SQL, {**params, "candidates": NEAREST_CANDIDATES}).fetchone()
            mix[row[0] if row else "unrouted"] += 1
    return dict(mix)


# --------------------------------------------------------------------------- load generator


@dataclass
class PhaseResult:
    """The figures of one measured phase."""

    name: str
    round: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    statuses: dict[str, int]
    new_connections: int
    client_cpu_pct: float  # of one core, this whole process
    machine_cpu_pct: float  # of all cores, whole machine
    others_cpu_pct: float  # of all cores: busy, but not the server, its backends or the client
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)  # app, db, client
    cpu_incomplete: list[str] = field(default_factory=list)  # parts that lost a process
    error_samples: list[str] = field(default_factory=list)


def run_phase(
    name: str,
    port: int,
    make_request,
    *,
    concurrency: int,
    duration: float,
    ok_status: int,
    round_no: int = 0,
    stop: threading.Event,
    probe: CpuProbe | None = None,
    server: Server | None = None,
) -> PhaseResult:
    """Drive `concurrency` client threads at 127.0.0.1:port for `duration` seconds."""
    counter = itertools.count()
    max_requests = int(MAX_REQUESTS_PER_SECOND * duration)
    per_thread: list[list[tuple[float, int | str]]] = [[] for _ in range(concurrency)]
    connections = [0] * concurrency
    errors: list[str] = []
    barrier = threading.Barrier(concurrency + 1)
    deadline_box: list[float] = []

    def worker(slot: int) -> None:
        """One client thread: requests back to back until the deadline."""
        samples = per_thread[slot]
        conn: http.client.HTTPConnection | None = None
        barrier.wait()
        deadline = deadline_box[0]
        perf = time.perf_counter
        while not stop.is_set():
            i = next(counter)
            if i >= max_requests:
                break
            method, path, body, headers = make_request(i)
            start = perf()
            if start >= deadline:
                break
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, port, timeout=30)
                    connections[slot] += 1
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status: int | str = resp.status
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as error:
                status = type(error).__name__
                if len(errors) < 5:
                    errors.append(repr(error))
                if conn is not None:
                    conn.close()
                    conn = None
                time.sleep(0.01)  # do not spin on a dead server
            samples.append((perf() - start, status))
        if conn is not None:
            conn.close()

    threads = [
        threading.Thread(target=worker, args=(slot,), daemon=True) for slot in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    probe = probe if server is not None else None
    cpu_before = probe.sample(server) if probe else None
    busy0, total0 = machine_cpu_times()
    cpu0 = time.process_time()
    started = time.perf_counter()
    deadline_box.append(started + duration)
    barrier.wait()
    for thread in threads:
        # Bounded: a worker stops at the deadline, its last request times out after 30 s.
        while thread.is_alive():
            thread.join(timeout=0.5)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    busy1, total1 = machine_cpu_times()
    cpu_parts, cpu_incomplete = cpu_delta(cpu_before, probe.sample(server)) if probe else ({}, [])

    samples = [s for thread_samples in per_thread for s in thread_samples]
    latencies = sorted(lat for lat, _ in samples)
    statuses = Counter(str(status) for _, status in samples)
    n_errors = sum(count for status, count in statuses.items() if status != str(ok_status))
    machine = 100 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else float("nan")
    ours = sum(cpu_parts.values()) + cpu
    others = 100 * ((busy1 - busy0) / CLK_TCK - ours) / (elapsed * cpu_count()) if probe else 0.0
    return PhaseResult(
        name=name,
        round=round_no,
        duration_s=round(elapsed, 3),
        requests=len(samples),
        rps=len(samples) / elapsed if elapsed else 0.0,
        p50_ms=percentile(latencies, 50) * 1000,
        p90_ms=percentile(latencies, 90) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        max_ms=(latencies[-1] * 1000) if latencies else float("nan"),
        errors=n_errors,
        statuses=dict(sorted(statuses.items())),
        new_connections=sum(connections),
        client_cpu_pct=100 * cpu / elapsed if elapsed else 0.0,
        machine_cpu_pct=machine,
        others_cpu_pct=max(0.0, others),
        cpu_ms_per_request={
            part: round(1000 * seconds / len(samples), 3) if samples else float("nan")
            for part, seconds in {**cpu_parts, "client": cpu}.items()
        },
        cpu_incomplete=cpu_incomplete,
        error_samples=errors,
    )


def route_requests(points: list[tuple[float, float]], path: str, headers: dict[str, str]):
    """Request factory: GET path?lon=&lat= over the fixed point sequence."""
    paths = [f"{path}?{urlencode({'lon': f'{x:.7f}', 'lat': f'{y:.7f}'})}" for x, y in points]
    n = len(paths)

    def make(i: int):
        """The i-th request: (method, path, body, headers)."""
        return "GET", paths[i % n], None, headers

    return make


def incident_requests(points: list[tuple[float, float]], headers: dict[str, str]):
    """Request factory: POST /api/v1/incidents, a new uuid4 client_id each time."""
    n = len(points)
    occurred_at = (datetime.now(UTC) - timedelta(minutes=10)).isoformat(timespec="seconds")

    def make(i: int):
        """The i-th report, with a fresh client_id."""
        lon, lat = points[i % n]
        body = {
            "client_id": str(uuid.uuid4()),
            "category": "env_garbage",
            "description": "小区门口暴露垃圾 (bench)",
            "location": {"lon": round(lon, 7), "lat": round(lat, 7), "accuracy_m": 8},
            "occurred_at": occurred_at,
        }
        headers_now = {**headers, "Content-Type": "application/json"}
        return "POST", "/api/v1/incidents", json.dumps(body).encode(), headers_now

    return make


# --------------------------------------------------------------------------- report


def mean_result(name: str, results: list[PhaseResult]) -> dict:
    """Mean of the rounds' figures (requests and errors summed)."""
    n = len(results)
    statuses: Counter[str] = Counter()
    for r in results:
        statuses.update(r.statuses)
    return {
        "name": name,
        "rounds": n,
        "requests": sum(r.requests for r in results),
        "rps": sum(r.rps for r in results) / n,
        "p50_ms": sum(r.p50_ms for r in results) / n,
        "p90_ms": sum(r.p90_ms for r in results) / n,
        "p99_ms": sum(r.p99_ms for r in results) / n,
        "max_ms": max(r.max_ms for r in results),
        "errors": sum(r.errors for r in results),
        "statuses": dict(sorted(statuses.items())),
        "client_cpu_pct": sum(r.client_cpu_pct for r in results) / n,
        "machine_cpu_pct": sum(r.machine_cpu_pct for r in results) / n,
        "others_cpu_pct": sum(r.others_cpu_pct for r in results) / n,
        "cpu_incomplete": sorted({part for r in results for part in r.cpu_incomplete}),
        "cpu_ms_per_request": {
            part: sum(r.cpu_ms_per_request.get(part, float("nan")) for r in results) / n
            for part in results[0].cpu_ms_per_request
        },
    }


ROW = "{:<24} {:>5} {:>8} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>7} {:>6}  {}"


def row(label: str, rnd: str, r: dict) -> str:
    """One table line."""
    return ROW.format(
        label,
        rnd,
        f"{r['rps']:.1f}",
        f"{r['p50_ms']:.2f}",
        f"{r['p90_ms']:.2f}",
        f"{r['p99_ms']:.2f}",
        f"{r['max_ms']:.1f}",
        r["errors"],
        f"{r['client_cpu_pct']:.0f}%",
        f"{r['machine_cpu_pct']:.0f}%",
        f"{r['others_cpu_pct']:.0f}%",
        cpu_split(r.get("cpu_ms_per_request") or {})
        + (
            f" (lower bound: a {'+'.join(r['cpu_incomplete'])} process exited)"
            if r.get("cpu_incomplete")
            else ""
        ),
    )


def cpu_split(cpu: dict[str, float]) -> str:
    """'app/db/client' CPU milliseconds per request."""
    return "/".join(
        "-" if cpu.get(part) is None else f"{cpu[part]:.2f}" for part in ("app", "db", "client")
    )


def header_row() -> str:
    """The table's column titles."""
    return ROW.format(
        "endpoint", "round", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors",
        "client", "machine", "others", "CPU ms/req app/db/client",
    )  # fmt: skip


def build_report(
    args, db, facts, points, mix, route_results, incident_result, setup_s, total_s, stamp, load
) -> dict:
    """Everything the run measured, as one JSON-able dict."""
    by_name = {name: [r for r in route_results if r.name == name] for name in ("raw", "real")}
    means = {name: mean_result(name, results) for name, results in by_name.items()}
    ratio = means["real"]["rps"] / means["raw"]["rps"] if means["raw"]["rps"] else float("nan")
    keep_alive = args.worker_class == "gthread"
    return {
        "timestamp": stamp,
        "machine": {
            "nproc": cpu_count(),
            "cpu_model": cpu_model(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "loadavg_at_start": load,
        },
        "database": {
            "where": db.where,
            "url": db.shown_url,
            "server_version": facts.server_version,
            "settings": facts.settings,
            "area_counts": facts.area_counts,
            "incidents_before": facts.incidents_before,
        },
        "config": {
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "workers": args.workers,
            "worker_class": args.worker_class,
            "gunicorn_config": GUNICORN_CONFIGS[args.gunicorn_config],
            "threads_per_worker": 1 if keep_alive else None,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "seed": args.seed,
            "points": args.points,
            "inside_share": INSIDE_SHARE,
            "bbox": points.bbox,
            "client": (
                f"{args.concurrency} Python threads, http.client.HTTPConnection; "
                + (
                    "keep-alive connections (gthread workers keep them open)"
                    if keep_alive
                    else "a new TCP connection per request (sync workers close after each"
                    " response), connect time included"
                )
            ),
            "aggregate": "mean of the rounds (req/s, p50, p90, p99 averaged over rounds)",
        },
        "route_method_mix_first_500": mix,
        "route": {
            "rounds": [asdict(r) for r in route_results],
            "mean": means,
            "ratio_real_raw_rps": ratio,
            "ratio_target": RATIO_TARGET,
            "ratio_ok": ratio >= RATIO_TARGET,
            "p99_target_ms": P99_TARGET_MS,
            "p99_ok": {name: m["p99_ms"] < P99_TARGET_MS for name, m in means.items()},
        },
        "incidents": None
        if incident_result is None
        else {
            **asdict(incident_result),
            "all_201": incident_result.statuses == {"201": incident_result.requests},
        },
        "setup_s": round(setup_s, 1),
        "total_s": round(total_s, 1),
    }


def print_report(rep: dict) -> None:
    """The table on stdout."""
    m, d, c = rep["machine"], rep["database"], rep["config"]
    counts = ", ".join(f"{level} {n:,}" for level, n in d["area_counts"].items())
    print(
        f"machine: nproc {m['nproc']}, {m['cpu_model']} | PostgreSQL {d['server_version']}"
        f" | areas: {counts} | load average at start {m['loadavg_at_start']}"
    )
    print(
        f"database: {d['url']} ({d['where']}), {d['incidents_before']:,} incidents before the run"
    )
    threads = " --threads 1" if c["threads_per_worker"] else ""
    conf = Path(c["gunicorn_config"]).relative_to(PROJECT_ROOT)
    print(
        f"servers: gunicorn -c {conf} --workers {c['workers']} --worker-class"
        f" {c['worker_class']}{threads}, no access log, both the same"
    )
    print(f"client: {c['client']}")
    print(
        f"load: concurrency {c['concurrency']}, {c['duration_s']:g} s per phase after"
        f" {c['warmup_s']:g} s warm-up; points seed {c['seed']}, {c['inside_share']:.0%} inside"
        " the district, the rest in its bbox outside it, same sequence for every phase"
    )
    mix = rep["route_method_mix_first_500"]
    print("route SQL on the first 500 points: " + ", ".join(f"{k} {v}" for k, v in mix.items()))
    print(
        "columns: client = this load generator's CPU (% of one core); machine = all CPUs busy;"
        " others = CPU busy with anything else (background noise, % of all CPUs);"
        f" CPU ms/req = gunicorn master+workers / PostgreSQL backends of {BENCH_DB} /"
        " load generator"
    )
    r = rep["route"]
    print(f"\n(a) GET route, rounds alternate raw/real; summary = {c['aggregate']}")
    print(header_row())
    labels = {"raw": "raw psycopg /route", "real": "real /api/v1/route"}
    for res in r["rounds"]:
        print(row(labels[res["name"]], str(res["round"]), res))
    for name in ("raw", "real"):
        print(row(labels[name], "mean", r["mean"][name]))
    for res in r["rounds"]:
        if res["error_samples"]:
            print(f"errors in {res['name']} round {res['round']}: {res['error_samples']}")
    ok = "OK" if r["ratio_ok"] else "BELOW TARGET"
    print(f"throughput ratio real/raw: {r['ratio_real_raw_rps']:.3f} (target >= 0.9: {ok})")
    print(
        "p99 < 20 ms: "
        + ", ".join(
            f"{name} {'yes' if r['p99_ok'][name] else 'NO'} ({r['mean'][name]['p99_ms']:.2f} ms)"
            for name in ("raw", "real")
        )
    )
    inc = rep["incidents"]
    if inc is None:
        return
    s = d["settings"]
    print(
        "\n(b) POST /api/v1/incidents, durable commits:"
        f" synchronous_commit={s['synchronous_commit']} fsync={s['fsync']}"
        f" (wal_sync_method={s['wal_sync_method']},"
        f" full_page_writes={s['full_page_writes']}); new uuid4 client_id per request"
    )
    print(header_row())
    print(row("POST /api/v1/incidents", "1", inc))
    verdict = "all 201" if inc["all_201"] else "NOT all 201"
    print(f"statuses: {inc['statuses']} ({verdict})")
    if inc["error_samples"]:
        print(f"error samples: {inc['error_samples']}")


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measured phase")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (in flight)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument(
        "--worker-class",
        choices=("sync", "gthread"),
        default="sync",
        help="gunicorn worker class for both servers (gthread runs with --threads 1 and"
        " keeps connections alive; sync closes them after each response)",
    )
    parser.add_argument(
        "--gunicorn-config",
        choices=sorted(GUNICORN_CONFIGS),
        default="bench",
        help="bench: gunicorn defaults + these options (no worker recycling); project: the"
        " project's gunicorn.conf.py (max_requests recycling etc.), these options on top",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per server")
    parser.add_argument("--rounds", type=int, default=2, help="alternating route rounds")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the point sequence")
    parser.add_argument("--points", type=int, default=50_000, help="length of the sequence")
    parser.add_argument("--no-incidents", action="store_true", help="skip part (b)")
    parser.add_argument(
        "--instance",
        type=Path,
        default=Path(os.environ.get("GRIDGOV_INSTANCE_DIR", PROJECT_ROOT / "instance")),
        help="instance dir of the private cluster (when DATABASE_URL is not set)",
    )
    args = parser.parse_args(argv)
    if not (0 < args.duration <= 600 and 0 < args.warmup <= 60 and 1 <= args.concurrency <= 512):
        parser.error("--duration in (0, 600], --warmup in (0, 60], --concurrency in [1, 512]")
    if not (1 <= args.workers <= 64 and 1 <= args.rounds <= 20 and args.points >= 100):
        parser.error("--workers in [1, 64], --rounds in [1, 20], --points >= 100")
    return args


def main(argv=None) -> int:
    """Set up, measure, print and save; always stop what was started."""
    args = parse_args(argv)
    load_at_start = loadavg()
    t_start = time.monotonic()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    servers: list[Server] = []
    db: Database | None = None
    probe: CpuProbe | None = None

    def on_sigterm(_signum, _frame):
        """SIGTERM behaves like Ctrl-C, so the finally clause stops the servers."""
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        db = provide_database(args.instance)
        flask_cli(db, "db", "upgrade")
        flask_cli(db, "demo", "load", "--size", "district", "--if-empty")
        facts = read_facts(db)
        if facts.area_counts["microgrid"] < MIN_MICROGRIDS:
            raise SystemExit(
                f"bench: {BENCH_DB} holds {facts.area_counts['microgrid']} micro-grids (the small"
                f" demo?); drop the database {BENCH_DB} and run again"
            )
        points = make_points(facts.district_wkb, args.points, args.seed)
        mix = method_mix(db, points.route[:500])
        setup_s = time.monotonic() - t_start

        from config import Config
        from gridgov.services.demo import DEMO_PASSWORD

        logs = RESULTS_DIR / f"intake-{stamp}"
        tag = f"bench-intake-{os.getpid()}"
        for name, app in (("raw", "bench.raw_route_app:app"), ("real", "wsgi:app")):
            log_path = Path(f"{logs}-{name}.log")
            conf = GUNICORN_CONFIGS[args.gunicorn_config]
            servers.append(start_server(name, app, db, args, log_path, f"{tag}-{name}", conf))
        raw, real = servers
        wait_until_ready(real, "/healthz")
        wait_until_ready(raw, "/route?lon=121.5&lat=29.8")
        probe = CpuProbe(db.libpq_url, db.is_local)
        auth: dict[str, str] = {}
        token_valid_until = [0.0]

        def fresh_token(need_s: float) -> None:
            """Make sure `auth` holds a token valid for need_s more seconds."""
            # Access tokens expire (ACCESS_TOKEN_MINUTES) and logins are rate-limited
            # (LOGIN_RATE_LIMIT_PER_USERNAME): log in only when the token would not last.
            if time.monotonic() + need_s + 60 < token_valid_until[0]:
                return
            token = login(real.port, "grid_worker", DEMO_PASSWORD)
            auth["Authorization"] = f"Bearer {token}"
            token_valid_until[0] = time.monotonic() + 60 * Config.ACCESS_TOKEN_MINUTES

        # Both servers get the same requests (the raw one ignores the token).
        endpoints = {
            "raw": (raw, route_requests(points.route, "/route", auth)),
            "real": (real, route_requests(points.route, "/api/v1/route", auth)),
        }
        phase = dict(concurrency=args.concurrency, ok_status=200, stop=stop, probe=probe)
        for name, (server, make) in endpoints.items():
            log(f"warming up {name} for {args.warmup:g} s")
            fresh_token(args.warmup)
            run_phase(name, server.port, make, duration=args.warmup, server=server, **phase)
        route_results: list[PhaseResult] = []
        for rnd in range(1, args.rounds + 1):
            for name, (server, make) in endpoints.items():
                log(f"round {rnd}: {name} for {args.duration:g} s")
                fresh_token(args.duration)
                result = run_phase(
                    name,
                    server.port,
                    make,
                    duration=args.duration,
                    round_no=rnd,
                    server=server,
                    **phase,
                )
                route_results.append(result)
                log(f"  {result.rps:.1f} req/s, p99 {result.p99_ms:.2f} ms, {result.errors} errors")

        incident_result = None
        if not args.no_incidents:
            make = incident_requests(points.inside, auth)
            phase.update(ok_status=201, server=real)
            log(f"warming up incidents for {args.warmup:g} s")
            fresh_token(args.warmup)
            run_phase("incidents", real.port, make, duration=args.warmup, **phase)
            log(f"measuring incidents for {args.duration:g} s")
            fresh_token(args.duration)
            incident_result = run_phase(
                "incidents", real.port, make, duration=args.duration, **phase
            )
    finally:
        stop.set()
        if probe is not None:
            probe.close()
        for server in reversed(servers):
            server.stop()
        if db is not None and db.cluster is not None and db.started_cluster:
            log("stopping the private cluster (this run started it)")
            db.cluster.stop()
    total_s = time.monotonic() - t_start
    report = build_report(
        args,
        db,
        facts,
        points,
        mix,
        route_results,
        incident_result,
        setup_s,
        total_s,
        stamp,
        load_at_start,
    )
    print_report(report)
    out = RESULTS_DIR / f"intake-{stamp}.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\nresults: {out.relative_to(PROJECT_ROOT)}  (run took {total_s:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench: interrupted (servers stopped)", file=sys.stderr)
        sys.exit(130)
