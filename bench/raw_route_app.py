"""The routing lookup without the framework: the baseline of bench/intake.py.

One GET endpoint, ``/route?lon=&lat=``, that parses two floats and runs exactly the text of
``gridgov.services.routing._ROUTE_SQL`` through one psycopg 3 connection per worker process
(opened lazily, i.e. after gunicorn forks; autocommit, so one round trip per request), and
returns the row as JSON. No token check, no marshmallow, no SQLAlchemy.

    DATABASE_URL=postgresql://… gunicorn --chdir bench raw_route_app:app
"""

import os
import re

import psycopg
from flask import Flask, jsonify, request

from config import Config
from gridgov.services.routing import _ROUTE_SQL, NEAREST_CANDIDATES, ROUTE_LEVELS

_BIND_RE = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_PARAMS = {"lon", "lat", "max_m", "candidates"}


def psycopg_sql(sqlalchemy_text: str) -> str:
    """Turn SQLAlchemy `:name` binds into psycopg `%(name)s` (`::cast` is left alone)."""
    names = set(_BIND_RE.findall(sqlalchemy_text))
    if names != _PARAMS:
        raise RuntimeError(f"_ROUTE_SQL binds changed: {sorted(names)}; update raw_route_app.py")
    return _BIND_RE.sub(r"%(\1)s", sqlalchemy_text.replace("%", "%%"))


ROUTE_SQL = psycopg_sql(str(_ROUTE_SQL))
MAX_NEAREST_M = Config.ROUTING_NEAREST_MAX_M

app = Flask(__name__)
app.json.ensure_ascii = False
app.json.sort_keys = False

_conn: psycopg.Connection | None = None
_conn_pid: int | None = None


def libpq_url(url: str) -> str:
    """A libpq URI from a SQLAlchemy or libpq PostgreSQL URL."""
    return re.sub(r"^postgres(?:ql)?(\+\w+)?://", "postgresql://", url.strip(), count=1)


def connection() -> psycopg.Connection:
    """This worker process's connection (opened on first use after the fork)."""
    global _conn, _conn_pid
    if _conn is None or _conn.closed or _conn_pid != os.getpid():
        _conn = psycopg.connect(libpq_url(os.environ["DATABASE_URL"]), autocommit=True)
        _conn_pid = os.getpid()
    return _conn


@app.get("/route")
def route():
    """Route lon/lat (WGS-84) with the same SQL as the real endpoint."""
    try:
        lon, lat = float(request.args["lon"]), float(request.args["lat"])
    except (KeyError, ValueError):
        return jsonify(error="lon and lat must be numbers"), 400
    params = {"lon": lon, "lat": lat, "max_m": MAX_NEAREST_M, "candidates": NEAREST_CANDIDATES}
    try:
        row = connection().execute(ROUTE_SQL, params).fetchone()
    except psycopg.OperationalError:
        global _conn
        _conn = None  # reconnect on the next request
        raise
    if row is None:
        return jsonify(point={"lon": lon, "lat": lat}, method="unrouted")
    method, distance_m, candidates, *ids_codes_names = row
    body = {"point": {"lon": lon, "lat": lat}, "method": method}
    body.update(distance_m=round(distance_m, 2), candidates=candidates)
    for i, level in enumerate(ROUTE_LEVELS):
        area_id, code, name = ids_codes_names[i * 3 : i * 3 + 3]
        body[level] = {"id": area_id, "code": code, "name": name}
    return jsonify(body)
