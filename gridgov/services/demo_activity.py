"""A living demo: months of cases in every state and today's patrols, made by the real services.

Every case is reported with services/incidents.submit_incident and moved with
services/workflow.apply_action, each step dated in the past (their `now`), so the rows, the
timelines, the deadlines and the indicators are what the services would have left had the
district worked for months. Patrols go through services/patrols within its backdating window
(the last day). Deterministic by seed: one random.Random drives every choice.
"""

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from geo.points import InputPoint
from gridgov.errors import Conflict
from gridgov.models import Area, Assignment, Incident, User
from gridgov.services import patrols as patrol_service
from gridgov.services import workflow
from gridgov.services.demo import DEMO_CATEGORIES
from gridgov.services.incidents import IntakeSettings, NewIncident, submit_incident
from gridgov.services.patrols import TrackFix

# Where a case stops (its last status), with weights; the open ones are recent (backlog).
FATES = {
    "closed": 52,
    "reported": 6,
    "accepted": 5,
    "dispatched": 7,
    "in_progress": 7,
    "resolved": 6,
    "verified": 4,
    "returned": 3,
    "rejected": 5,
    "duplicate": 3,
}
OPEN_FATE_DAYS = 20
REWORK_SHARE = 0.12
ESCALATE_SHARE = 0.12
ON_SITE_SHARE = 0.08
FIRST_TOWN_SHARE = 0.7
UNITS = ("社区物业", "城管中队", "市场监管所", "消防救援站", "供电所", "环卫所")
NOTES = {
    "reject": "不属于网格事项，已告知当事人向相关部门反映",
    "resolve": "已到场处置完毕，现场拍照留档",
    "return": "现场复核未处置到位，请重新处置",
    "escalate": "超出网格处置能力，提请上级协调",
}
DESCRIPTIONS = {
    "dispute_neighbour": "楼上漏水引发邻里争执",
    "dispute_labour": "工地拖欠农民工工资",
    "dispute_family": "夫妻争吵，需调解",
    "hazard_building": "老旧房屋外墙开裂",
    "hazard_gas": "居民反映楼道有燃气味",
    "fire_corridor": "楼道堆放杂物堵塞通道",
    "fire_ebike": "电动车在楼道内充电",
    "env_garbage": "路边垃圾堆积未清运",
    "env_green": "小区绿化带枯死需补种",
    "env_river": "河道漂浮垃圾，水面发黑",
    "fraud_warning": "老人接到可疑投资电话",
    "facility_streetlight": "路灯夜间不亮",
    "facility_manhole": "人行道井盖破损",
    "order_parking": "车辆占用消防通道",
    "care_elderly": "独居老人多日未出门",
}
PATROL_POINT_MINUTES = 4


@dataclass
class ActivityResult:
    cases_by_status: dict[str, int] = field(default_factory=dict)
    patrols: int = 0

    @property
    def cases(self) -> int:
        """How many cases were loaded."""
        return sum(self.cases_by_status.values())


@dataclass(frozen=True)
class _People:
    town_supervisor: User
    district_supervisor: User
    grid_head: User
    grid_worker: User


@dataclass(frozen=True)
class _Place:
    microgrid: str
    town: str
    grid: str
    lon: float
    lat: float


def load_demo_activity(
    session: Session,
    *,
    intake: IntakeSettings,
    patrol_max_backdate: timedelta,
    seed: int = 2024,
    cases: int = 300,
    days: int = 120,
    now: datetime | None = None,
) -> ActivityResult:
    """Report and work `cases` demo cases over the last `days` and walk today's patrols."""
    if session.scalar(select(func.count()).select_from(Incident)):
        raise Conflict("The database already holds incidents; demo cases load only once.")
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    people = _people(session)
    # The demo people were on duty all along: their assignments begin before the history does
    # (a supervisor reads a patrol if its worker was on duty under them when it started).
    session.execute(
        update(Assignment)
        .where(Assignment.user_id.in_([p.id for p in vars(people).values()]))
        .values(active_from=now - timedelta(days=days + 1))
    )
    first_town = _first_code(session, "town")
    first_grid = _first_code(session, "grid")
    places = _places(session, rng, cases, first_town)
    result = ActivityResult()
    reported: list[Incident] = []
    for number, place in enumerate(places):
        incident = _one_case(
            session, rng, number, place, people, first_town, first_grid, reported, intake, now, days
        )
        reported.append(incident)
        result.cases_by_status[incident.status] = result.cases_by_status.get(incident.status, 0) + 1
    result.patrols = _patrols(session, people, first_grid, patrol_max_backdate, now)
    session.flush()
    return result


