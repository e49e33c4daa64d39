"""Open311 integration clients: outside systems (a 12345 hotline, a citizen app) holding an
api_key, each reporting as a service user of its own (`flask open311 add-client NAME`)."""

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gridgov.errors import Conflict, Forbidden, Unauthorized, ValidationFailed
from gridgov.models import IntegrationClient, User
from gridgov.services.users import get_active_user


@dataclass(frozen=True)
class NewClient:
    client: IntegrationClient
    service_user: User
    api_key: str  # shown once; only its sha256 is stored


def hash_api_key(api_key: str) -> str:
    """sha256 hex of an api_key (what integration_client stores)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def create_client(session: Session, *, name: str, jurisdiction_id: str = "") -> NewClient:
    """An integration client with its service user (worker, unassigned) and a fresh api_key."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise ValidationFailed("A client name has 1-100 characters.", code="invalid_name")
    if session.scalar(select(IntegrationClient.id).where(IntegrationClient.name == name)):
        raise Conflict(f"A client named {name!r} exists already.", code="client_exists")
    # ASCII and deterministic per name (names are unique, and may be Chinese).
    username = f"open311-{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    user = User(
        username=username,
        display_name=f"Open311: {name}"[:100],
        # Random and not an Argon2 hash: no password can ever match it.
        password_hash=f"!open311-{secrets.token_hex(16)}",
        role="worker",
    )
    session.add(user)
    session.flush()
    api_key = secrets.token_urlsafe(32)
    client = IntegrationClient(
        name=name,
        api_key_sha256=hash_api_key(api_key),
        service_user_id=user.id,
        jurisdiction_id=jurisdiction_id.strip(),
    )
    session.add(client)
    session.flush()
    return NewClient(client=client, service_user=user, api_key=api_key)


def authenticate_client(session: Session, *, api_key: str | None) -> tuple[IntegrationClient, User]:
    """The active client holding this api_key and its service user, else Forbidden."""
    if not api_key:
        raise Forbidden("Missing api_key -- can't proceed with create_request.", code="no_api_key")
    client = session.scalar(
        select(IntegrationClient).where(
            IntegrationClient.api_key_sha256 == hash_api_key(api_key),
            IntegrationClient.is_active.is_(True),
        )
    )
    if client is None:
        raise Forbidden(
            "Invalid api_key received -- can't proceed with create_request.",
            code="invalid_api_key",
        )
    try:
        user = get_active_user(session, user_id=client.service_user_id)
    except Unauthorized as error:
        raise Forbidden(
            "This api_key's service account is deactivated.", code="invalid_api_key"
        ) from error
    return client, user
