"""The area tree (levels of geo.levels: district … micro-grid) and its boundary history.

One table holds every level (as MapIt does): a level column, a parent foreign key and a code
that extends the parent's code by three digits. The current boundary lives on the area; every
boundary it ever had lives in `area_revision`, written by a `boundary_changeset`.
"""

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from geo.levels import LEVELS
from gridgov.models.base import Base, CreatedAtMixin

# The levels and their code lengths come from the registry (geo.levels): a new level changes
# these checks, which its migration then replaces.
AREA_LEVELS = LEVELS.names

_level_list = ", ".join(f"'{level}'" for level in AREA_LEVELS)
CHANGESET_STATUSES = ("applied", "pending", "cancelled", "failed")
_status_list = ", ".join(f"'{status}'" for status in CHANGESET_STATUSES)
_code_length_case = " ".join(f"WHEN '{lvl.name}' THEN {lvl.code_length}" for lvl in LEVELS)


def boundary_column() -> Any:
    """A MULTIPOLYGON/4326 column; the GiST index is declared explicitly on each table."""
    # spatial_index=False: GeoAlchemy2 would otherwise add an index of its own that Alembic's
    # autogenerate then sees a second time (the duplicated spatial index pitfall).
    return mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False)


class Area(CreatedAtMixin, Base):
    __tablename__ = "area"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(LEVELS.leaf.code_length), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(12))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"), index=True)
    boundary: Mapped[WKBElement] = boundary_column()
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    parent: Mapped["Area | None"] = relationship(remote_side=[id])

    __table_args__ = (
        CheckConstraint(f"level IN ({_level_list})", name="level_known"),
        CheckConstraint(f"length(code) = CASE level {_code_length_case} END", name="code_length"),
        CheckConstraint("code ~ '^[0-9]+$'", name="code_digits"),
        CheckConstraint("ST_IsValid(boundary)", name="boundary_valid"),
        CheckConstraint(
            f"(parent_id IS NULL) = (level = '{LEVELS.root.name}')", name="parent_iff_not_root"
        ),
        Index("ix_area_boundary", "boundary", postgresql_using="gist"),
        # Routing and re-routing look only at current areas of the finest level (micro-grids;
        # the name stays when a finer level takes over): their own GiST index keeps
        # towns, grids and retired areas out of every point lookup (a probe returned seven
        # areas to filter; now the micro-grid and its neighbours).
        Index(
            "ix_area_current_microgrid_boundary",
            "boundary",
            postgresql_using="gist",
            postgresql_where=text(f"level = '{LEVELS.leaf.name}' AND retired_at IS NULL"),
        ),
        Index("ix_area_level_code", "level", "code"),
        # Subtree lookups match code prefixes (code LIKE '330212001%').
        Index("ix_area_code_prefix", "code", postgresql_ops={"code": "text_pattern_ops"}),
    )

    def __repr__(self) -> str:
        return f"<Area {self.code} {self.level} {self.name}>"


class BoundaryChangeset(CreatedAtMixin, Base):
    """One administrative act on the map: a demo load, an import, a redraw."""

    __tablename__ = "boundary_changeset"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text, default="")
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    summary: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # applied | pending (scheduled: effective_from ahead, applied by `flask boundaries
    # apply-due`) | cancelled | failed (it no longer fitted the map when it fell due).
    status: Mapped[str] = mapped_column(String(12), server_default=text("'applied'"))
    # A pending set ({features: WGS-84 as parsed, revive}), checked again when due.
    submitted: Mapped[dict | None] = mapped_column(JSONB)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"status IN ({_status_list})", name="status_known"),
        CheckConstraint("status <> 'pending' OR submitted IS NOT NULL", name="pending_submitted"),
        # The job's scan: pending sets by due time.
        Index(
            "ix_boundary_changeset_pending",
            "effective_from",
            postgresql_where=text("status = 'pending'"),
        ),
    )


class AreaRevision(Base):
    """A boundary (and name/parent) an area had from valid_from until valid_to (open = current)."""

    __tablename__ = "area_revision"

    id: Mapped[int] = mapped_column(primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("area.id"))
    name: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"))
    boundary: Mapped[WKBElement] = boundary_column()
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    changeset_id: Mapped[int] = mapped_column(ForeignKey("boundary_changeset.id"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))

    __table_args__ = (
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="valid_period"),
        CheckConstraint("ST_IsValid(boundary)", name="boundary_valid"),
        Index("ix_area_revision_area_valid_from", "area_id", "valid_from"),
        Index("ix_area_revision_boundary", "boundary", postgresql_using="gist"),
    )
