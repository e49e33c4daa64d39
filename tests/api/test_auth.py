"""Login, refresh, /me and the token gate."""

import time

import pytest

from gridgov import create_app
from gridgov.api.security import access_token_for
from gridgov.services.demo import DEMO_PASSWORD


def login(client, username, password=DEMO_PASSWORD):
    return client.post("/api/v1/auth/login", json={"username": username, "password": password})


def test_login_returns_tokens_and_the_user(client):
    response = login(client, "town_supervisor")
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert body["user"]["role"] == "supervisor"
    assert body["user"]["areas"] == ["330212001"]
    assert "password" not in body["user"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.get_json()["username"] == "town_supervisor"


def test_username_is_case_insensitive(client):
    assert login(client, "Grid_Worker").status_code == 200


@pytest.mark.parametrize(
    "username, password", [("admin", "wrong"), ("nobody", DEMO_PASSWORD), ("admin", "")]
)
def test_bad_credentials_are_401_invalid_credentials(client, username, password):
    response = login(client, username, password)
    if password == "":
        assert response.status_code == 422  # empty password does not even validate
        return
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_credentials"


def test_deactivated_user_cannot_log_in_or_use_a_token(client, db_session, demo_users, auth):
    from gridgov.models import User

    headers = auth("grid_head")
    user = db_session.get(User, demo_users["grid_head"].id)
    user.is_active = False
    db_session.flush()
    assert login(client, "grid_head").get_json()["error"] == "invalid_credentials"
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == "account_inactive"


def test_refresh_gives_a_new_access_token_only_for_a_refresh_token(client):
    tokens = login(client, "admin").get_json()
    refreshed = client.post(
        "/api/v1/auth/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    )
    assert refreshed.status_code == 200
    assert refreshed.get_json()["access_token"]
    wrong_kind = client.post(
        "/api/v1/auth/refresh", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert wrong_kind.status_code == 401
    # and a refresh token is not an access token
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert me.status_code == 401


@pytest.mark.parametrize(
    "headers, error",
    [
        ({}, "token_missing"),
        ({"Authorization": "Bearer not.a.jwt"}, "token_invalid"),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, "token_missing"),
    ],
)
def test_endpoints_need_a_token(client, headers, error):
    for url in ("/api/v1/me", "/api/v1/areas", "/api/v1/areas/330212"):
        response = client.get(url, headers=headers)
        assert response.status_code == 401, url
        assert response.get_json()["error"] == error


def test_expired_token_is_401_token_expired(app, client, demo_users):
    from datetime import timedelta

    token = _token(app, demo_users["admin"], expires_delta=timedelta(seconds=-1))
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.get_json()["error"] == "token_expired"


def test_public_endpoints_need_no_token(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200
    assert client.get("/api/v1/docs").status_code == 200


# Verified access tokens are remembered per app (gridgov/api/security.py): the same signed
# bytes until they expire, nothing else.


def _token(app, user, **kwargs) -> str:
    with app.app_context():
        return access_token_for(user, **kwargs)


def test_a_remembered_token_still_expires(app, client, demo_users):
    from datetime import timedelta

    token = _token(app, demo_users["admin"], expires_delta=timedelta(seconds=2))
    headers = {"Authorization": f"Bearer {token}"}
    first = client.get("/api/v1/me", headers=headers)
    assert first.status_code == 200
    assert first.get_json()["username"] == "admin"
    time.sleep(2.1)
    assert client.get("/api/v1/me", headers=headers).get_json()["error"] == "token_expired"


def test_a_remembered_token_gives_its_own_claims(client, app, demo_users):
    for username in ("admin", "grid_worker", "admin", "grid_worker"):
        headers = {"Authorization": f"Bearer {_token(app, demo_users[username])}"}
        for _ in range(2):  # verified, then remembered
            assert client.get("/api/v1/me", headers=headers).get_json()["username"] == username


def test_a_forged_signature_is_refused_after_the_real_token_was_seen(client, app, demo_users):
    token = _token(app, demo_users["grid_worker"])
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "token_invalid"


def test_another_app_with_another_secret_does_not_trust_tokens_seen_here(app, client, demo_users):
    token = _token(app, demo_users["grid_worker"])
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    other = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "SECRET_KEY": "another-deployment-another-secret-of-32-bytes-or-more",
        }
    )
    response = other.test_client().get(
        "/api/v1/route?lon=121.55&lat=29.83", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "token_invalid"


def test_responses_set_no_cookie(client, auth):
    assert "Set-Cookie" not in login(client, "grid_worker").headers
    assert "Set-Cookie" not in client.get("/api/v1/me", headers=auth("grid_worker")).headers
