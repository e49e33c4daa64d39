"""Patrols: a worker's walk through their grid, as a track of timed points."""

from datetime import datetime

from geoalchemy2 import WKBElement
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from geo.crs import SUPPORTED_CRS
from gridgov.models.base import Base, CreatedAtMixin
from gridgov.models.incident import point_column


class Patrol(CreatedAtMixin, Base):
    __tablename__ = "patrol"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    worker_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    length_m: Mapped[float | None] = mapped_column(Float)
    microgrids_assigned: Mapped[int | None] = mapped_column(Integer)
    microgrids_visited: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        UniqueConstraint("worker_id", "client_id", name="uq_patrol_worker_client"),
        Index("ix_patrol_worker_started", "worker_id", "started_at", "id"),
        # Patrol coverage of a month selects patrols by start time.
        Index("ix_patrol_started_at", "started_at"),
    )


class TrackPoint(Base):
    """One GPS fix of a patrol; unique per patrol and time so re-uploads add nothing."""

    __tablename__ = "track_point"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    patrol_id: Mapped[int] = mapped_column(ForeignKey("patrol.id", ondelete="CASCADE"))
    t: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    location: Mapped[WKBElement] = point_column()
    input_lon: Mapped[float] = mapped_column(Float)
    input_lat: Mapped[float] = mapped_column(Float)
    input_crs: Mapped[str] = mapped_column(String(10))
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    # When the server received the fix (indicators ignore fixes that arrived too late);
    # NULL for the points stored before this was recorded.
    recorded_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        UniqueConstraint("patrol_id", "t", name="uq_track_point_patrol_t"),
        CheckConstraint(
            f"input_crs IN ({', '.join(repr(c) for c in SUPPORTED_CRS)})", name="crs_known"
        ),
        Index("ix_track_point_location", "location", postgresql_using="gist"),
    )
