"""Reading the area tree."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from gridgov.errors import AreaNotFound
from gridgov.models import Area, AreaRevision, BoundaryChangeset, User
from gridgov.services.paging import Page
from gridgov.spatial import SRID, geojson_sql


@dataclass(frozen=True)
class AreaView:
    code: str
    name: str
    level: str
    parent: str | None
    geometry_json: str | None = None


def _area_select(with_geometry: bool) -> Select:
    parent = aliased(Area)
    columns = [Area.code, Area.name, Area.level, parent.code.label("parent")]
    if with_geometry:
        columns.append(geojson_sql(Area.boundary).label("geometry_json"))
    return (
        select(*columns)
        .outerjoin(parent, parent.id == Area.parent_id)
        .where(Area.retired_at.is_(None))
    )


def list_areas(
    session: Session,
    *,
    level: str | None = None,
    parent_code: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    after_code: str | None = None,
    limit: int = 50,
    with_geometry: bool = False,
) -> Page[AreaView]:
    """Current areas ordered by code, filtered by level, direct parent and bbox, keyset-paged."""
    query = _area_select(with_geometry).order_by(Area.code).limit(limit + 1)
    if level:
        query = query.where(Area.level == level)
    if parent_code:
        parent_id = select(Area.id).where(Area.code == parent_code).scalar_subquery()
        query = query.where(Area.parent_id == parent_id)
    if bbox:
        envelope = func.ST_MakeEnvelope(*bbox, SRID)
        query = query.where(func.ST_Intersects(Area.boundary, envelope))
    if after_code:
        query = query.where(Area.code > after_code)
    rows = session.execute(query).all()
    return Page.of(rows, limit, lambda row: AreaView(**row._mapping))


def get_area(session: Session, *, code: str, with_geometry: bool = True) -> AreaView:
    """One current area by code, or AreaNotFound."""
    row = session.execute(_area_select(with_geometry).where(Area.code == code)).one_or_none()
    if row is None:
        raise AreaNotFound(f"No area with code {code!r}.", details={"code": code})
    return AreaView(**row._mapping)


@dataclass(frozen=True)
class Revision:
    valid_from: datetime
    valid_to: datetime | None
    name: str
    parent: str | None
    changeset: dict
    geometry_json: str | None


def area_history(
    session: Session, *, code: str, with_geometry: bool = False
) -> tuple[Area, list[Revision]]:
    """Every boundary revision of an area (retired ones too), newest first."""
    area = session.scalar(select(Area).where(Area.code == code))
    if area is None:
        raise AreaNotFound(f"No area with code {code!r}.", details={"code": code})
    parent = aliased(Area)
    columns = [
        AreaRevision.valid_from,
        AreaRevision.valid_to,
        AreaRevision.name,
        parent.code.label("parent"),
        BoundaryChangeset.id.label("changeset_id"),
        BoundaryChangeset.source,
        BoundaryChangeset.description,
        User.username.label("actor"),
    ]
    if with_geometry:
        columns.append(geojson_sql(AreaRevision.boundary).label("geometry_json"))
    rows = session.execute(
        select(*columns)
        .join(BoundaryChangeset, BoundaryChangeset.id == AreaRevision.changeset_id)
        .outerjoin(parent, parent.id == AreaRevision.parent_id)
        .outerjoin(User, User.id == BoundaryChangeset.actor_id)
        .where(AreaRevision.area_id == area.id)
        .order_by(AreaRevision.valid_from.desc(), AreaRevision.id.desc())
    ).all()
    revisions = [
        Revision(
            valid_from=row.valid_from,
            valid_to=row.valid_to,
            name=row.name,
            parent=row.parent,
            changeset={
                "id": row.changeset_id,
                "source": row.source,
                "description": row.description,
                "actor": row.actor,
            },
            geometry_json=row.geometry_json if with_geometry else None,
        )
        for row in rows
    ]
    return area, revisions
