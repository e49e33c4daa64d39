"""People: users with a role, and their assignments to areas (history kept)."""

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gridgov.models.area import Area
from gridgov.models.base import Base, CreatedAtMixin

ROLES = ("worker", "supervisor", "admin")
DUTIES = ("grid_head", "full_time", "part_time", "supervisor")


class User(CreatedAtMixin, Base):
    # "user" is reserved in PostgreSQL.
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    deactivated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Carried by access tokens (claim `gen`) and checked on every request: raising it revokes
    # every access token issued so far (logout, new password, new role, deactivation).
    token_generation: Mapped[int] = mapped_column(server_default=text("0"))

    assignments: Mapped[list["Assignment"]] = relationship(
        back_populates="user", foreign_keys="Assignment.user_id"
    )

    __table_args__ = (
        CheckConstraint(f"role IN ({', '.join(repr(r) for r in ROLES)})", name="role_known"),
        # Usernames are unique regardless of case.
        Index("uq_app_user_username_lower", func.lower(username), unique=True),
    )

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}>"


class Assignment(CreatedAtMixin, Base):
    """A user on duty in an area for a period; ending it sets active_to, never deletes."""

    __tablename__ = "assignment"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("area.id"), index=True)
    duty: Mapped[str] = mapped_column(String(16))
    active_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    active_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))

    user: Mapped[User] = relationship(back_populates="assignments", foreign_keys=[user_id])
    area: Mapped[Area] = relationship()

    __table_args__ = (
        CheckConstraint(f"duty IN ({', '.join(repr(d) for d in DUTIES)})", name="duty_known"),
        CheckConstraint("active_to IS NULL OR active_to > active_from", name="active_period"),
    )
