"""Refresh rotation, retries and reuse detection, logout, revocation of access tokens (logout,
password, role, deactivation), login rate limits, and the audit log."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from flask_jwt_extended import decode_token
from sqlalchemy import delete, func, select, update

from gridgov.api.security import ACCESS_STATES_KEY, VERIFIED_TOKENS_KEY, AccessStates
from gridgov.extensions import db, limiter
from gridgov.models import AuditEvent, RefreshToken, User
from gridgov.services import tokens
from gridgov.services.demo import DEMO_PASSWORD
from tests import helpers
from tests.factories import make_user
from tests.helpers import configure


def login(client, username="grid_worker", password=DEMO_PASSWORD, **headers):
    return client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}, headers=headers
    )


def refresh(client, token):
    return client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {token}"})


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def error_of(response):
    assert response.status_code == 401, response.get_json()
    return response.get_json()["error"]


def test_refresh_rotates_and_a_used_token_cannot_come_back(client):
    first = login(client).get_json()
    rotated = refresh(client, first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    third = refresh(client, second["refresh_token"]).get_json()
    # The first one again after its successor was used: a copy is in use somewhere. Every
    # token of the user is revoked, access tokens included.
    reused = refresh(client, first["refresh_token"])
    assert reused.status_code == 401
    assert reused.get_json()["error"] == "token_reused"
    assert refresh(client, third["refresh_token"]).get_json()["error"] == "token_revoked"
    assert error_of(client.get("/api/v1/me", headers=bearer(third["access_token"]))) == (
        "token_revoked"
    )


# A phone whose refresh answer was lost sends the same refresh token again.


def test_a_retry_within_the_window_gets_new_tokens_and_kills_the_lost_ones(client, db_session):
    first = login(client).get_json()
    lost = refresh(client, first["refresh_token"]).get_json()
    retried = refresh(client, first["refresh_token"])
    assert retried.status_code == 200
    again = retried.get_json()
    assert set(again) == set(lost) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert again["refresh_token"] not in (lost["refresh_token"], first["refresh_token"])
    assert client.get("/api/v1/me", headers=bearer(again["access_token"])).status_code == 200
    # The answer that never arrived carried a refresh token nobody may use now.
    assert refresh(client, lost["refresh_token"]).get_json()["error"] == "token_revoked"
    # The chain goes on from the retry's token, and the user was not logged out.
    assert refresh(client, again["refresh_token"]).status_code == 200
    actions = db_session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert "refresh_retry" in actions and "refresh_reuse" not in actions


def test_a_retry_after_the_successor_was_used_is_reuse(client):
    first = login(client).get_json()
    second = refresh(client, first["refresh_token"]).get_json()
    third = refresh(client, second["refresh_token"]).get_json()  # the answer did arrive
    assert refresh(client, first["refresh_token"]).get_json()["error"] == "token_reused"
    assert refresh(client, third["refresh_token"]).get_json()["error"] == "token_revoked"


def test_a_retry_after_the_window_is_reuse(client, db_session):
    first = login(client).get_json()
    lost = refresh(client, first["refresh_token"]).get_json()
    db_session.execute(
        update(RefreshToken)
        .where(RefreshToken.replaced_by.is_not(None), RefreshToken.revoked_at.is_(None))
        .values(rotated_at=datetime.now(UTC) - timedelta(seconds=61))
    )
    reused = refresh(client, first["refresh_token"])
    assert reused.get_json()["error"] == "token_reused"
    assert refresh(client, lost["refresh_token"]).get_json()["error"] == "token_revoked"
    events = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (events.action, events.outcome) == ("refresh_reuse", "revoked")


def test_a_retry_window_of_zero_turns_retries_off(client, app, monkeypatch):
    first = login(client).get_json()
    refresh(client, first["refresh_token"])
    configure(monkeypatch, app, REFRESH_RETRY_SECONDS=0)
    assert refresh(client, first["refresh_token"]).get_json()["error"] == "token_reused"


def test_concurrent_retries_leave_one_live_chain(app):
    """Four retries of one lost rotation at once (real commits): one chain survives."""
    client = app.test_client()
    with app.app_context():
        start = db.session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))
        db.session.remove()
    first = login(client, "grid_head").get_json()
    lost = refresh(client, first["refresh_token"]).get_json()
    try:
        answers = helpers.run_at_once(lambda: refresh(app.test_client(), first["refresh_token"]))
        assert [a.status_code for a in answers] == [200] * 4  # each one a retry of the last
        issued = [a.get_json()["refresh_token"] for a in answers]
        with app.app_context():
            live = db.session.scalars(
                select(RefreshToken.jti).where(
                    RefreshToken.jti.in_([_jti(t) for t in [lost["refresh_token"], *issued]]),
                    RefreshToken.revoked_at.is_(None),
                    RefreshToken.replaced_by.is_(None),
                )
            ).all()
            db.session.remove()
        assert len(live) == 1
    finally:
        with app.app_context():
            user_id = int(decode_token(first["refresh_token"])["sub"])
            db.session.execute(delete(RefreshToken).where(RefreshToken.user_id == user_id))
            db.session.execute(delete(AuditEvent).where(AuditEvent.id > start))
            db.session.execute(update(User).where(User.id == user_id).values(token_generation=0))
            db.session.commit()


def _jti(token: str) -> str:
    return decode_token(token)["jti"]


def test_logout_revokes_the_refresh_token(client):
    tokens = login(client).get_json()
    response = client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 204
    assert refresh(client, tokens["refresh_token"]).get_json()["error"] == "token_revoked"


def test_logout_everywhere(client):
    phone = login(client).get_json()
    tablet = login(client).get_json()
    response = client.post(
        "/api/v1/auth/logout", json={"all": True}, headers=bearer(phone["access_token"])
    )
    assert response.status_code == 204
    for session in (phone, tablet):
        assert refresh(client, session["refresh_token"]).status_code == 401


@pytest.mark.parametrize("body", [{}, {"refresh_token": "not-a-jwt"}])
def test_logout_needs_a_real_refresh_token(client, body):
    tokens = login(client).get_json()
    response = client.post("/api/v1/auth/logout", json=body, headers=bearer(tokens["access_token"]))
    assert response.status_code in (401, 422)


def test_deactivation_revokes_refresh_tokens(client, auth, demo_users):
    tokens = login(client, "grid_head").get_json()
    response = client.patch(
        f"/api/v1/users/{demo_users['grid_head'].id}",
        json={"is_active": False},
        headers=auth("admin"),
    )
    assert response.status_code == 200
    assert refresh(client, tokens["refresh_token"]).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(tokens["access_token"])).status_code == 401


# Access tokens are checked against the user's token generation on every request, also on
# endpoints that never load the user, and also when the worker remembers the token.

EVERY_KIND_OF_ENDPOINT = (
    "/api/v1/route?lon=121.55&lat=29.83",
    "/api/v1/areas?level=town",
    "/api/v1/categories",
    "/api/v1/me",
)


def assert_refused_everywhere(client, headers, error):
    for url in EVERY_KIND_OF_ENDPOINT:
        assert error_of(client.get(url, headers=headers)) == error, url


def assert_accepted_everywhere(client, headers):
    for url in EVERY_KIND_OF_ENDPOINT:
        assert client.get(url, headers=headers).status_code == 200, url


@pytest.fixture
def worker(app, db_session):
    """A fresh worker without assignments, and headers with its access token (already used)."""
    user = make_user(db_session, username="revocable")
    return user, helpers.bearer(app, user)


def patch_user(client, auth, user, **body):
    response = client.patch(f"/api/v1/users/{user.id}", json=body, headers=auth("admin"))
    assert response.status_code == 200, response.get_json()


def test_a_deactivated_users_access_token_is_refused_everywhere(client, auth, worker):
    user, headers = worker
    assert_accepted_everywhere(client, headers)  # now remembered by the worker
    patch_user(client, auth, user, is_active=False)
    assert_refused_everywhere(client, headers, "account_inactive")
    # reactivated, the old token stays revoked: the user logs in again
    patch_user(client, auth, user, is_active=True)
    assert_refused_everywhere(client, headers, "token_revoked")


def test_a_user_deactivated_in_the_database_is_refused_everywhere(client, db_session, worker):
    user, headers = worker
    assert_accepted_everywhere(client, headers)
    user.is_active = False  # no generation raised: the active flag alone is enough
    db_session.flush()
    assert_refused_everywhere(client, headers, "account_inactive")


def test_a_password_change_revokes_access_tokens(client, auth, worker):
    user, headers = worker
    assert_accepted_everywhere(client, headers)
    patch_user(client, auth, user, password="a-brand-new-password")
    assert_refused_everywhere(client, headers, "token_revoked")


def test_a_role_change_revokes_access_tokens(app, client, auth, worker):
    user, headers = worker
    assert_accepted_everywhere(client, headers)
    patch_user(client, auth, user, role="supervisor")
    assert_refused_everywhere(client, headers, "token_revoked")
    assert client.get("/api/v1/me", headers=helpers.bearer(app, user)).get_json()["role"] == (
        "supervisor"
    )


@pytest.mark.parametrize("everywhere", [False, True])
def test_logout_revokes_access_tokens_and_other_devices_refresh_once(client, everywhere):
    phone = login(client).get_json()
    tablet = login(client).get_json()
    for device in (phone, tablet):
        assert_accepted_everywhere(client, bearer(device["access_token"]))
    body = {"all": True} if everywhere else {"refresh_token": phone["refresh_token"]}
    response = client.post("/api/v1/auth/logout", json=body, headers=bearer(phone["access_token"]))
    assert response.status_code == 204
    for device in (phone, tablet):
        assert_refused_everywhere(client, bearer(device["access_token"]), "token_revoked")
    renewed = refresh(client, tablet["refresh_token"])
    if everywhere:
        assert error_of(renewed) == "token_revoked"
    else:
        assert renewed.status_code == 200
        assert_accepted_everywhere(client, bearer(renewed.get_json()["access_token"]))


def test_reuse_detection_revokes_access_tokens(client):
    first = login(client).get_json()
    second = refresh(client, first["refresh_token"]).get_json()
    refresh(client, second["refresh_token"])
    assert_accepted_everywhere(client, bearer(second["access_token"]))
    assert refresh(client, first["refresh_token"]).get_json()["error"] == "token_reused"
    assert_refused_everywhere(client, bearer(second["access_token"]), "token_revoked")


def test_an_access_token_without_a_generation_is_refused(app, client, demo_users):
    from flask_jwt_extended import create_access_token

    user = demo_users["grid_worker"]
    with app.app_context():  # as issued before generations existed
        token = create_access_token(identity=str(user.id), additional_claims={"role": user.role})
    assert_refused_everywhere(client, bearer(token), "token_revoked")


def test_a_remembered_token_is_checked_on_every_request(app, client, db_session, worker):
    user, headers = worker
    assert client.get("/api/v1/categories", headers=headers).status_code == 200
    assert headers["Authorization"] in app.extensions[VERIFIED_TOKENS_KEY]._entries
    tokens.revoke_access(db_session, user_id=user.id)
    assert error_of(client.get("/api/v1/categories", headers=headers)) == "token_revoked"


def test_a_worker_reuses_an_access_state_for_the_configured_seconds_only(
    app, client, db_session, worker, monkeypatch
):
    user, headers = worker
    monkeypatch.setitem(app.extensions, ACCESS_STATES_KEY, AccessStates(ttl_seconds=1.0))
    assert client.get("/api/v1/categories", headers=headers).status_code == 200
    tokens.revoke_access(db_session, user_id=user.id)
    # the documented staleness: this worker read the state less than a second ago
    assert client.get("/api/v1/categories", headers=headers).status_code == 200
    time.sleep(1.05)
    assert error_of(client.get("/api/v1/categories", headers=headers)) == "token_revoked"


def test_refresh_refuses_a_deactivated_user(client, db_session, demo_users):
    tokens = login(client, "grid_head").get_json()
    user = db_session.get(User, demo_users["grid_head"].id)
    user.is_active = False  # its refresh tokens were not revoked
    db_session.flush()
    assert error_of(refresh(client, tokens["refresh_token"])) == "account_inactive"


@pytest.fixture
def rate_limited(app, monkeypatch):
    """Fresh counters, and a setter of limits that are put back afterwards."""
    limiter.reset()
    yield lambda **limits: configure(monkeypatch, app, **limits)
    limiter.reset()


def test_login_is_rate_limited_per_username(client, rate_limited):
    rate_limited(LOGIN_RATE_LIMIT_PER_USERNAME="3/minute")
    statuses = [login(client, "admin", "wrong").status_code for _ in range(5)]
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429]
    blocked = login(client, "admin", "wrong")
    assert blocked.get_json()["error"] == "rate_limited"
    assert "Retry-After" in blocked.headers
    # another username is not blocked by admin's failures
    assert login(client, "grid_worker").status_code == 200


def test_login_is_rate_limited_per_address(client, rate_limited):
    rate_limited(LOGIN_RATE_LIMIT_PER_IP="4/minute")
    statuses = [login(client, name, "x").status_code for name in ["a1", "a2", "a3", "a4", "a5"]]
    assert statuses == [401, 401, 401, 401, 429]


def test_logins_and_admin_actions_are_audited(client, auth, db_session):
    login(client, "grid_worker", headers={"User-Agent": "phone/1.0"})
    login(client, "grid_worker", "wrong")
    client.post(
        "/api/v1/users",
        json={"username": "newbie", "role": "worker", "password": "long-enough-pass"},
        headers=auth("admin"),
    )
    events = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    summary = [(e.actor_name, e.action, e.outcome) for e in events[-3:]]
    assert summary == [
        ("grid_worker", "login", "ok"),
        ("grid_worker", "login", "failed"),
        ("admin", "create_user", "ok"),
    ]
    assert str(events[-3].remote_addr) == "127.0.0.1"
    listed = client.get("/api/v1/audit?limit=3", headers=auth("admin")).get_json()["items"]
    assert [item["action"] for item in listed] == ["create_user", "login", "login"]
    assert client.get("/api/v1/audit", headers=auth("town_supervisor")).status_code == 403


def test_boundary_changes_are_audited(client, auth, db_session):
    from shapely.geometry import mapping

    from gridgov.models import Area
    from gridgov.spatial import from_db

    code = "330212005001001001"
    boundary = from_db(db_session.scalar(select(Area.boundary).where(Area.code == code)))
    body = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": mapping(boundary),
                "properties": {"code": code, "parent": code[:-3]},
            }
        ],
    }
    response = client.post(
        "/api/v1/boundaries/changes?dry_run=false", json=body, headers=auth("admin")
    )
    assert response.get_json()["applied"] is True
    event = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (event.actor_name, event.action) == ("admin", "apply_changeset")
    assert event.data["changeset"] == response.get_json()["changeset"]


def test_only_a_429_carries_the_rate_limit_retry_after(client, rate_limited):
    rate_limited(LOGIN_RATE_LIMIT_PER_USERNAME="1/minute")
    first = login(client, "grid_worker")
    assert first.status_code == 200 and "Retry-After" not in first.headers
    second = login(client, "grid_worker")
    assert second.status_code == 429
    assert 1 <= int(second.headers["Retry-After"]) <= 60


def test_configured_default_limits_are_still_checked_on_every_request(app):
    # The app-wide limiter hook is dropped only while no default or application limits exist.
    from gridgov import create_app

    limited = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "RATELIMIT_DEFAULT": "2/minute",
        }
    )
    client = limited.test_client()
    limiter.reset()
    try:
        statuses = [
            client.get("/healthz", environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code
            for _ in range(3)
        ]
    finally:
        limiter.reset()
    assert statuses == [200, 200, 429]
