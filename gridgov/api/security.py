"""Who is calling: the token gate in front of every endpoint, the current user and roles."""

import time

from flask import Flask, current_app, g, request
from flask.sessions import SessionInterface
from flask_jwt_extended import (
    create_access_token,
    get_jwt,
    get_jwt_header,
    get_jwt_identity,
    verify_jwt_in_request,
)

from gridgov.api.errors import error_response
from gridgov.errors import Forbidden
from gridgov.extensions import db, jwt, limiter, lookups
from gridgov.models import User
from gridgov.services import audit, tokens
from gridgov.services import users as user_service
from gridgov.settings import settings

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
    "web.editor_page",  # the page holds no data; its calls carry an admin token
    "web.workbench_page",
    "web.static",
}
# Where each app keeps the access tokens it has verified (one cache per app, so per secret).
VERIFIED_TOKENS_KEY = "gridgov_verified_tokens"
# Where each app keeps its users' recently read access states (revocation checks).
ACCESS_STATES_KEY = "gridgov_access_states"
# Where roles_allowed leaves the roles on a view function.
_ROLES_ATTRIBUTE = "gridgov_roles_allowed"
# Endpoints that check a token of their own kind (the refresh token).
SELF_CHECKED_ENDPOINTS = {"auth.refresh"}


def register_security(app: Flask) -> None:
    """Configure JWTs from the app config and put the token gate in front of every request."""
    tokens = settings(app).tokens
    app.config.setdefault("JWT_SECRET_KEY", app.config["SECRET_KEY"])
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = tokens.access
    app.config["JWT_REFRESH_TOKEN_EXPIRES"] = tokens.refresh
    app.session_interface = TokenOnlySessions()
    app.extensions[VERIFIED_TOKENS_KEY] = VerifiedTokens()
    app.extensions[ACCESS_STATES_KEY] = AccessStates(tokens.check_cache_seconds)
    jwt.init_app(app)
    limiter.init_app(app)
    _check_limits_only_where_declared(app)
    _register_token_errors()
    app.before_request(_remember_origin)
    app.before_request(_require_token)


class TokenOnlySessions(SessionInterface):
    """No cookie session: a caller is known by its bearer token alone.

    Flask's default opens a signed-cookie session on every request once SECRET_KEY is set.
    Nothing here uses flask.session (writing to it now raises), so none is opened or sent.
    """

    def open_session(self, app, request):
        """The null session, always."""
        return self.make_null_session(app)

    def save_session(self, app, session, response) -> None:
        """Nothing to save."""


def _check_limits_only_where_declared(app: Flask) -> None:
    # flask-limiter looks at every request in a before_request hook, for default, application
    # and blueprint limits. gridgov declares none of those: its limits are per endpoint
    # (@limiter.limit on login), and those decorators check the limit themselves. The hook
    # cost about 0.1 ms on every request, the largest fixed cost of a routing lookup.
    if app.config.get("RATELIMIT_DEFAULT") or app.config.get("RATELIMIT_APPLICATION"):
        return
    app.before_request_funcs[None].remove(limiter._check_request_limit)


def _remember_origin() -> None:
    # For the audit log (services read it from a context variable, not from Flask).
    audit.set_origin(audit.Origin(request.remote_addr, request.headers.get("User-Agent", "")))


def _require_token() -> None:
    endpoint = request.endpoint
    if endpoint is None or endpoint in PUBLIC_ENDPOINTS or endpoint in SELF_CHECKED_ENDPOINTS:
        return  # unknown URLs fall through to the 404 envelope
    verified_tokens = current_app.extensions[VERIFIED_TOKENS_KEY]
    authorization = request.headers.get("Authorization")
    if authorization is None or not verified_tokens.restore(authorization):
        if verify_jwt_in_request() is None:
            return  # a method the extension exempts: OPTIONS, the CORS preflights
        if authorization is not None:
            verified_tokens.remember(authorization, get_jwt_header(), get_jwt())
    # Remembered or not, every request checks that the user is still active and the token's
    # generation still current (logout, new password or role, deactivation).
    user_id = int(get_jwt_identity())
    tokens.check_access(
        current_app.extensions[ACCESS_STATES_KEY].get(user_id), generation=get_jwt().get("gen")
    )
    _check_role(endpoint)


