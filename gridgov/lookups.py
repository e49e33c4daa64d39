"""Connections for read-only lookups on a hot path: the routing of a point.

`GET /api/v1/route` is called for every tap on a phone's map and runs one statement. Through
the ORM session that statement cost four round trips (pre-ping, BEGIN, the query, ROLLBACK),
SQLAlchemy's result set-up, and a fresh plan each time; planning the routing query takes
about five times as long as running it. A lookup instead runs on a pooled psycopg connection
that:

- is in autocommit: one statement needs no transaction, so no BEGIN and no ROLLBACK;
- is not pinged on checkout: a dead connection (the database restarted) makes the pool start
  afresh and the lookup, a pure read, is run once more;
- runs each statement prepared, with its generic plan kept (`plan_cache_mode =
  force_generic_plan`), so a worker plans it once. Only statements whose best plan does not
  depend on their parameters belong here: the routing query uses the GiST index for any point.

Errors leave as SQLAlchemy's DBAPIError, like the session's, so the same 503 handling applies.
Writes, and reads that must see the request's own transaction, use the session.
"""

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from flask import Flask, current_app
from sqlalchemy import Engine, TextClause, create_engine
from sqlalchemy.dialects.postgresql import psycopg as sqlalchemy_psycopg
from sqlalchemy.exc import DBAPIError

# psycopg connection arguments of every lookup connection (bench/raw_route_app.py uses them
# too, so that the benchmark's baseline does the same database work).
LOOKUP_CONNECT_ARGS = {"autocommit": True, "options": "-c plan_cache_mode=force_generic_plan"}
_EXTENSION_KEY = "gridgov_lookups"
_DIALECT = sqlalchemy_psycopg.dialect()

T = TypeVar("T")


# Keyed by the statement object: lookups run module-level text() constants, never text built
# per call.
@functools.lru_cache(maxsize=64)
def psycopg_sql(statement: TextClause) -> str:
    """The SQL of a text() statement as SQLAlchemy sends it to psycopg (%(name)s binds)."""
    return str(statement.compile(dialect=_DIALECT))


class LookupConnection:
    """A psycopg connection that runs SQLAlchemy text() statements as prepared statements."""

    def __init__(self, driver_connection: psycopg.Connection) -> None:
        self._connection = driver_connection

    def execute(self, statement: TextClause, params: dict[str, Any]) -> psycopg.Cursor:
        """Run `statement` with `params`; rows come back as tuples (`fetchone`, `fetchall`)."""
        return self._connection.execute(psycopg_sql(statement), params, prepare=True)


class Lookups:
    """Per-app pool of lookup connections, created on first use (after gunicorn's fork)."""

    def init_app(self, app: Flask) -> None:
        """Register on `app`."""
        app.extensions[_EXTENSION_KEY] = {"engine": None, "bound": None}

    def bind(self, app: Flask, driver_connection: psycopg.Connection | None) -> None:
        """Run `app`'s lookups on this one connection, or on the pool again with None.

        Like binding the session to one connection: the test suite runs everything inside a
        transaction it rolls back.
        """
        app.extensions[_EXTENSION_KEY]["bound"] = driver_connection

    def run(self, lookup: Callable[..., T], /, **kwargs: Any) -> T:
        """`lookup(connection, **kwargs)` on a lookup connection (a LookupConnection)."""
        state = current_app.extensions[_EXTENSION_KEY]
        try:
            if state["bound"] is not None:
                return lookup(LookupConnection(state["bound"]), **kwargs)
            engine = state["engine"] or _create_engine(state, current_app.config)
            try:
                return _run_pooled(engine, lookup, kwargs)
            except _ConnectionLost:
                # The server went away (a restart): every idle connection is as dead as this
                # one, so start a new pool and try once more.
                engine.dispose()
                return _run_pooled(engine, lookup, kwargs)
        except _ConnectionLost as lost:
            raise DBAPIError.instance(None, None, lost.error, psycopg.Error) from lost.error
        except psycopg.Error as exc:
            raise DBAPIError.instance(None, None, exc, psycopg.Error) from exc


class _ConnectionLost(Exception):
    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.error = error


def _run_pooled(engine: Engine, lookup: Callable[..., T], kwargs: dict[str, Any]) -> T:
    pooled = engine.raw_connection()
    try:
        return lookup(LookupConnection(pooled.driver_connection), **kwargs)
    except psycopg.Error as exc:
        # Only a lost connection is worth another try; a failing statement (a timeout, a
        # bug) would fail again.
        if pooled.driver_connection.broken:
            pooled.invalidate()
            raise _ConnectionLost(exc) from exc
        raise
    finally:
        pooled.close()


def _create_engine(state: dict, config) -> Engine:
    options = config["SQLALCHEMY_ENGINE_OPTIONS"]
    state["engine"] = create_engine(
        config["SQLALCHEMY_DATABASE_URI"],
        pool_pre_ping=False,
        pool_reset_on_return=None,  # autocommit: nothing to roll back
        pool_size=options.get("pool_size", 5),
        max_overflow=options.get("max_overflow", 5),
        connect_args=dict(LOOKUP_CONNECT_ARGS),
    )
    return state["engine"]
