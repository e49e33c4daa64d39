"""Small helpers shared by tests."""

from flask_jwt_extended import create_access_token


def bearer(app, user) -> dict[str, str]:
    """Authorization header with a fresh access token for `user`."""
    with app.app_context():
        token = create_access_token(identity=str(user.id), additional_claims={"role": user.role})
    return {"Authorization": f"Bearer {token}"}
