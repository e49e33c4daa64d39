"""The HTTP edge: blueprints, the OpenAPI document and the error envelope."""

from apispec import BasePlugin
from flask import Flask
from flask_smorest import Api

from gridgov.api import (
    areas,
    audit,
    auth,
    boundaries,
    boundary_edits,
    categories,
    converters,
    docs,
    exports,
    guards,
    health,
    incidents,
    notifications,
    open311,
    patrols,
    people,
    photos,
    routing,
    stats,
    tiles,
)
from gridgov.api.errors import register_error_handlers
from gridgov.api.input import GridgovJSONProvider, GridgovRequest
from gridgov.api.security import register_security
from gridgov.schemas.errors import ErrorSchema


class ErrorResponsesPlugin(BasePlugin):
    """Gives every documented 4xx/5xx response without a body schema the envelope's `Error`.

    `@blp.alt_response(404, description=…)` documents a status and its stable codes; the body
    is always the envelope, so the document says so instead of leaving it undescribed.
    """

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            for status, response in operation.get("responses", {}).items():
                if (
                    isinstance(response, dict)
                    and "content" not in response
                    and "$ref" not in response
                    and str(status)[0] in "45"
                ):
                    response["content"] = {"application/json": {"schema": "Error"}}


class GridgovApi(Api):
    """flask-smorest's Api documenting our error envelope (gridgov.schemas.errors)."""

    ERROR_SCHEMA = ErrorSchema


def register_api(app: Flask) -> None:
    """Register the API blueprints, docs assets and error handlers on `app`."""
    # Every JSON body is decoded by gridgov.api.input.decode_json (422, not 500, for valid JSON
    # that cannot be held).
    app.json = GridgovJSONProvider(app)
    app.request_class = GridgovRequest
    # Before any blueprint: rules bind their converters when they are added.
    app.url_map.converters.update(converters.CONVERTERS)
    api = GridgovApi(app, spec_kwargs={"extra_plugins": [ErrorResponsesPlugin()]})
    register_security(app)
    guards.register_input_guards(app)
    api.register_blueprint(auth.blp)
    api.register_blueprint(areas.blp)
    api.register_blueprint(audit.blp)
    api.register_blueprint(boundaries.blp)
    api.register_blueprint(boundary_edits.blp)
    api.register_blueprint(categories.blp)
    api.register_blueprint(incidents.blp)
    api.register_blueprint(exports.blp)
    api.register_blueprint(patrols.blp)
    api.register_blueprint(photos.blp)
    api.register_blueprint(routing.blp)
    api.register_blueprint(people.blp)
    api.register_blueprint(notifications.blp)
    api.register_blueprint(stats.blp)
    api.register_blueprint(tiles.blp)
    app.register_blueprint(health.blp)
    app.register_blueprint(docs.blp)
    # Open311 GeoReport v2: its own documents and error form, not the /api/v1 envelope.
    app.register_blueprint(open311.blp)
    # After Api(app): these replace flask-smorest's own HTTPException handler.
    register_error_handlers(app)
