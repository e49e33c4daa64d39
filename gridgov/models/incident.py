"""Incidents reported from phones (and other channels), with the routing they got."""

from datetime import datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from geo.crs import SUPPORTED_CRS
from geo.levels import LEVELS
from gridgov.models.base import Base, CreatedAtMixin

STATUSES = (
    "reported",
    "accepted",
    "rejected",
    "duplicate",
    "dispatched",
    "in_progress",
    "resolved",
    "verified",
    "returned",
    "closed",
)
ROUTING_METHODS = ("covered", "nearest", "unrouted")
# Escalation moves handling up one level at a time.
HANDLING_LEVELS = ("grid", "community", "town", "district")
TERMINAL_STATUSES = ("rejected", "duplicate", "closed")
INPUT_CRS = SUPPORTED_CRS


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def point_column() -> Geometry:
    """A WGS-84 POINT column (its GiST index is declared on the table)."""
    return mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)


def _routed_areas() -> type:
    """A mixin with the incident's area at every level of geo.levels (`<level>_id` columns)."""

    def area_column(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("area.id"), nullable=True)

    return type("RoutedAreas", (), {level.column: declared_attr(area_column) for level in LEVELS})


# Routing: every level by foreign key (town_id on every row, for later distribution), one
# column per level of the registry, so a new level is a migration adding its column.
class Incident(_routed_areas(), CreatedAtMixin, Base):
    __tablename__ = "incident"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Idempotency: a phone's client_id is unique per reporter; content_hash tells a replay
    # (same content) from a conflict (different content).
    client_id: Mapped[str] = mapped_column(String(64))
    reporter_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    content_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), server_default="phone")

    category_id: Mapped[int] = mapped_column(ForeignKey("category.id"))
    priority: Mapped[str] = mapped_column(String(10))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    resolved_on_site: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    patrol_id: Mapped[int | None] = mapped_column(ForeignKey("patrol.id"), index=True)

    # The WGS-84 point used for routing, and what the phone sent.
    location: Mapped[WKBElement] = point_column()
    input_lon: Mapped[float] = mapped_column(Float)
    input_lat: Mapped[float] = mapped_column(Float)
    input_crs: Mapped[str] = mapped_column(String(10))
    accuracy_m: Mapped[float | None] = mapped_column(Float)

    routing_method: Mapped[str] = mapped_column(String(10))
    routing_distance_m: Mapped[float] = mapped_column(Float, server_default=text("0"))
    # How many micro-grids covered the point (2+ on a shared edge; lowest code won).
    routing_candidates: Mapped[int] = mapped_column(Integer, server_default=text("0"))

    # Case handling (GB/T 30428 flow): who holds it, at which level, and when each stage ended.
    # The routing the report first got; the columns above follow boundary redraws while the
    # case is open (closed cases keep theirs, so past statistics stay true).
    original_microgrid_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"))
    original_grid_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"))
    original_town_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"))
    original_routing_method: Mapped[str | None] = mapped_column(String(10))
    rerouted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Channel-specific data (Open311 address_string, contact details, attribute answers…).
    external: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))

    handler_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    handling_unit: Mapped[str | None] = mapped_column(String(100))
    proposed_handler_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    handling_level: Mapped[str] = mapped_column(String(12), server_default="grid")
    resolved_level: Mapped[str | None] = mapped_column(String(12))
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id"))
    rework_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    escalation_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Deadline of the current stage (accept, handle or verify); None once no clock runs.
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Deadline of the handling stage as first set, kept for the on-time indicators.
    handle_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        UniqueConstraint("reporter_id", "client_id", name="uq_incident_reporter_client"),
        CheckConstraint(f"status IN ({_in(STATUSES)})", name="status_known"),
        CheckConstraint(f"routing_method IN ({_in(ROUTING_METHODS)})", name="routing_known"),
        CheckConstraint(f"input_crs IN ({_in(INPUT_CRS)})", name="crs_known"),
        CheckConstraint(
            "(routing_method = 'unrouted') = (grid_id IS NULL)", name="routed_iff_grid"
        ),
        CheckConstraint(f"handling_level IN ({_in(HANDLING_LEVELS)})", name="handling_known"),
        CheckConstraint(
            f"resolved_level IS NULL OR resolved_level IN ({_in(HANDLING_LEVELS)})",
            name="resolved_level_known",
        ),
        CheckConstraint("duplicate_of_id IS NULL OR duplicate_of_id <> id", name="not_own_dup"),
        Index("ix_incident_location", "location", postgresql_using="gist"),
        Index("ix_incident_town_status", "town_id", "status"),
        Index("ix_incident_grid_status", "grid_id", "status"),
        Index("ix_incident_reporter", "reporter_id", "id"),
        Index("ix_incident_handler", "handler_id", "status"),
        # Open cases are about a tenth of the table and what maps, redraws and jobs read:
        # partial indexes keep those reads off the closed history.
        Index(
            "ix_incident_open_location",
            "location",
            postgresql_using="gist",
            postgresql_where=text(f"status NOT IN ({_in(TERMINAL_STATUSES)})"),
        ),
        # Tile aggregation counts open cases per grid and per town from the index alone.
        Index(
            "ix_incident_open_grid",
            "grid_id",
            postgresql_include=[
                "status",
                "deadline",
                "category_id",
                "community_id",
                "town_id",
                "district_id",
            ],
            postgresql_where=text(f"status NOT IN ({_in(TERMINAL_STATUSES)})"),
        ),
        Index(
            "ix_incident_open_town",
            "town_id",
            postgresql_include=["status", "deadline", "category_id", "district_id"],
            postgresql_where=text(f"status NOT IN ({_in(TERMINAL_STATUSES)})"),
        ),
        Index(
            "ix_incident_open_microgrid",
            "microgrid_id",
            postgresql_where=text(f"status NOT IN ({_in(TERMINAL_STATUSES)})"),
        ),
        Index(
            "ix_incident_open_not_covered",
            "id",
            postgresql_where=text(
                f"routing_method <> 'covered' AND status NOT IN ({_in(TERMINAL_STATUSES)})"
            ),
        ),
        # Monthly indicators select the reports of a period.
        Index("ix_incident_created_at", "created_at"),
        # Open311's public list reads only its own channel's requests, newest first.
        Index(
            "ix_incident_open311_created",
            "created_at",
            "id",
            postgresql_where=text("source = 'open311'"),
        ),
        # The escalation job and the overdue filter scan open cases by deadline.
        Index(
            "ix_incident_open_deadline",
            "deadline",
            postgresql_where=text("status NOT IN ('rejected', 'duplicate', 'closed')"),
        ),
    )


# An incident's area column at each level: "in the subtree of area A at level L" is
# `INCIDENT_AREA_COLUMNS[L] == A.id` (gridgov.services.scope).
INCIDENT_AREA_COLUMNS = {level.name: getattr(Incident, level.column) for level in LEVELS}


class IncidentEvent(Base):
    """One entry of an incident's append-only timeline (who did what, from which state)."""

    __tablename__ = "incident_event"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, server_default="")
    data: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_incident_event_incident", "incident_id", "id"),)
