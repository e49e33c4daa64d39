"""A supervisor's patrol map: the tracks walked in an area on a day, and the micro-grids that no
patrol touched this week (the coverage the patrol_coverage indicator counts, services/stats)."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from gridgov.models import Area, Patrol, TrackPoint, User
from gridgov.services.areas import get_area
from gridgov.services.scope import patrol_scope
from gridgov.services.stats import Period, day_period, patrolled_microgrids, require_in_scope


@dataclass(frozen=True)
class DayTrack:
    patrol_id: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    length_m: float | None
    points: int
    geometry_json: str  # the line through the points in time order (a point if one)


@dataclass(frozen=True)
class Microgrid:
    code: str
    name: str
    geometry_json: str


@dataclass(frozen=True)
class PatrolMap:
    day: Period
    week: Period
    tracks: list[DayTrack]
    microgrids: int  # micro-grids under the area
    unpatrolled: list[Microgrid]  # of those, the ones no patrol of the week touched


def week_of(day: date) -> Period:
    """Monday to Sunday around `day` (China dates)."""
    monday = day - timedelta(days=day.weekday())
    return day_period(monday, monday + timedelta(days=6))


def patrol_map(
    session: Session, *, viewer: User, area_code: str, day: date, max_backdate: timedelta
) -> PatrolMap:
    """The tracks the viewer may read that were walked in the area on `day`, and the area's
    micro-grids not patrolled in that day's week (up to the day's end)."""
    area = get_area(session, code=area_code, with_geometry=False)
    require_in_scope(session, user=viewer, code=area.code)
    the_day = day_period(day, day)
    week = week_of(day)
    boundary = select(Area.boundary).where(Area.code == area.code).scalar_subquery()
    line = func.ST_MakeLine(aggregate_order_by(TrackPoint.location, TrackPoint.t))
    path = case((func.ST_NPoints(line) > 1, line), else_=func.ST_StartPoint(line))
    rows = session.execute(
        select(
            Patrol.id,
            User.display_name,
            Patrol.started_at,
            Patrol.finished_at,
            Patrol.length_m,
            func.count(TrackPoint.id).label("points"),
            func.ST_AsGeoJSON(path, 6).label("geometry_json"),
        )
        .join(TrackPoint, TrackPoint.patrol_id == Patrol.id)
        .join(User, User.id == Patrol.worker_id)
        .where(
            patrol_scope(session, user=viewer),
            Patrol.started_at >= the_day.start,
            Patrol.started_at < the_day.end,
        )
        .group_by(Patrol.id, User.display_name)
        .having(func.ST_Intersects(func.ST_Collect(TrackPoint.location), boundary))
        .order_by(Patrol.started_at, Patrol.id)
    ).all()
    # The week so far: patrols started from Monday up to the end of the day asked about.
    so_far = day_period(week.first_day, day)
    under = (Area.level == "microgrid", Area.retired_at.is_(None), Area.code.startswith(area.code))
    total = session.scalar(select(func.count()).select_from(Area).where(*under))
    unpatrolled = session.execute(
        select(Area.code, Area.name, func.ST_AsGeoJSON(Area.boundary, 6))
        .where(*under, Area.id.notin_(patrolled_microgrids(so_far, max_backdate=max_backdate)))
        .order_by(Area.code)
    ).all()
    return PatrolMap(
        day=the_day,
        week=so_far,
        tracks=[DayTrack(*row) for row in rows],
        microgrids=total,
        unpatrolled=[Microgrid(*row) for row in unpatrolled],
    )
