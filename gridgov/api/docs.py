"""Serves the Swagger UI assets locally, so /api/v1/docs works without a CDN."""

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint

SWAGGER_UI_DIST = Path(flask_swagger_ui.__file__).parent / "dist"

blp = Blueprint(
    "docs_assets",
    __name__,
    static_folder=str(SWAGGER_UI_DIST),
    static_url_path="/api/v1/docs/assets",
)
