"""Notifications: the outbox rows written with the change that causes them, the devices they are
pushed to, and one delivery per notification and device (services/notifications.py,
services/delivery.py)."""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gridgov.models.base import Base, CreatedAtMixin

NOTIFICATION_KINDS = ("dispatched", "returned", "escalated", "assignment_changed")
DEVICE_KINDS = ("webhook", "webpush")


def _known(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Notification(CreatedAtMixin, Base):
    """Something a person must act on; `idempotency_key` names the event and the recipient."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    kind: Mapped[str] = mapped_column(String(32))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id"))
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignment.id"))
    payload: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(_known("kind", NOTIFICATION_KINDS), name="kind_known"),
        # A user's list, newest first, and its unread part.
        Index("ix_notification_user", "user_id", "id"),
        Index(
            "ix_notification_user_unread", "user_id", "id", postgresql_where=text("read_at IS NULL")
        ),
    )


class Device(CreatedAtMixin, Base):
    """Where a user's notifications are pushed: a webhook of a vendor push gateway adapter, or
    a browser's Web Push subscription (`url` its endpoint, `push_keys` its p256dh and auth)."""

    __tablename__ = "device"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    # Signs every webhook body (HMAC-SHA256); shown to the user once, at registration.
    secret: Mapped[str | None] = mapped_column(String(64))
    push_keys: Mapped[dict | None] = mapped_column(JSONB)

    __table_args__ = (
        CheckConstraint(_known("kind", DEVICE_KINDS), name="kind_known"),
        CheckConstraint(
            "kind = 'webhook' AND secret IS NOT NULL OR kind = 'webpush' AND push_keys IS NOT NULL",
            name="credentials",
        ),
    )


class Delivery(Base):
    """One notification to one device: claimed with a lease, retried with backoff, acknowledged.

    A device that goes away takes its deliveries with it (ON DELETE CASCADE).
    """

    __tablename__ = "delivery"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notification.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"), index=True)
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    # None once delivered or given up.
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    # A deliverer holds the row until then; past it, another may take it (the first one died).
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("notification_id", "device_id", name="uq_delivery_notification_device"),
        Index(
            "ix_delivery_due",
            "next_attempt_at",
            postgresql_where=text("delivered_at IS NULL AND next_attempt_at IS NOT NULL"),
        ),
    )
