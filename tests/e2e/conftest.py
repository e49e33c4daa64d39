"""The end-to-end tier: the real app under gunicorn, over HTTP, on a database of its own.

The database (gridgov_e2e_<pid>, on the same server as the rest of the suite) is built by the
migrations with the small demo district, then used for real: requests commit. It is dropped
at the end of the run. One gunicorn (2 sync workers, JSON logs) serves the whole tier; tests
that need other settings start a server of their own with `start_server`.
"""

import contextlib
import os

import flask_migrate
import pytest
from sqlalchemy import NullPool, TextClause, create_engine, text

from geo.demo_district import generate_district
from gridgov import create_app
from gridgov.extensions import db
from gridgov.services import demo as demo_service
from tests import dbsetup
from tests.e2e.http import Http
from tests.e2e.server import GunicornServer

E2E_DB = f"gridgov_e2e_{os.getpid()}"
FUZZ_DB = f"gridgov_e2e_fuzz_{os.getpid()}"


def pytest_collection_modifyitems(items):
    """The endpoint coverage check runs after every other test of the run."""
    last = [item for item in items if item.name == "test_every_endpoint_was_called_over_http"]
    for item in last:
        items.remove(item)
        items.append(item)


def demo_database(base_url: str, name: str) -> str:
    """(Re)create database `name`, migrated, with the small demo district committed: its URL."""
    url = dbsetup.recreate_database(base_url, name)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        flask_migrate.upgrade()
        demo_service.load_demo(db.session, areas=generate_district(seed=2024, size="small"))
        db.session.commit()
        db.engine.dispose()
    return url


@pytest.fixture(scope="session")
def e2e_database(server):
    """URL of the tier's shared database (see `demo_database`)."""
    base_url, _ = server
    yield demo_database(base_url, E2E_DB)
    dbsetup.drop_database(base_url, E2E_DB)


@pytest.fixture(scope="session")
def fuzz_database(server):
    """A database like the shared one, for the fuzzer alone: what it writes stays there."""
    base_url, _ = server
    yield demo_database(base_url, FUZZ_DB)
    dbsetup.drop_database(base_url, FUZZ_DB)


@contextlib.contextmanager
def sql_runner(url: str):
    """run(statement, params) on database `url`, committed: seeding and checks."""
    engine = create_engine(url, poolclass=NullPool)

    def run(statement: str | TextClause, params: dict | None = None) -> list[tuple]:
        with engine.begin() as conn:
            result = conn.execute(
                text(statement) if isinstance(statement, str) else statement, params or {}
            )
            return result.all() if result.returns_rows else []

    yield run
    engine.dispose()


@pytest.fixture(scope="session")
def e2e_sql(e2e_database):
    """e2e_sql(statement, params) runs SQL on the e2e database and commits it."""
    with sql_runner(e2e_database) as run:
        yield run


@pytest.fixture(scope="session")
def fuzz_sql(fuzz_database):
    """Like `e2e_sql`, on the fuzzer's database."""
    with sql_runner(fuzz_database) as run:
        yield run


@pytest.fixture(scope="session")
def start_server(e2e_database, tmp_path_factory):
    """start_server(name, env) → a running GunicornServer (stopped at exit), on the e2e database
    unless `database_url` names another."""
    servers: list[GunicornServer] = []

    def start(
        name: str, env: dict | None = None, app: str = "wsgi:app", database_url: str | None = None
    ) -> GunicornServer:
        log = tmp_path_factory.mktemp("e2e") / f"{name}.log"
        server = GunicornServer(
            database_url=database_url or e2e_database, log_path=log, env=env, app=app
        )
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def e2e_server(start_server):
    """The tier's shared server, with ordinary production-like settings."""
    return start_server(
        "main",
        {
            "GRIDGOV_LOGIN_RATE_LIMIT_PER_IP": "10000/minute",
            "GRIDGOV_LOGIN_RATE_LIMIT_PER_USERNAME": "10000/minute",
            "GRIDGOV_OPEN311_READ_RATE_LIMIT": "10000/minute",
        },
    )


@pytest.fixture(scope="session")
def anonymous(e2e_server) -> Http:
    """A client without a token."""
    return Http(e2e_server.base_url)


@pytest.fixture(scope="session")
def as_user(anonymous):
    """as_user("town_supervisor") → a client logged in over HTTP as that demo user."""
    clients: dict[str, Http] = {}

    def login(username: str) -> Http:
        if username not in clients:
            clients[username] = anonymous.login(username)
        return clients[username]

    return login
