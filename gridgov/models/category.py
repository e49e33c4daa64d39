"""Incident categories: what a phone shows in its report form, with per-stage time limits."""

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gridgov.models.base import Base, CreatedAtMixin

PRIORITIES = ("low", "normal", "high", "urgent")


class Category(CreatedAtMixin, Base):
    __tablename__ = "category"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    group_name: Mapped[str] = mapped_column(String(100))
    default_priority: Mapped[str] = mapped_column(String(10), server_default="normal")
    # {"accept": {"amount": 1, "unit": "working_hours"}, "handle": {...}, "verify": {...}}
    time_limits: Mapped[dict] = mapped_column(JSONB)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # Set by an admin's change; with created_at it dates the service list (Open311's changeset).
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(
            f"default_priority IN ({', '.join(repr(p) for p in PRIORITIES)})",
            name="priority_known",
        ),
    )
