"""A private PostgreSQL + PostGIS cluster for development and tests.

When ``DATABASE_URL`` is not set, the run and test commands use a cluster that lives in
``<instance>/pg`` (data in ``<instance>/pg/data``), listens only on 127.0.0.1 on its own port
and is reused across runs.  Standard library + psycopg only (no Flask imports).

CLI::

    python -m gridgov_tools.embedded_pg start|stop|status|url [--instance DIR] [--db NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors, sql

from config import normalize_database_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE_DIR = PROJECT_ROOT / "instance"
DEFAULT_DBNAME = "gridgov"
DEFAULT_PG_MAJOR = 15
PG_USER = "postgres"
FALLBACK_ROOT = Path("/var/lib/gridgov")
PORT_RANGE = (54320, 54999)
# sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
RUNTIME_CONF = "gridgov_runtime.conf"
CONF_MARKER = "# --- gridgov embedded cluster ---"
CLUSTER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "shared_buffers": "256MB",
    "max_connections": "200",
    "log_destination": "'stderr'",
    "logging_collector": "off",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
}


class EmbeddedPgError(RuntimeError):
    """Raised when the private PostgreSQL cluster cannot be provided."""


def _log(msg: str) -> None:
    print(f"[embedded-pg] {msg}", file=sys.stderr, flush=True)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("PGDATA", "PGPORT", "PGHOST", "PGHOSTADDR", "PGUSER", "PGDATABASE", "PGOPTIONS"):
        env.pop(var, None)
    env.setdefault("LC_ALL", "C")
    return env


# --------------------------------------------------------------------------- binaries


def _has_server(bindir: Path) -> bool:
    return all((bindir / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres"))


def _pg_config(pg_config: str | Path, flag: str) -> Path | None:
    try:
        out = subprocess.run(
            [str(pg_config), flag], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


def find_pg_bindir() -> Path | None:
    """Return a PostgreSQL bin dir holding initdb, pg_ctl and postgres, or None if none exists."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = _pg_config(pg_config, "--bindir")
        if bindir:
            candidates.append(bindir)
    versioned = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        try:
            versioned.append((float(path.parent.name), path))
        except ValueError:
            continue
    candidates.extend(path for _, path in sorted(versioned, reverse=True))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for cand in candidates:
        if _has_server(cand):
            return cand
    return None


def pg_major_version(bindir: Path) -> int:
    """Return the major version of the PostgreSQL server in bindir."""
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        match = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
        if match:
            return int(match.group(1))
    except (OSError, subprocess.SubprocessError):
        pass
    match = re.search(r"/postgresql/(\d+)/bin", str(bindir))
    if match:
        return int(match.group(1))
    raise EmbeddedPgError(f"cannot determine the PostgreSQL version in {bindir}")


def postgis_available(bindir: Path) -> bool:
    """Return whether the PostGIS extension control file exists for bindir's PostgreSQL."""
    major = pg_major_version(bindir)
    sharedirs = [Path(f"/usr/share/postgresql/{major}")]
    pg_configs = [bindir / "pg_config"]
    path_pg_config = shutil.which("pg_config")
    if path_pg_config and _pg_config(path_pg_config, "--bindir") == bindir:
        pg_configs.append(Path(path_pg_config))
    for pg_config in pg_configs:
        if pg_config.is_file():
            sharedir = _pg_config(pg_config, "--sharedir")
            if sharedir:
                sharedirs.insert(0, sharedir)
    return any((d / "extension" / "postgis.control").is_file() for d in sharedirs)


