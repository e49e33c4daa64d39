"""Security records: the audit log, refresh tokens (rotation, revocation), integration clients."""

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, String, func, text
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gridgov.models.base import Base, CreatedAtMixin


class AuditEvent(Base):
    """Who did what, when, from where: logins, failed logins, every admin action."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    actor_name: Mapped[str] = mapped_column(String(64), server_default="")
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(200), server_default="")
    outcome: Mapped[str] = mapped_column(String(16), server_default="ok")
    remote_addr: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str] = mapped_column(String(300), server_default="")
    data: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))

    __table_args__ = (
        Index("ix_audit_event_at", "at"),
        Index("ix_audit_event_actor", "actor_id", "at"),
    )


class RefreshToken(CreatedAtMixin, Base):
    """A refresh token by its jti: used once (rotation), revocable (logout, deactivation)."""

    __tablename__ = "refresh_token"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replaced_by: Mapped[str | None] = mapped_column(String(64))
    # When it was rotated to `replaced_by`: a retry of that rotation is allowed for a while.
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IntegrationClient(CreatedAtMixin, Base):
    """An outside system (citizen app, 12345 hotline) posting Open311 requests with an api_key.

    Requests it submits are reported by its service user, so scoping and idempotency work as
    for any reporter.
    """

    __tablename__ = "integration_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # sha256 of the key: a leaked table does not leak usable keys.
    api_key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    service_user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    jurisdiction_id: Mapped[str] = mapped_column(String(100), server_default="")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
