"""Reading incidents in bulk: filtered, scoped, keyset-paged lists; timelines; a user's tasks."""

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from gridgov.errors import AreaNotFound
from gridgov.models import (
    INCIDENT_AREA_COLUMNS,
    TERMINAL_STATUSES,
    Area,
    Category,
    Incident,
    IncidentEvent,
    User,
)
from gridgov.services.paging import Page
from gridgov.services.scope import get_visible_incident, incident_scope
from gridgov.spatial import SRID


def case_ref(incident_id: int) -> str:
    """The case number people quote on the phone and in exports (GG00000042)."""
    return f"GG{incident_id:08d}"


@dataclass(frozen=True)
class IncidentFilters:
    statuses: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    area_code: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    overdue: bool | None = None
    reported_from: datetime | None = None
    reported_to: datetime | None = None
    handling_levels: tuple[str, ...] = ()
    reporter_id: int | None = None


@dataclass(frozen=True)
class IncidentRow:
    id: int
    status: str
    category: str
    category_name: str
    priority: str
    description: str
    lon: float
    lat: float
    town: str | None
    grid: str | None
    microgrid: str | None
    routing_method: str
    handling_level: str
    handler_id: int | None
    reporter_id: int
    reported_at: datetime
    deadline: datetime | None
    version: int

    @property
    def ref(self) -> str:
        """The case number."""
        return case_ref(self.id)

    @property
    def overdue(self) -> bool:
        """True when the current stage's deadline has passed."""
        return self.deadline is not None and self.deadline < datetime.now(UTC)


def open_condition():
    """SQL: the incident is not in a terminal status."""
    return Incident.status.notin_(TERMINAL_STATUSES)


def overdue_condition(now: datetime | None = None):
    """SQL: an open incident whose current stage deadline has passed."""
    return and_(open_condition(), Incident.deadline < (now or datetime.now(UTC)))


def incident_select(*extra_columns) -> Select:
    """Incidents with their category, WGS-84 lon/lat and town/grid/micro-grid codes, plus
    `extra_columns`; lists and exports build on it (and on apply_filters)."""
    town, grid, microgrid = aliased(Area), aliased(Area), aliased(Area)
    return (
        select(
            Incident.id,
            Incident.status,
            Category.code.label("category"),
            Category.name.label("category_name"),
            Incident.priority,
            Incident.description,
            func.ST_X(Incident.location).label("lon"),
            func.ST_Y(Incident.location).label("lat"),
            town.code.label("town"),
            grid.code.label("grid"),
            microgrid.code.label("microgrid"),
            *extra_columns,
        )
        .join(Category, Category.id == Incident.category_id)
        .outerjoin(town, town.id == Incident.town_id)
        .outerjoin(grid, grid.id == Incident.grid_id)
        .outerjoin(microgrid, microgrid.id == Incident.microgrid_id)
    )


def _row_select() -> Select:
    return incident_select(
        Incident.routing_method,
        Incident.handling_level,
        Incident.handler_id,
        Incident.reporter_id,
        Incident.created_at.label("reported_at"),
        Incident.deadline,
        Incident.version,
    )


def apply_filters(session: Session, query: Select, filters: IncidentFilters) -> Select:
    """Add the list filters to a query over Incident joined with Category."""
    if filters.statuses:
        query = query.where(Incident.status.in_(filters.statuses))
    if filters.categories:
        query = query.where(Category.code.in_(filters.categories))
    if filters.area_code:
        area = session.execute(
            select(Area.id, Area.level).where(Area.code == filters.area_code)
        ).first()
        if area is None:
            raise AreaNotFound(f"No area with code {filters.area_code!r}.")
        query = query.where(INCIDENT_AREA_COLUMNS[area.level] == area.id)
    if filters.bbox:
        envelope = func.ST_MakeEnvelope(*filters.bbox, SRID)
        query = query.where(func.ST_Intersects(Incident.location, envelope))
    if filters.overdue is True:
        query = query.where(overdue_condition())
    elif filters.overdue is False:
        query = query.where(or_(Incident.deadline.is_(None), Incident.deadline >= func.now()))
    if filters.reported_from:
        query = query.where(Incident.created_at >= filters.reported_from)
    if filters.reported_to:
        query = query.where(Incident.created_at < filters.reported_to)
    if filters.handling_levels:
        query = query.where(Incident.handling_level.in_(filters.handling_levels))
    if filters.reporter_id is not None:
        query = query.where(Incident.reporter_id == filters.reporter_id)
    return query