def access_token_for(user: User, **kwargs) -> str:
    """A signed access token for `user`: id, role and current token generation."""
    claims = {"role": user.role, "gen": user.token_generation}
    return create_access_token(identity=str(user.id), additional_claims=claims, **kwargs)


class VerifiedTokens:
    """Access tokens this worker has already verified, until they expire.

    A phone sends the same token with every request for its 15 minutes; checking its
    signature each time (PyJWT parses it four times per request in flask-jwt-extended) was
    the largest cost of a routing lookup. The key is the whole Authorization header, so only
    the very same signed bytes match. Only the signature check is skipped: whether the token
    was revoked since is asked on every request (`_require_token`).
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._entries: dict[str, tuple[dict, dict]] = {}
        self._max_entries = max_entries

    def remember(self, authorization: str, header: dict, claims: dict) -> None:
        """Keep a verified token's header and claims (forget them all when full)."""
        if len(self._entries) >= self._max_entries:
            self._entries.clear()  # rare: a worker sees far fewer live tokens than this
        self._entries[authorization] = (header, claims)

    def restore(self, authorization: str) -> bool:
        """Make a remembered, unexpired token the request's verified token; False if none."""
        entry = self._entries.get(authorization)
        if entry is None:
            return False
        header, claims = entry
        if claims["exp"] <= time.time():
            self._entries.pop(authorization, None)
            return False  # flask-jwt-extended answers token_expired
        # Where verify_jwt_in_request leaves its result for get_jwt() and friends (the
        # extension has no hook for a cache; its version is pinned and every endpoint's tests
        # read the claims through these names).
        g._jwt_extended_jwt_user = {"loaded_user": None}
        g._jwt_extended_jwt_header = header
        g._jwt_extended_jwt = claims
        g._jwt_extended_jwt_location = "headers"
        return True


class AccessStates:
    """Each user's active flag and token generation, as this worker read them lately.

    Read with one primary-key lookup on a lookup connection (not the session, which endpoints
    such as GET /route never open), and reused for `ttl_seconds`: about 0.1 ms of every
    request otherwise, as much as a routing lookup's largest fixed cost used to be. So a
    revocation (logout, new password or role, deactivation) reaches every worker within
    `ttl_seconds`; 0 reads on every request.
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 4096) -> None:
        self._entries: dict[int, tuple[float, tokens.AccessState | None]] = {}
        self._ttl = ttl_seconds
        self._max_entries = max_entries

    def get(self, user_id: int) -> tokens.AccessState | None:
        """The user's access state, read at most `ttl_seconds` ago (None: no such user)."""
        now = time.monotonic()
        entry = self._entries.get(user_id)
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        state = lookups.run(tokens.access_state, user_id=user_id)
        if self._ttl > 0:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()  # rare: far fewer users call one worker within the ttl
            self._entries[user_id] = (now, state)
        return state


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


def roles_allowed(*roles: str):
    """Decorator (right under @blp.route): only these roles may call the endpoint.

    The token gate checks it from the token's role before anything reads the request body, so
    a worker's token cannot make a process parse a 64 MiB change set only to be refused. (A
    role change bumps the token generation, so the role in a valid token is the current one.)
    """

    def decorate(view):
        setattr(view, _ROLES_ATTRIBUTE, frozenset(roles))
        return view

    return decorate


def _check_role(endpoint: str) -> None:
    roles = getattr(current_app.view_functions[endpoint], _ROLES_ATTRIBUTE, None)
    if roles is not None and get_jwt()["role"] not in roles:
        raise Forbidden(f"This needs the role {' or '.join(sorted(roles))}.")


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
