"""Login, token refresh (rotating), logout and the current user."""

from datetime import UTC, datetime

from flask import request
from flask_jwt_extended import (
    create_refresh_token,
    decode_token,
    get_jwt,
    jwt_required,
)
from jwt import PyJWTError

from gridgov.api.input import Blueprint
from gridgov.api.security import access_token_for, current_user
from gridgov.errors import Unauthorized
from gridgov.extensions import db, limiter
from gridgov.models import User
from gridgov.schemas.auth import (
    LoginResultSchema,
    LoginSchema,
    LogoutSchema,
    MeSchema,
    RefreshResultSchema,
)
from gridgov.services import audit, tokens
from gridgov.services import users as user_service
from gridgov.settings import settings

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
    expires = settings().tokens.access
    return {
        "access_token": access_token_for(user),
        "token_type": "Bearer",
        "expires_in": int(expires.total_seconds()),
    }


def _new_refresh_token(user: User) -> tuple[str, str, datetime]:
    token = create_refresh_token(identity=str(user.id), additional_claims={"role": user.role})
    claims = decode_token(token)
    return token, claims["jti"], datetime.fromtimestamp(claims["exp"], UTC)


def _login_username() -> str:
    body = request.get_json(silent=True)
    username = body.get("username") if isinstance(body, dict) else None
    return str(username).lower()[:64] if username else "-"


@blp.route("/auth/login", methods=["POST"])
@limiter.limit(lambda: settings().rate_limits.login_per_ip)
@limiter.limit(
    lambda: settings().rate_limits.login_per_username,
    key_func=_login_username,
    scope="login-username",
)
@blp.arguments(LoginSchema)
@blp.response(200, LoginResultSchema)
@blp.alt_response(401, description="`invalid_credentials`")
@blp.alt_response(429, description="`rate_limited`: too many attempts; see Retry-After.")
@blp.doc(security=[])
def login(credentials):
    """Exchange a username and password for an access and a refresh token."""
    try:
        user = user_service.authenticate(db.session, **credentials)
    except Unauthorized:
        db.session.commit()  # the failed attempt stays in the audit log
        raise
    refresh, jti, expires_at = _new_refresh_token(user)
    tokens.register_refresh(db.session, user=user, jti=jti, expires_at=expires_at)
    db.session.commit()
    return {**_access_token(user), "refresh_token": refresh, "user": _me(user)}


@blp.route("/auth/refresh", methods=["POST"])
@jwt_required(refresh=True)
@blp.response(200, RefreshResultSchema)
@blp.doc(
    description="Send the refresh token as the Bearer token. It is used up: keep the new one. "
    "Sent again within GRIDGOV_REFRESH_RETRY_SECONDS (default 60) while the one it was "
    "exchanged for is unused (its answer was lost), it is exchanged again and that one is "
    "revoked; any other second use revokes every token of the user (`token_reused`)."
)
def refresh():
    """A new access token and a new refresh token; the one sent cannot be used again."""
    user = current_user()
    new_refresh, new_jti, expires_at = _new_refresh_token(user)
    try:
        tokens.rotate_refresh(
            db.session,
            user=user,
            old_jti=get_jwt()["jti"],
            new_jti=new_jti,
            expires_at=expires_at,
            retry_window=settings().tokens.refresh_retry,
        )
    except Unauthorized:
        db.session.commit()  # a detected reuse revokes the family even though this call fails
        raise
    db.session.commit()
    return {**_access_token(user), "refresh_token": new_refresh}


@blp.route("/auth/logout", methods=["POST"])
@blp.arguments(LogoutSchema)
@blp.response(204)
def logout(body):
    """Revoke the given refresh token, or with `all: true` every one of the caller's.

    Either way every access token of the caller stops working: other devices refresh once.
    """
    user = current_user()
    if body.get("all"):
        count = tokens.revoke_all(db.session, user_id=user.id)
    else:
        count = int(tokens.revoke(db.session, user=user, jti=_refresh_jti(body["refresh_token"])))
        tokens.revoke_access(db.session, user_id=user.id)
    audit.record(
        db.session, actor=user, action="logout", target=user.username, data={"revoked": count}
    )
    db.session.commit()


def _refresh_jti(token: str) -> str:
    try:
        claims = decode_token(token, allow_expired=True)
    except PyJWTError as error:
        raise Unauthorized("Not a refresh token of this service.", code="token_invalid") from error
    if claims.get("type") != "refresh":
        raise Unauthorized("Not a refresh token.", code="token_invalid")
    return claims["jti"]


@blp.route("/me")
@blp.response(200, MeSchema)
def me():
    """The caller, their role and assigned area codes."""
    return _me(current_user())
