"""Refresh tokens by their jti: each is used once (rotation) and can be revoked.

Presenting a refresh token that was already rotated away means it was copied: every refresh
token of that user is then revoked (reuse detection), and the user logs in again. Access
tokens are short-lived and not tracked; a deactivated user is refused at the next request
that loads the user.
"""

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gridgov.errors import Unauthorized
from gridgov.models import RefreshToken, User
from gridgov.services import audit


def register_refresh(session: Session, *, user: User, jti: str, expires_at: datetime) -> None:
    """Remember a newly issued refresh token."""
    session.add(RefreshToken(jti=jti, user_id=user.id, expires_at=expires_at))
    session.flush()


def rotate_refresh(
    session: Session, *, user: User, old_jti: str, new_jti: str, expires_at: datetime
) -> None:
    """Use a refresh token once: retire it in favour of `new_jti`, or refuse it."""
    token = session.scalar(
        select(RefreshToken).where(RefreshToken.jti == old_jti).with_for_update()
    )
    if token is None or token.user_id != user.id or token.revoked_at is not None:
        raise Unauthorized("This refresh token is not valid any more.", code="token_revoked")
    if token.replaced_by is not None:
        revoked = revoke_all(session, user_id=user.id)
        audit.record(
            session,
            actor=user,
            action="refresh_reuse",
            target=f"user {user.id}",
            outcome="revoked",
            data={"revoked_tokens": revoked},
        )
        raise Unauthorized(
            "This refresh token was already used; log in again.", code="token_reused"
        )
    token.replaced_by = new_jti
    register_refresh(session, user=user, jti=new_jti, expires_at=expires_at)


def revoke(session: Session, *, user: User, jti: str) -> bool:
    """Revoke one of the user's refresh tokens; False if it is not theirs or already gone."""
    result = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.jti == jti,
            RefreshToken.user_id == user.id,
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=datetime.now(UTC))
    )
    return result.rowcount > 0


def revoke_all(session: Session, *, user_id: int) -> int:
    """Revoke every live refresh token of a user (logout everywhere, deactivation, reuse)."""
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return result.rowcount
