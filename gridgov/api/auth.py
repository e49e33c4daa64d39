"""Login, token refresh and the current user."""

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token, jwt_required
from flask_smorest import Blueprint

from gridgov.api.security import current_user
from gridgov.extensions import db
from gridgov.models import User
from gridgov.schemas.auth import AccessTokenSchema, LoginResultSchema, LoginSchema, MeSchema
from gridgov.services import users as user_service

blp = Blueprint("auth", __name__, url_prefix="/api/v1", description="Authentication.")


def _me(user: User) -> dict:
    areas = user_service.assigned_area_codes(db.session, user_id=user.id)
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "areas": areas,
    }


def _access_token(user: User) -> dict:
    expires = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    return {
        "access_token": create_access_token(
            identity=str(user.id), additional_claims={"role": user.role}
        ),
        "token_type": "Bearer",
        "expires_in": int(expires.total_seconds()),
    }


@blp.route("/auth/login", methods=["POST"])
@blp.arguments(LoginSchema)
@blp.response(200, LoginResultSchema)
@blp.alt_response(401, description="`invalid_credentials`")
@blp.doc(security=[])
def login(credentials):
    """Exchange a username and password for an access and a refresh token."""
    user = user_service.authenticate(db.session, **credentials)
    refresh = create_refresh_token(identity=str(user.id), additional_claims={"role": user.role})
    return {**_access_token(user), "refresh_token": refresh, "user": _me(user)}


@blp.route("/auth/refresh", methods=["POST"])
@jwt_required(refresh=True)
@blp.response(200, AccessTokenSchema)
@blp.doc(description="Send the refresh token as the Bearer token.")
def refresh():
    """A new access token for a refresh token whose user is still active."""
    return _access_token(current_user())


@blp.route("/me")
@blp.response(200, MeSchema)
def me():
    """The caller, their role and assigned area codes."""
    return _me(current_user())