def _people(session: Session) -> _People:
    names = ("town_supervisor", "district_supervisor", "grid_head", "grid_worker")
    users = {u.username: u for u in session.scalars(select(User).where(User.username.in_(names)))}
    missing = [name for name in names if name not in users]
    if missing:
        raise Conflict(f"The demo users {', '.join(missing)} are missing; load the demo first.")
    return _People(**{name: users[name] for name in names})


def _first_code(session: Session, level: str) -> str:
    return session.scalar(select(func.min(Area.code)).where(Area.level == level))


def _places(session: Session, rng: random.Random, count: int, first_town: str) -> list[_Place]:
    """A random point in a random micro-grid per case, mostly in the first town."""
    codes = session.scalars(
        select(Area.code)
        .where(Area.level == "microgrid", Area.retired_at.is_(None))
        .order_by(Area.code)
    ).all()
    inside = [c for c in codes if c.startswith(first_town)]
    chosen = [
        rng.choice(inside if rng.random() < FIRST_TOWN_SHARE else codes) for _ in range(count)
    ]
    places = []
    for code in chosen:
        # ST_GeneratePoints with a seed is deterministic; a seed of 0 would mean "random".
        point = func.ST_GeometryN(
            func.ST_GeneratePoints(Area.boundary, 1, rng.randint(1, 2**30)), 1
        )
        lon, lat = session.execute(
            select(func.ST_X(point), func.ST_Y(point)).where(Area.code == code)
        ).one()
        places.append(_Place(code, code[:9], code[:15], round(lon, 6), round(lat, 6)))
    return places


def _one_case(
    session, rng, number, place, people, first_town, first_grid, reported, intake, now, days
):
    fate = rng.choices(list(FATES), weights=list(FATES.values()))[0]
    is_open = fate not in ("closed", "rejected", "duplicate")
    # Open cases are the last weeks' backlog; the closed ones spread over the months.
    age = timedelta(days=rng.uniform(0.05, OPEN_FATE_DAYS if is_open else days))
    at = _office_hours(now - age, rng)
    category = rng.choice(DEMO_CATEGORIES)[0]
    in_first_grid = place.grid == first_grid
    reporter = (
        rng.choice([people.grid_worker, people.grid_head])
        if in_first_grid
        else (people.grid_worker if rng.random() < 0.8 else people.town_supervisor)
    )
    on_site = fate in ("closed", "resolved", "verified") and rng.random() < ON_SITE_SHARE
    report = NewIncident(
        client_id=f"demo-{number:05d}",
        category=category,
        description=f"{DESCRIPTIONS[category]}（演示数据）",
        location=InputPoint(place.lon, place.lat, "wgs84", place.lon, place.lat, 10.0),
        priority=None,
        resolved_on_site=on_site,
        occurred_at=at - timedelta(minutes=rng.randint(5, 90)),
    )
    incident = submit_incident(
        session, reporter=reporter, report=report, settings=intake, now=at
    ).incident
    supervisor = people.town_supervisor if place.town == first_town else people.district_supervisor
    holders = (people.grid_worker, people.grid_head) if in_first_grid else ()
    same_town = [i for i in reported if i.town_id == incident.town_id and i.status != "duplicate"]
    steps = _steps(rng, fate, on_site, same_town)
    case = _Case(session, incident, supervisor, holders, rng, intake, now, at)
    for action, extra in steps:
        if not case.act(action, **extra):
            break
    return incident


def _office_hours(moment: datetime, rng: random.Random) -> datetime:
    """A time between 08:30 and 17:30 China time (UTC+8) that day, or the day before."""
    local_day = (moment + timedelta(hours=8)).date()
    minutes = rng.randint(8 * 60 + 30, 17 * 60 + 30)
    start = datetime(local_day.year, local_day.month, local_day.day, tzinfo=UTC)
    office = start - timedelta(hours=8) + timedelta(minutes=minutes)
    return office if office <= moment else office - timedelta(days=1)


