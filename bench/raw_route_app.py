"""The routing lookup without the framework: the baseline of bench/intake.py.

One GET endpoint, ``/route?lon=&lat=``, that parses two floats and runs exactly the SQL the
app sends for ``gridgov.services.routing.ROUTE_SQL`` through one psycopg 3 connection per
worker process (opened lazily, i.e. after gunicorn forks), with the connection settings of the
app's lookup connections (gridgov/lookups.py: autocommit, so one round trip per request; a
prepared statement keeping its generic plan), and returns the row as JSON. No token check, no
marshmallow, no SQLAlchemy.

    DATABASE_URL=postgresql://… gunicorn --chdir bench raw_route_app:app
"""

import os
import re

import psycopg
from flask import Flask, jsonify, request

from config import Config
from gridgov.lookups import LOOKUP_CONNECT_ARGS, psycopg_sql
from gridgov.services.routing import NEAREST_CANDIDATES, ROUTE_LEVELS
from gridgov.services.routing import ROUTE_SQL as APP_ROUTE_SQL

ROUTE_SQL = psycopg_sql(APP_ROUTE_SQL)
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
        _conn = psycopg.connect(libpq_url(os.environ["DATABASE_URL"]), **LOOKUP_CONNECT_ARGS)
        _conn_pid = os.getpid()
    return _conn


@app.get("/route")
def route():
    """Route lon/lat (WGS-84) with the same SQL as the real endpoint."""
    try:
        lon, lat = float(request.args["lon"]), float(request.args["lat"])
    except (KeyError, ValueError):
        return jsonify(error="lon and lat must be numbers"), 400
    params = {
        "lon": lon,
        "lat": lat,
        "max_m": MAX_NEAREST_M,
        "candidates": NEAREST_CANDIDATES,
    }
    try:
        row = connection().execute(ROUTE_SQL, params, prepare=True).fetchone()
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