def list_incidents(
    session: Session,
    *,
    user: User,
    filters: IncidentFilters,
    before_id: int | None = None,
    limit: int = 50,
) -> Page[IncidentRow]:
    """Incidents the user may see, newest first (by id, a stable order), keyset-paged."""
    query = apply_filters(session, _row_select(), filters).where(incident_scope(session, user=user))
    if before_id is not None:
        query = query.where(Incident.id < before_id)
    rows = session.execute(query.order_by(Incident.id.desc()).limit(limit + 1)).all()
    return Page.of(rows, limit, lambda row: IncidentRow(**row._mapping))


def list_by_deadline(
    session: Session,
    *,
    user: User,
    filters: IncidentFilters,
    after: tuple[datetime | None, int] | None = None,
    limit: int = 50,
) -> Page[IncidentRow]:
    """Incidents the user may see, earliest deadline first (so overdue first), those without
    a deadline last, then by id; keyset-paged after (deadline, id) of the previous page."""
    query = apply_filters(session, _row_select(), filters).where(incident_scope(session, user=user))
    if after is not None:
        deadline, last_id = after
        if deadline is None:
            query = query.where(Incident.deadline.is_(None), Incident.id > last_id)
        else:
            query = query.where(
                or_(
                    Incident.deadline > deadline,
                    and_(Incident.deadline == deadline, Incident.id > last_id),
                    Incident.deadline.is_(None),
                )
            )
    order = (Incident.deadline.asc().nulls_last(), Incident.id)
    rows = session.execute(query.order_by(*order).limit(limit + 1)).all()
    return Page.of(rows, limit, lambda row: IncidentRow(**row._mapping))


@dataclass(frozen=True)
class StatusCounts:
    by_status: dict[str, int]
    overdue: int

    @property
    def total(self) -> int:
        """All the counted incidents."""
        return sum(self.by_status.values())


def count_by_status(session: Session, *, user: User, filters: IncidentFilters) -> StatusCounts:
    """How many incidents the user may see match `filters`, per status, and how many are overdue."""
    query = apply_filters(
        session,
        select(
            Incident.status,
            func.count().label("count"),
            func.count().filter(overdue_condition()).label("overdue"),
        ).join(Category, Category.id == Incident.category_id),
        filters,
    ).where(incident_scope(session, user=user))
    rows = session.execute(query.group_by(Incident.status)).all()
    return StatusCounts(
        by_status={row.status: row.count for row in rows},
        overdue=sum(row.overdue for row in rows),
    )


@dataclass(frozen=True)
class TimelineEntry:
    id: int
    action: str
    from_status: str | None
    to_status: str | None
    note: str
    data: dict
    actor: str | None
    at: datetime


def timeline(session: Session, *, user: User, incident_id: int) -> list[TimelineEntry]:
    """Every event of an incident the user may see, oldest first."""
    get_visible_incident(session, user=user, incident_id=incident_id)
    rows = session.execute(
        select(
            IncidentEvent.id,
            IncidentEvent.action,
            IncidentEvent.from_status,
            IncidentEvent.to_status,
            IncidentEvent.note,
            IncidentEvent.data,
            User.username.label("actor"),
            IncidentEvent.created_at.label("at"),
        )
        .outerjoin(User, User.id == IncidentEvent.actor_id)
        .where(IncidentEvent.incident_id == incident_id)
        .order_by(IncidentEvent.id)
    ).all()
    return [TimelineEntry(**row._mapping) for row in rows]


# What waits for whom: a worker works on what they hold; a supervisor moves the loop on.
WORKER_TASK_STATUSES = ("dispatched", "in_progress", "returned")
SUPERVISOR_TASK_STATUSES = ("reported", "accepted", "returned", "resolved", "verified")


def tasks(session: Session, *, user: User, limit: int = 200) -> list[IncidentRow]:
    """The caller's open work, most urgent deadline first."""
    if user.role == "worker":
        condition = and_(Incident.handler_id == user.id, Incident.status.in_(WORKER_TASK_STATUSES))
    else:
        condition = and_(
            incident_scope(session, user=user), Incident.status.in_(SUPERVISOR_TASK_STATUSES)
        )
    rows = session.execute(
        _row_select()
        .where(condition)
        .order_by(Incident.deadline.asc().nulls_last(), Incident.id)
        .limit(limit)
    ).all()
    return [IncidentRow(**row._mapping) for row in rows]