def _steps(rng, fate: str, on_site: bool, originals: list) -> list[tuple[str, dict]]:
    """The actions that bring a case to its fate (on-site ones start out resolved)."""
    if fate == "rejected":
        return [("reject", {})]
    if fate == "duplicate":
        return [("duplicate", {"duplicate_of": originals[-1].id})] if originals else []
    if on_site:
        path = [("verify", {}), ("close", {})]
        return path[: {"resolved": 0, "verified": 1}.get(fate, 2)]
    path: list[tuple[str, dict]] = [("accept", {})]
    if rng.random() < ESCALATE_SHARE:
        path.append(("escalate", {}))
    path += [("dispatch", {}), ("start", {}), ("resolve", {})]
    if fate == "returned" or rng.random() < REWORK_SHARE:
        path += [("return", {}), ("dispatch", {}), ("start", {}), ("resolve", {})]
    path += [("verify", {}), ("close", {})]
    stop = {"reported": "accept", "accepted": "dispatch", "dispatched": "start"}
    stop |= {"in_progress": "resolve", "resolved": "verify", "verified": "close"}
    if fate == "returned":
        return path[: path.index(("return", {})) + 1]
    if fate in stop:
        # Stop before the step that would leave the fate's status: its first occurrence
        # before any dispatch, its last one after (so reworked cases wait there too).
        at = [i for i, step in enumerate(path) if step[0] == stop[fate]]
        return path[: at[0] if fate in ("reported", "accepted") else at[-1]]
    return path


# How long each step waits after the previous one, in hours (low, high).
_GAPS = {
    "accept": (0.1, 3),
    "reject": (0.2, 4),
    "duplicate": (0.2, 4),
    "escalate": (0.5, 8),
    "dispatch": (0.1, 5),
    "start": (0.2, 20),
    "resolve": (2, 110),
    "return": (1, 30),
    "verify": (1, 40),
    "close": (0.5, 24),
}


class _Case:
    """One case being worked: who acts, and the clock of its steps."""

    def __init__(self, session, incident, supervisor, holders, rng, intake, now, at):
        self.session, self.incident, self.supervisor = session, incident, supervisor
        self.holders, self.rng, self.intake, self.now, self.at = holders, rng, intake, now, at

    def act(self, action: str, **extra) -> bool:
        """Run the action a while after the last one; False once that would be in the future."""
        low, high = _GAPS[action]
        at = self.at + timedelta(hours=self.rng.uniform(low, high))
        if at >= self.now:
            return False
        actor = self.supervisor
        if action == "dispatch":
            extra |= self._hand_over()
        if action in ("start", "resolve") and self.incident.handler_id is not None:
            actor = self.session.get(User, self.incident.handler_id)
        request = workflow.ActionRequest(action, note=NOTES.get(action, ""), **extra)
        workflow.apply_action(
            self.session,
            actor=actor,
            incident_id=self.incident.id,
            request=request,
            calendar=self.intake.calendar,
            now=at,
        )
        self.at = at
        return True

    def _hand_over(self) -> dict:
        if self.holders:
            return {"assignee_id": self.rng.choice(self.holders).id}
        return {"handling_unit": self.rng.choice(UNITS)}


def _patrols(session, people: _People, first_grid: str, max_backdate: timedelta, now) -> int:
    """Patrols of the first grid's people within the last day, through its micro-grids."""
    points = session.execute(
        select(
            func.ST_X(func.ST_PointOnSurface(Area.boundary)),
            func.ST_Y(func.ST_PointOnSurface(Area.boundary)),
        )
        .where(Area.level == "microgrid", Area.code.startswith(first_grid))
        .order_by(Area.code)
    ).all()
    walks = [
        (people.grid_worker, now - timedelta(hours=20), points),
        (people.grid_head, now - timedelta(hours=8), points[::-1]),
        (people.grid_worker, now - timedelta(hours=3), points[:1]),
    ]
    for number, (worker, started_at, stops) in enumerate(walks):
        started = patrol_service.start_patrol(
            session,
            worker_id=worker.id,
            client_id=f"demo-patrol-{number}",
            started_at=started_at,
            max_backdate=max_backdate,
            now=now,
        )
        fixes = [
            TrackFix(
                t=started_at + timedelta(minutes=PATROL_POINT_MINUTES * (i + 1)),
                lon=lon,
                lat=lat,
                input_lon=lon,
                input_lat=lat,
                input_crs="wgs84",
            )
            for i, (lon, lat) in enumerate(stops)
        ]
        patrol_id = started.patrol.id
        patrol_service.add_track_points(
            session,
            patrol_id=patrol_id,
            worker_id=worker.id,
            fixes=fixes,
            max_backdate=max_backdate,
            now=now,
        )
        finished_at = fixes[-1].t + timedelta(minutes=PATROL_POINT_MINUTES)
        patrol_service.finish_patrol(
            session,
            patrol_id=patrol_id,
            worker_id=worker.id,
            max_backdate=max_backdate,
            finished_at=finished_at,
            now=now,
        )
    return len(walks)
