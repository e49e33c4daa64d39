"""WSGI entry point: `gunicorn wsgi:app`, and `flask --app wsgi …` for the CLI.

Without DATABASE_URL (development), the private PostgreSQL cluster of
gridgov_tools/embedded_pg.py is started here, if it is not running, and its URL handed to the
app: the app itself never starts a database. Production requires DATABASE_URL.
"""

from config import load_config
from gridgov import create_app


def _database() -> dict:
    config = load_config()
    if config["SQLALCHEMY_DATABASE_URI"]:
        return {}
    from gridgov_tools.embedded_pg import database_url_from_env_or_embedded

    url, _ = database_url_from_env_or_embedded(config["INSTANCE_DIR"], config["EMBEDDED_DB_NAME"])
    return {"SQLALCHEMY_DATABASE_URI": url}


app = create_app(_database())
