"""Refresh tokens by their jti, and the token generation that revokes access tokens.

A refresh token is used once (rotation) and can be revoked. Presenting one that was already
rotated away is either a retry of that same rotation, by a phone whose answer was lost (soon
after it, while the token that answer carried is still unused), or a copy in use somewhere
else: then every refresh token of the user is revoked (reuse detection) and the user logs in
again.

Access tokens are not stored. Each carries its user's `token_generation` (claim `gen`), which
the token gate checks on every request (`access_state`, one primary-key lookup, and
`check_access`). Raising the
generation (`revoke_access`) revokes every access token issued so far: on logout (the other
devices refresh once), a new password or role, deactivation and detected reuse.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from gridgov.errors import Unauthorized
from gridgov.models import RefreshToken, User
from gridgov.services import audit
from gridgov.services.routing import Executor

_ACCESS_STATE_SQL = text("SELECT is_active, token_generation FROM app_user WHERE id = :user_id")


def register_refresh(session: Session, *, user: User, jti: str, expires_at: datetime) -> None:
    """Remember a newly issued refresh token."""
    session.add(RefreshToken(jti=jti, user_id=user.id, expires_at=expires_at))
    session.flush()


def rotate_refresh(
    session: Session,
    *,
    user: User,
    old_jti: str,
    new_jti: str,
    expires_at: datetime,
    retry_window: timedelta,
) -> None:
    """Use a refresh token once: retire it in favour of `new_jti`, or refuse it.

    A token already rotated less than `retry_window` ago, whose successor is unused, is a
    retry: the successor is revoked and `new_jti` takes its place. Any other second use is
    reuse: every token of the user is revoked and Unauthorized(token_reused) raised.
    """
    # Two requests with the same token queue on this lock: the second sees what the first did.
    token = _locked(session, old_jti)
    if token is None or token.user_id != user.id or token.revoked_at is not None:
        raise Unauthorized("This refresh token is not valid any more.", code="token_revoked")
    now = datetime.now(UTC)
    if token.replaced_by is None:
        token.rotated_at = now
    else:
        _retry_or_refuse(session, user=user, token=token, now=now, retry_window=retry_window)
    token.replaced_by = new_jti
    register_refresh(session, user=user, jti=new_jti, expires_at=expires_at)


def _locked(session: Session, jti: str) -> RefreshToken | None:
    return session.scalar(select(RefreshToken).where(RefreshToken.jti == jti).with_for_update())


def _retry_or_refuse(
    session: Session, *, user: User, token: RefreshToken, now: datetime, retry_window: timedelta
) -> None:
    # The window counts from the first rotation, not from the last retry: retries never
    # stretch it.
    successor = _locked(session, token.replaced_by)
    unused = successor is not None and successor.replaced_by is None and not successor.revoked_at
    if unused and token.rotated_at is not None and now - token.rotated_at < retry_window:
        successor.revoked_at = now
        audit.record(session, actor=user, action="refresh_retry", target=f"user {user.id}")
        return
    revoked = revoke_all(session, user_id=user.id)
    audit.record(
        session,
        actor=user,
        action="refresh_reuse",
        target=f"user {user.id}",
        outcome="revoked",
        data={"revoked_tokens": revoked},
    )
    raise Unauthorized("This refresh token was already used; log in again.", code="token_reused")


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
    """Revoke every live refresh token and every access token of a user; count the former.

    For logout everywhere, a new password, deactivation and detected reuse.
    """
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    revoke_access(session, user_id=user_id)
    return result.rowcount


def revoke_access(session: Session, *, user_id: int) -> None:
    """Revoke every access token issued to a user so far (their refresh tokens stay valid)."""
    session.execute(
        update(User).where(User.id == user_id).values(token_generation=User.token_generation + 1)
    )


@dataclass(frozen=True)
class AccessState:
    """What decides whether a user's access tokens are still good."""

    is_active: bool
    generation: int


def access_state(connection: Executor, *, user_id: int) -> AccessState | None:
    """The user's active flag and token generation (None: no such user).

    `connection` is a lookup connection (the token gate) or the session.
    """
    row = connection.execute(_ACCESS_STATE_SQL, {"user_id": user_id}).fetchone()
    return AccessState(*row) if row else None


def check_access(state: AccessState | None, *, generation: object) -> None:
    """Refuse an access token of an inactive user, or of a generation revoked since.

    A token without a generation (issued before generations existed) is refused like a
    revoked one: the phone refreshes it.
    """
    if state is None or not state.is_active:
        raise Unauthorized("This account is not active.", code="account_inactive")
    if generation != state.generation:
        raise Unauthorized("This access token was revoked; refresh it.", code="token_revoked")
