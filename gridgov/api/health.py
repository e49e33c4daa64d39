"""Liveness of the service and its database."""

from flask import Blueprint, jsonify
from sqlalchemy import text

from gridgov.extensions import db

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz():
    """200 when the database answers, 503 otherwise (the error envelope)."""
    db.session.execute(text("SELECT 1"))
    return jsonify(status="ok", database="ok")
