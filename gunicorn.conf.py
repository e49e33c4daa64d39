"""gunicorn settings for gridgov: `gunicorn -c gunicorn.conf.py wsgi:app` (scripts/run does).

Every value comes from the environment, with a default fit for one machine behind a reverse
proxy (nginx or a load balancer that buffers requests and answers slow clients):

| variable | default | gunicorn setting |
|---|---|---|
| GRIDGOV_BIND | 127.0.0.1:5000 | bind (comma separated for several addresses) |
| GRIDGOV_WORKERS | 2 × cores + 1, at most 8 | workers |
| GRIDGOV_THREADS | 1 (sync workers); more than 1 → gthread | threads, worker_class |
| GRIDGOV_TIMEOUT | 120 s | timeout |
| GRIDGOV_GRACEFUL_TIMEOUT | 30 s | graceful_timeout |
| GRIDGOV_KEEPALIVE | 5 s | keepalive (gthread only; sync workers close every connection) |
| GRIDGOV_MAX_REQUESTS | 2000 (0 turns recycling off) | max_requests, max_requests_jitter |
| GRIDGOV_LOG_FORMAT / GRIDGOV_LOG_LEVEL | json in production / info | gunicorn's own log lines |

Graceful shutdown: SIGTERM makes the master close its listening sockets, tells every worker
to finish the request it is handling and exit, and waits up to graceful_timeout before it kills
what is left; the master then exits 0. SIGHUP reloads this file and replaces the workers the
same way. SIGINT (Ctrl-C) and SIGQUIT are gunicorn's quick shutdown: in-flight requests are
cut. So a service manager must stop gridgov with SIGTERM (systemd's and Docker's default).
tests/test_serving.py checks that a request in flight when SIGTERM arrives is answered.
"""

import multiprocessing
import os
import sys
from pathlib import Path

from gunicorn.glogging import Logger

# This file may be loaded from another working directory: make the project importable.
_PROJECT_ROOT = str(Path(__file__).resolve().parent)
if _PROJECT_ROOT not in sys.path:
    sys.path.insert(0, _PROJECT_ROOT)

from gridgov.logging_setup import default_log_format, make_formatter  # noqa: E402

MAX_DEFAULT_WORKERS = 8


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def default_workers() -> int:
    """2 × cores + 1, capped so the workers' database pools stay under max_connections.

    Each worker process has its own SQLAlchemy pools, the session's and the lookups'
    (gridgov/lookups.py), opened lazily; a sync worker holds at most one connection of each:
    8 workers hold at most 16 of PostgreSQL's default 100.
    """
    return min(2 * multiprocessing.cpu_count() + 1, MAX_DEFAULT_WORKERS)


# --- where and how many -----------------------------------------------------------------------

bind = [address.strip() for address in os.environ.get("GRIDGOV_BIND", "127.0.0.1:5000").split(",")]
workers = _env_int("GRIDGOV_WORKERS", default_workers())
# Sync workers: one request at a time per process, the simplest model with SQLAlchemy's
# thread-local sessions. GRIDGOV_THREADS > 1 switches to gthread (threads share the process's
# pool, so keep threads <= pool_size + max_overflow = 10).
threads = _env_int("GRIDGOV_THREADS", 1)
worker_class = "gthread" if threads > 1 else "sync"

# --- time limits ------------------------------------------------------------------------------

# A worker silent for this long is killed and replaced. The slowest legitimate requests are
# large boundary change sets (topology checks over thousands of polygons, then re-routing of
# open incidents) and district-wide exports, hence well above gunicorn's 30 s default.
timeout = _env_int("GRIDGOV_TIMEOUT", 120)
# After SIGTERM/SIGHUP, in-flight requests get this long to finish before workers are killed.
# Orchestrators should wait longer than this before their own SIGKILL (Kubernetes:
# terminationGracePeriodSeconds > 30).
graceful_timeout = _env_int("GRIDGOV_GRACEFUL_TIMEOUT", 30)
# Seconds an idle keep-alive connection stays open (gthread only). Keep it below the idle
# timeout of the proxy in front, so the proxy never reuses a connection gunicorn just closed.
keepalive = _env_int("GRIDGOV_KEEPALIVE", 5)

# --- worker life cycle ------------------------------------------------------------------------

# preload_app stays False: each worker imports the app and builds its SQLAlchemy engine after
# the fork, so no pool or open connection is ever shared between processes (two processes
# speaking over one PostgreSQL socket corrupt each other's sessions). It also lets SIGHUP load
# new code. If preload is ever turned on, post_fork below disposes the inherited pool.
preload_app = False
# Recycle each worker after this many requests (± jitter so they do not all restart together):
# bounds slow memory growth (caches, fragmentation) at the cost of one app start per recycle.
max_requests = _env_int("GRIDGOV_MAX_REQUESTS", 2000)
max_requests_jitter = max(max_requests // 10, 0)
# gunicorn's control socket (gunicornc) defaults to one path per user ($HOME/.gunicorn), which
# a second gunicorn of the same user (another instance, the tests, a benchmark) takes over.
# Off unless GRIDGOV_CONTROL_SOCKET names a path of this instance's own; signals do the rest.
control_socket_disable = not os.environ.get("GRIDGOV_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GRIDGOV_CONTROL_SOCKET"]
# Worker heartbeat files in memory rather than on a possibly slow or full disk.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# --- logging ----------------------------------------------------------------------------------

# No gunicorn access log: the app writes one line per request itself (logger gridgov.access,
# with the request id and user id gunicorn does not know).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GRIDGOV_LOG_LEVEL", "info").lower()
# The app is built in the workers, so GRIDGOV_ENV is read here only to pick the log format.
_LOG_FORMAT = default_log_format(os.environ.get("GRIDGOV_ENV", "development"))


class GridgovLogger(Logger):
    """gunicorn's error log in the app's format (one JSON object per line in production)."""

    def setup(self, cfg):
        """Set up gunicorn's handlers, then give them the app's formatter."""
        super().setup(cfg)
        formatter = make_formatter(_LOG_FORMAT)
        for handler in self.error_log.handlers:
            handler.setFormatter(formatter)


logger_class = GridgovLogger


# --- hooks ------------------------------------------------------------------------------------


def post_fork(server, worker):
    """With preload_app, drop the pool inherited from the master (never with the default)."""
    if not preload_app:
        return
    from gridgov.extensions import db
    from wsgi import app

    with app.app_context():
        # close=False: leave the parent's connections alone, just forget them here.
        db.engine.dispose(close=False)


def worker_exit(server, worker):
    """A worker has finished its in-flight requests and is exiting (runs in the worker)."""
    server.log.info("worker %s exiting", worker.pid)


def on_exit(server):
    """The master is exiting after its workers (shutdown complete)."""
    server.log.info("gridgov: shutdown complete")