def _default_pg_major() -> int:
    """Major version the distribution's ``postgresql`` package would install."""
    if shutil.which("apt-cache"):
        try:
            out = subprocess.run(
                ["apt-cache", "depends", "postgresql"],
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout
            match = re.search(r"Depends:\s+postgresql-(\d+)\b", out)
            if match:
                return int(match.group(1))
        except (OSError, subprocess.SubprocessError):
            pass
    return DEFAULT_PG_MAJOR


def install_command(major: int | None = None) -> str:
    """Return the apt-get command that installs PostgreSQL with PostGIS."""
    major = major or _default_pg_major()
    return f"sudo apt-get install -y postgresql postgresql-{major}-postgis-3"


def _apt(args: Sequence[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _log("running: DEBIAN_FRONTEND=noninteractive " + shlex.join(args))
    # stdout goes to stderr so that e.g. `... url` keeps a clean stdout.
    proc = subprocess.run(list(args), env=env, stdout=2, stderr=2, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise EmbeddedPgError(f"'{shlex.join(args)}' failed with exit code {proc.returncode}")


def ensure_binaries() -> Path:
    """Make sure PostgreSQL and PostGIS are installed (apt-get as root) and return the bindir."""
    bindir = find_pg_bindir()
    if bindir is not None and postgis_available(bindir):
        return bindir
    major = pg_major_version(bindir) if bindir else None
    missing = "PostGIS" if bindir else "PostgreSQL server and PostGIS"
    if not (_is_root() and shutil.which("apt-get")):
        raise EmbeddedPgError(
            f"{missing} not installed; DATABASE_URL is not set, so a private cluster is needed."
            f" Install it with:\n    {install_command(major)}\n"
            "or set DATABASE_URL to a PostgreSQL server that has PostGIS."
        )
    _log(f"{missing} not installed; installing with apt-get")
    _apt(["apt-get", "update"])
    if bindir is None:
        _apt(["apt-get", "install", "-y", "postgresql"])
        bindir = find_pg_bindir()
        if bindir is None:
            raise EmbeddedPgError("installed 'postgresql' but still found no initdb/pg_ctl")
        major = pg_major_version(bindir)
    _apt(["apt-get", "install", "-y", "postgresql", f"postgresql-{major}-postgis-3"])
    bindir = find_pg_bindir()
    if bindir is None or not postgis_available(bindir):
        raise EmbeddedPgError(
            f"PostGIS still not available after installing; try:\n    {install_command(major)}"
        )
    return bindir


# --------------------------------------------------------------------------- helpers


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same as the postmaster: TIME_WAIT leftovers do not count as "taken".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_port(seed: str, avoid: int | None = None) -> int:
    lo, hi = PORT_RANGE
    span = hi - lo + 1
    start = int(hashlib.sha1(seed.encode()).hexdigest(), 16) % span
    for i in range(span):
        port = lo + (start + i) % span
        if port != avoid and _port_is_free(port):
            return port
    for _ in range(50):  # range exhausted: let the kernel choose
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != avoid:
            return port
    raise EmbeddedPgError("no free TCP port on 127.0.0.1")


def socket_dir_for(directory: Path, port: int) -> str:
    """Return the unix socket directory to use, or '' if the socket path would be too long."""
    path = f"{directory}/.s.PGSQL.{port}"
    return str(directory) if len(path.encode()) <= MAX_SOCKET_PATH else ""


def _conf_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def libpq_url(url: str) -> str:
    """A libpq URI for a SQLAlchemy (postgresql+driver://) or libpq PostgreSQL URL."""
    return re.sub(r"^postgres(?:ql)?(\+\w+)?://", "postgresql://", url.strip(), count=1)


def redact(url: str) -> str:
    """`url` with its password (if any) replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _ensure_pg_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        pass
    cmd = ["useradd", "--system", "--home", "/var/lib/postgresql", PG_USER]
    _log("creating system user: " + shlex.join(cmd))
    subprocess.run(cmd, check=True, stdout=2, stderr=2)
    return pwd.getpwnam(PG_USER)


def _as_pg_user(args: Sequence[str]) -> list[str]:
    if not _is_root():
        return list(args)
    if shutil.which("runuser"):
        return ["runuser", "-u", PG_USER, "--", *args]
    return ["su", PG_USER, "-s", "/bin/sh", "-c", shlex.join(args)]


def _pg_user_can_traverse(directory: Path) -> bool:
    """Whether the postgres user can reach (search) directory and all of its parents."""
    proc = subprocess.run(
        _as_pg_user(["test", "-x", str(directory)]),
        cwd="/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc.returncode == 0


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


# --------------------------------------------------------------------------- cluster


class EmbeddedCluster:
    """A private PostgreSQL cluster kept in ``<instance_dir>/pg``."""

    def __init__(self, instance_dir: Path | str) -> None:
        """Describe (without touching anything) the cluster for instance_dir."""
        self.instance_dir = Path(instance_dir).expanduser().resolve()
        self.pg_dir = self.instance_dir / "pg"
        self.port_file = self.pg_dir / "port"
        self.location_file = self.pg_dir / "LOCATION"
        self._bindir: Path | None = None

    # -- locations

    @property
    def base_dir(self) -> Path:
        """Directory holding data/ and postgres.log (pg_dir, or the LOCATION fallback)."""
        try:
            for line in self.location_file.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    return Path(line)
        except OSError:
            pass
        return self.pg_dir

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        """The server log file."""
        return self.base_dir / "postgres.log"

    def fallback_dir(self) -> Path:
        """Data location used when the postgres user cannot traverse instance_dir (root only)."""
        digest = hashlib.sha1(str(self.instance_dir).encode()).hexdigest()[:12]
        return FALLBACK_ROOT / digest

    @property
    def port(self) -> int | None:
        """Port of the running cluster, else the stored port, else None."""
        running = self._pid_file_port()
        if running is not None:
            return running
        try:
            return int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def bindir(self) -> Path:
        """PostgreSQL bin dir matching the data dir's version (or the newest installed)."""
        if self._bindir is None:
            bindir = None
            try:
                version = (self.data_dir / "PG_VERSION").read_text().strip()
            except OSError:
                version = None
            if version:
                cand = Path(f"/usr/lib/postgresql/{version}/bin")
                if _has_server(cand):
                    bindir = cand
            bindir = bindir or find_pg_bindir()
            if bindir is None:
                raise EmbeddedPgError(
                    "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found. Install:\n"
                    f"    {install_command()}"
                )
            if version and str(pg_major_version(bindir)) != version:
                raise EmbeddedPgError(
                    f"cluster in {self.data_dir} is PostgreSQL {version} but only"
                    f" {pg_major_version(bindir)} is installed; install postgresql-{version}"
                    " or remove the data dir"
                )
            self._bindir = bindir
        return self._bindir

    # -- process helpers

    def _run(self, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess:
        cwd = self.base_dir if self.base_dir.is_dir() else Path("/")
        proc = subprocess.run(
            _as_pg_user(args),
            cwd=cwd,
            env=_clean_env(),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()
            raise EmbeddedPgError(
                f"{Path(args[0]).name} failed (exit {proc.returncode}): {detail}"
                f"\n(server log: {self.log_file})"
            )
        return proc

    def _pid_info(self) -> tuple[int, int, str] | None:
        """(pid, port, status) from postmaster.pid if that postmaster is alive, else None."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        try:
            pid, port = int(lines[0]), int(lines[3])
        except (IndexError, ValueError):
            return None
        status = lines[7].strip() if len(lines) > 7 else "ready"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        if _is_zombie(pid):  # killed, but not reaped yet: not running
            return None
        return pid, port, status

    def _wait_for_zombie(self, timeout: float = 30) -> None:
        """Wait until a killed-but-unreaped postmaster is gone (postgres refuses to start)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return
        if not _is_zombie(pid):
            return
        _log(f"waiting for the dead postmaster (pid {pid}) to be reaped")
        deadline = time.monotonic() + timeout
        while _is_zombie(pid) and time.monotonic() < deadline:
            time.sleep(0.2)

    def _pid_file_port(self) -> int | None:
        info = self._pid_info()
        return info[1] if info else None

    def is_running(self) -> bool:
        """Return whether this cluster's postmaster is running."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        if self._pid_file_port() is None:
            return False
        proc = self._run(
            [str(self.bindir / "pg_ctl"), "status", "-D", str(self.data_dir)], check=False
        )
        return proc.returncode == 0

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        with open(self.pg_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- setup

    def _prepare_dirs(self) -> None:
        """Create the pg directory tree (as root: owned by postgres, maybe relocated)."""
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        if not _is_root():
            return
        pg = _ensure_pg_user()
        initialised = (self.data_dir / "PG_VERSION").exists()
        if self.base_dir == self.pg_dir and not _pg_user_can_traverse(self.instance_dir):
            if initialised:
                raise EmbeddedPgError(
                    f"the '{PG_USER}' user cannot reach {self.data_dir} (a parent directory is"
                    " not searchable); fix the permissions or remove the data dir"
                )
            fallback = self.fallback_dir()
            _log(
                f"'{PG_USER}' cannot traverse {self.instance_dir}; keeping the cluster in"
                f" {fallback} instead (noted in {self.location_file})"
            )
            FALLBACK_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
            fallback.mkdir(mode=0o700, exist_ok=True)
            self.location_file.write_text(
                f"{fallback}\n# private PostgreSQL cluster for {self.instance_dir}"
                " (postgres cannot traverse the instance dir)\n"
            )
        base = self.base_dir
        base.mkdir(parents=True, exist_ok=True)
        st = base.stat()
        if st.st_uid != pg.pw_uid:
            _chown_tree(base, pg.pw_uid, pg.pw_gid)
        if base != self.pg_dir and not _pg_user_can_traverse(base):
            raise EmbeddedPgError(f"the '{PG_USER}' user cannot reach {base}")

    def _initdb(self) -> None:
        data = self.data_dir
        _log(f"initialising private PostgreSQL cluster in {data}")
        locale = "C"
        try:
            locales = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout
            if any(loc.lower() in ("c.utf8", "c.utf-8") for loc in locales.split()):
                locale = "C.UTF-8"
        except OSError:
            pass
        args = [
            str(self.bindir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            PG_USER,
            "-E",
            "UTF8",
            f"--locale={locale}",
        ]
        if pg_major_version(self.bindir) >= 13:
            args.append("--no-instructions")
        self._run(args)
        lines = [f"{k} = {v}" for k, v in CLUSTER_SETTINGS.items()]
        lines.append(f"include_if_exists = '{RUNTIME_CONF}'")
        with open(data / "postgresql.conf", "a") as fh:
            fh.write("\n" + CONF_MARKER + "\n" + "\n".join(lines) + "\n")

    def _write_runtime_conf(self, port: int) -> None:
        sockdir = socket_dir_for(self.base_dir, port)
        conf = self.data_dir / RUNTIME_CONF
        conf.write_text(
            "# written by gridgov_tools.embedded_pg on every start\n"
            f"port = {port}\n"
            f"unix_socket_directories = {_conf_quote(sockdir)}\n"
        )
        if _is_root():
            pg = pwd.getpwnam(PG_USER)
            os.chown(conf, pg.pw_uid, pg.pw_gid)
        if not sockdir:
            _log("socket path too long; using TCP only")

    def _choose_port(self) -> int:
        stored = self.port
        if stored is not None and _port_is_free(stored):
            return stored
        port = _pick_port(str(self.instance_dir), avoid=stored)
        if stored is not None:
            _log(f"port {stored} is taken by something else; switching to {port}")
        return port

    # -- public API

    def start(self) -> bool:
        """Start the cluster (initdb on first use); return False if it was already running."""
        with self._lock():
            deadline = time.monotonic() + 60
            while self.is_running():
                info = self._pid_info()
                if info is None or info[2] in ("ready", "standby"):
                    break
                if time.monotonic() > deadline:
                    raise EmbeddedPgError(
                        f"PostgreSQL in {self.data_dir} is stuck '{info[2]}'; see {self.log_file}"
                    )
                time.sleep(0.2)  # starting up or shutting down: wait for it to settle
            if self.is_running():
                port = self._pid_file_port()
                if port is not None and self.port_file.exists():
                    with contextlib.suppress(OSError, ValueError):
                        if int(self.port_file.read_text()) == port:
                            port = None  # already recorded
                if port is not None:
                    self.port_file.write_text(f"{port}\n")
                port = self.port
                _log(f"reusing running PostgreSQL on 127.0.0.1:{port} ({self.data_dir})")
                return False
            self._prepare_dirs()
            self._wait_for_zombie()
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            major = pg_major_version(self.bindir)
            for attempt in range(3):
                port = self._choose_port()
                self.port_file.write_text(f"{port}\n")
                self._write_runtime_conf(port)
                _log(f"starting PostgreSQL {major} on 127.0.0.1:{port}")
                proc = self._run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "start",
                        "-w",
                        "-t",
                        "60",
                        "-D",
                        str(self.data_dir),
                        "-l",
                        str(self.log_file),
                    ],
                    check=False,
                )
                if proc.returncode == 0:
                    return True
                if attempt < 2 and not _port_is_free(port):
                    continue  # lost a race for the port: pick another one
                tail = ""
                with contextlib.suppress(OSError):
                    tail = "\n".join(self.log_file.read_text().splitlines()[-15:])
                raise EmbeddedPgError(
                    f"pg_ctl start failed (exit {proc.returncode}):"
                    f" {(proc.stderr or proc.stdout).strip()}\n--- {self.log_file} ---\n{tail}"
                )
            raise AssertionError("unreachable")

    def stop(self) -> bool:
        """Stop the cluster if it is running (fast shutdown); return whether it was running."""
        with self._lock():
            if not self.is_running():
                return False
            self._run(
                [
                    str(self.bindir / "pg_ctl"),
                    "stop",
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.data_dir),
                ]
            )
            _log("stopped")
            return True

    def url(self, dbname: str = DEFAULT_DBNAME) -> str:
        """Return the SQLAlchemy URL of dbname on this cluster."""
        port = self.port
        if port is None:
            raise EmbeddedPgError(f"cluster in {self.pg_dir} has no port yet; start it first")
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        """Return an autocommit psycopg connection to dbname on this cluster."""
        port = self.port
        if port is None:
            raise EmbeddedPgError(f"cluster in {self.pg_dir} has no port yet; start it first")
        return psycopg.connect(
            host="127.0.0.1",
            port=port,
            user=PG_USER,
            dbname=dbname,
            autocommit=True,
            connect_timeout=10,
        )

    def ensure_database(self, dbname: str = DEFAULT_DBNAME, postgis: bool = True) -> bool:
        """Create dbname if missing (with PostGIS); return whether it was created."""
        created = False
        # The file lock serialises the run and test commands creating the same database;
        # the except clause covers anything that does not take the lock.
        with self._lock(), self.connect("postgres") as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)
            ).fetchone()
            if not exists:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
                    created = True
                    _log(f"created database {dbname}")
                except (errors.DuplicateDatabase, errors.UniqueViolation):
                    pass
            if postgis:
                with self.connect(dbname) as dbconn:
                    _create_postgis(dbconn)
        return created

    def drop_database(self, dbname: str) -> None:
        """Terminate connections to dbname and drop it if it exists."""
        with self.connect("postgres") as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))

    def status(self) -> str:
        """Return a one-line human readable status."""
        state = "running" if self.is_running() else "stopped"
        port = self.port
        where = f"127.0.0.1:{port}" if port else "no port chosen yet"
        return f"{state} ({where}, data dir {self.data_dir})"


def _create_postgis(conn: psycopg.Connection) -> None:
    # UniqueViolation: created concurrently by another process.
    with contextlib.suppress(errors.UniqueViolation):
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")


def _check_external_postgis(url: str) -> None:
    try:
        conn = psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise EmbeddedPgError(f"cannot connect to DATABASE_URL {redact(url)}: {exc}") from exc
    with conn:
        try:
            _create_postgis(conn)
            return
        except psycopg.Error as exc:
            error = exc
        installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").fetchone()
        if installed:
            return
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'"
        ).fetchone()
    if not available:
        raise EmbeddedPgError(
            f"PostGIS is not available on the server of DATABASE_URL {redact(url)}; install"
            " the postgis package for that PostgreSQL version (e.g. postgresql-15-postgis-3)"
        ) from error
    raise EmbeddedPgError(
        f"PostGIS is not enabled in the database of DATABASE_URL {redact(url)} and this user"
        f" cannot create it ({error}); ask an admin to run: CREATE EXTENSION postgis;"
    ) from error


def database_url_from_env_or_embedded(
    instance_dir: Path | str, dbname: str = DEFAULT_DBNAME, *, start: bool = True
) -> tuple[str, EmbeddedCluster | None]:
    """Return (DATABASE_URL, None) if set, else the embedded cluster's URL and the cluster."""
    env_url = os.environ.get("DATABASE_URL", "").strip()
    if env_url:
        url = normalize_database_url(env_url)
        if url.startswith("postgresql"):
            _check_external_postgis(url)
        return url, None
    cluster = EmbeddedCluster(instance_dir)
    if start:
        ensure_binaries()
        cluster.start()
        cluster.ensure_database(dbname, postgis=True)
    return cluster.url(dbname), cluster


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: start|stop|status|url."""
    parser = argparse.ArgumentParser(
        prog="python -m gridgov_tools.embedded_pg",
        description="Manage the private PostgreSQL+PostGIS cluster used when DATABASE_URL is"
        " not set.",
    )
    parser.add_argument("command", choices=["start", "stop", "status", "url"])
    parser.add_argument(
        "--instance",
        type=Path,
        default=DEFAULT_INSTANCE_DIR,
        help=f"instance directory (default: {DEFAULT_INSTANCE_DIR})",
    )
    parser.add_argument(
        "--db", default=DEFAULT_DBNAME, help=f"database name (default: {DEFAULT_DBNAME})"
    )
    args = parser.parse_args(argv)
    cluster = EmbeddedCluster(args.instance)
    try:
        if args.command == "start":
            ensure_binaries()
            t0 = time.monotonic()
            started = cluster.start()
            cluster.ensure_database(args.db)
            _log(f"{'started' if started else 'already running'} in {time.monotonic() - t0:.1f}s")
            print(cluster.url(args.db))
        elif args.command == "stop":
            if not cluster.stop():
                _log("not running")
        elif args.command == "status":
            print(cluster.status())
            return 0 if cluster.is_running() else 3
        else:
            url, _ = database_url_from_env_or_embedded(args.instance, args.db)
            print(url)
    except EmbeddedPgError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
