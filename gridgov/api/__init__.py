"""The HTTP edge: blueprints, the OpenAPI document and the error envelope."""

from flask import Flask
from flask_smorest import Api

from gridgov.api import (
    areas,
    audit,
    auth,
    boundaries,
    categories,
    docs,
    exports,
    health,
    incidents,
    open311,
    patrols,
    people,
    photos,
    routing,
    stats,
    tiles,
)
from gridgov.api.errors import register_error_handlers
from gridgov.api.security import register_security


def register_api(app: Flask) -> None:
    """Register the API blueprints, docs assets and error handlers on `app`."""
    api = Api(app)
    register_security(app)
    api.register_blueprint(auth.blp)
    api.register_blueprint(areas.blp)
    api.register_blueprint(audit.blp)
    api.register_blueprint(boundaries.blp)
    api.register_blueprint(categories.blp)
    api.register_blueprint(incidents.blp)
    api.register_blueprint(exports.blp)
    api.register_blueprint(patrols.blp)
    api.register_blueprint(photos.blp)
    api.register_blueprint(routing.blp)
    api.register_blueprint(people.blp)
    api.register_blueprint(stats.blp)
    api.register_blueprint(tiles.blp)
    app.register_blueprint(health.blp)
    app.register_blueprint(docs.blp)
    # Open311 GeoReport v2: its own documents and error form, not the /api/v1 envelope.
    app.register_blueprint(open311.blp)
    # After Api(app): these replace flask-smorest's own HTTPException handler.
    register_error_handlers(app)
