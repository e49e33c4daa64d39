"""gridgov: the backend of grid-based community governance (网格化管理)."""

import logging
from typing import Any

from flask import Flask

from config import Config, ConfigError, load_config, normalize_database_url, profile_values
from gridgov.settings import install_settings, settings


def create_app(config: type[Config] | dict[str, Any] | None = None) -> Flask:
    """Build the Flask app from a config class, a dict of overrides, or the environment.

    The settings are checked first: a value that cannot be used raises ConfigError, which
    names its variable, before anything is started.
    """
    # No app-wide /static route: the map page and the docs serve their own files.
    app = Flask(__name__, static_folder=None)
    if isinstance(config, type):
        app.config.update(profile_values(config))
    else:
        app.config.update(load_config())
        app.config.update(config or {})
    install_settings(app)
    register_logging(app)
    register_request_context(app)
    register_database(app)
    register_api_and_cli(app)
    register_http_policy(app)
    return app


def register_logging(app: Flask) -> None:
    """One line per record on stderr: JSON (GRIDGOV_LOG_FORMAT=json, production) or text."""
    from gridgov.logging_setup import configure_logging, default_log_format

    app.config.setdefault("LOG_FORMAT", default_log_format(app.config["ENV_NAME"]))
    configure_logging(app.config["LOG_FORMAT"], settings(app).log_level)
    # Alembic announces each of its plugins at INFO when imported; that is noise here.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def register_request_context(app: Flask) -> None:
    """Client address behind proxies, request id (X-Request-ID), access log line and body
    size limit, before other hooks."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    from gridgov.api.http_policy import register_body_limits
    from gridgov.logging_setup import register_request_logging

    hops = settings(app).proxy_hops
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)

    register_request_logging(app)
    register_body_limits(app)


def register_database(app: Flask) -> None:
    """Bind SQLAlchemy and Alembic to the configured database (DATABASE_URL).

    The app never starts a database itself: without a URL, wsgi.py (`flask --app wsgi`,
    gunicorn) starts the private cluster of gridgov_tools/embedded_pg.py and passes its URL.
    """
    from gridgov.extensions import db, lookups, migrate

    url = app.config.get("SQLALCHEMY_DATABASE_URI")
    if not url:
        raise ConfigError("DATABASE_URL is not set (wsgi.py starts the private cluster without it)")
    app.config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(url)
    db.init_app(app)
    lookups.init_app(app)
    migrate.init_app(app, db, directory=str(settings(app).migrations_dir))


def register_api_and_cli(app: Flask) -> None:
    """HTTP blueprints, the OpenAPI document, error handlers, the map page and CLI commands."""
    from gridgov.api import register_api
    from gridgov.cli import register_cli
    from gridgov.web import register_web

    register_api(app)
    register_web(app)
    register_cli(app)


def register_http_policy(app: Flask) -> None:
    """Body size limits, security headers, CORS and the docs page (after the blueprints)."""
    from gridgov.api import docs_page, http_policy

    http_policy.register_http_policy(app)
    docs_page.register_docs_page(app)
