"""Who is calling: the token gate in front of every endpoint, the current user and roles."""

from datetime import timedelta

from flask import Flask, g, request
from flask_jwt_extended import get_jwt, get_jwt_identity, verify_jwt_in_request

from gridgov.api.errors import error_response
from gridgov.errors import Forbidden
from gridgov.extensions import db, jwt, limiter
from gridgov.models import User
from gridgov.services import audit
from gridgov.services import users as user_service

# Endpoints anyone may call: login, health, the API docs, Open311 discovery, and the map page
# with its script and styles (the page holds no data; its data calls carry the token).
PUBLIC_ENDPOINTS = {
    "auth.login",
    "health.healthz",
    "health.readyz",
    "api-docs.openapi_json",
    "api-docs.openapi_swagger_ui",
    "docs_assets.static",
    "docs_page.static",
    # Open311 GeoReport v2: reads are public in the spec; POST requests checks its api_key.
    "open311.discovery",
    "open311.services",
    "open311.service_definition",
    "open311.create_request",
    "open311.list_requests",
    "open311.get_request",
    "web.map_page",
    "web.static",
}
# Endpoints that check a token of their own kind (the refresh token).
SELF_CHECKED_ENDPOINTS = {"auth.refresh"}


def register_security(app: Flask) -> None:
    """Configure JWTs from the app config and put the token gate in front of every request."""
    app.config.setdefault("JWT_SECRET_KEY", app.config["SECRET_KEY"])
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(minutes=app.config["ACCESS_TOKEN_MINUTES"])
    app.config["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(days=app.config["REFRESH_TOKEN_DAYS"])
    jwt.init_app(app)
    limiter.init_app(app)
    _register_token_errors()
    app.before_request(_remember_origin)
    app.before_request(_require_token)


def _remember_origin() -> None:
    # For the audit log (services read it from a context variable, not from Flask).
    audit.set_origin(audit.Origin(request.remote_addr, request.headers.get("User-Agent", "")))


def _require_token() -> None:
    endpoint = request.endpoint
    if endpoint is None or endpoint in PUBLIC_ENDPOINTS or endpoint in SELF_CHECKED_ENDPOINTS:
        return  # unknown URLs fall through to the 404 envelope
    verify_jwt_in_request()


def current_user() -> User:
    """The active user of the request's token (loaded once per token and app context)."""
    # Keyed by the token's id: an app context can outlive one request (tests, CLI).
    jti = get_jwt()["jti"]
    if g.get("current_user_jti") != jti:
        g.current_user = user_service.get_active_user(db.session, user_id=int(get_jwt_identity()))
        g.current_user_jti = jti
    return g.current_user


def current_role() -> str:
    """The role carried by the token (no database lookup)."""
    return get_jwt()["role"]


def require_role(*roles: str) -> User:
    """The current user, or Forbidden when their role is not one of `roles`."""
    user = current_user()
    if user.role not in roles:
        raise Forbidden(f"This needs the role {' or '.join(roles)}.")
    return user


def _register_token_errors() -> None:
    @jwt.unauthorized_loader
    def missing(reason: str):
        return error_response(401, error="token_missing", message=reason)

    @jwt.invalid_token_loader
    def invalid(reason: str):
        return error_response(401, error="token_invalid", message=reason)

    @jwt.expired_token_loader
    def expired(_header, _payload):
        return error_response(401, error="token_expired", message="The token has expired.")

    @jwt.revoked_token_loader
    def revoked(_header, _payload):
        return error_response(401, error="token_revoked", message="The token was revoked.")

    @jwt.needs_fresh_token_loader
    def needs_fresh(_header, _payload):
        return error_response(401, error="token_not_fresh", message="Log in again.")
