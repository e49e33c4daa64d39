"""Refresh rotation and reuse detection, logout, revocation on deactivation, login rate
limits, and the audit log."""

import pytest
from sqlalchemy import select

from gridgov.extensions import limiter
from gridgov.models import AuditEvent
from gridgov.services.demo import DEMO_PASSWORD


def login(client, username="grid_worker", password=DEMO_PASSWORD, **headers):
    return client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}, headers=headers
    )


def refresh(client, token):
    return client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {token}"})


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_refresh_rotates_and_a_used_token_cannot_come_back(client):
    first = login(client).get_json()
    rotated = refresh(client, first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    # The first one again: a copy is in use somewhere. Every token of the user is revoked.
    reused = refresh(client, first["refresh_token"])
    assert reused.status_code == 401
    assert reused.get_json()["error"] == "token_reused"
    assert refresh(client, second["refresh_token"]).get_json()["error"] == "token_revoked"


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


@pytest.fixture
def rate_limited(app):
    """Fresh counters, and limits put back as the test config has them afterwards."""
    saved = {k: app.config[k] for k in ("LOGIN_RATE_LIMIT_PER_IP", "LOGIN_RATE_LIMIT_PER_USERNAME")}
    limiter.reset()
    yield app.config
    app.config.update(saved)
    limiter.reset()


def test_login_is_rate_limited_per_username(client, rate_limited):
    rate_limited["LOGIN_RATE_LIMIT_PER_USERNAME"] = "3/minute"
    statuses = [login(client, "admin", "wrong").status_code for _ in range(5)]
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429]
    blocked = login(client, "admin", "wrong")
    assert blocked.get_json()["error"] == "rate_limited"
    assert "Retry-After" in blocked.headers
    # another username is not blocked by admin's failures
    assert login(client, "grid_worker").status_code == 200


def test_login_is_rate_limited_per_address(client, rate_limited):
    rate_limited["LOGIN_RATE_LIMIT_PER_IP"] = "4/minute"
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
    rate_limited["LOGIN_RATE_LIMIT_PER_USERNAME"] = "1/minute"
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
