"""Reading the area tree."""

from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from gridgov.errors import AreaNotFound
from gridgov.models import Area
from gridgov.spatial import SRID, geojson_sql


@dataclass(frozen=True)
class AreaView:
    code: str
    name: str
    level: str
    parent: str | None
    geometry_json: str | None = None


@dataclass(frozen=True)
class AreaPage:
    items: list[AreaView]
    has_more: bool


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
) -> AreaPage:
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
    items = [AreaView(**row._mapping) for row in rows[:limit]]
    return AreaPage(items=items, has_more=len(rows) > limit)


def get_area(session: Session, *, code: str, with_geometry: bool = True) -> AreaView:
    """One current area by code, or AreaNotFound."""
    row = session.execute(_area_select(with_geometry).where(Area.code == code)).one_or_none()
    if row is None:
        raise AreaNotFound(f"No area with code {code!r}.", details={"code": code})
    return AreaView(**row._mapping)


def get_area_model(session: Session, *, code: str) -> Area:
    """The Area row for a code, or AreaNotFound."""
    area = session.scalar(select(Area).where(Area.code == code))
    if area is None:
        raise AreaNotFound(f"No area with code {code!r}.", details={"code": code})
    return area
