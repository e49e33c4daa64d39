"""Indicators (每月一晾晒) and rankings (季度排名) of areas: every formula, in one place.

Everything is counted in SQL (one aggregate query with FILTER clauses over the incidents, one
over the areas and patrol tracks) for the cases *under* an area, read from the routing each
incident stores: `incident.<level>_id = area.id` (gridgov.models.INCIDENT_AREA_COLUMNS).
Closed cases keep the routing they had, so a past month stays true after a boundary redraw.

Period: [start, end) in China time (UTC+8): a month `YYYY-MM`, a quarter `YYYY-Qn`, or the
days `from`..`to` (both included); by default the current month. as_of = min(now, end).

Counts

| name | definition |
|---|---|
| reported | cases reported in the period (created_at in [start, end)), any status |
| due | reported, less rejected and duplicate reports (应结案数) |
| closed | due cases whose status is now closed (结案数) |
| closed_on_time | closed cases that were resolved on time (按期结案数) |
| resolved | due cases resolved now (resolved_at set: resolved, verified, closed) |
| resolved_on_time | resolved, with resolved_at <= handle_deadline or no handle_deadline |
| handled | due cases resolved at least once (resolved now, or rework_count > 0) |
| reworked | due cases sent back at least once (rework_count > 0, 返工) |
| resolved_town_or_below | resolved cases whose resolved_level is grid, community or town |
| overdue | cases open now whose current deadline < as_of, whenever reported |
| grids | grids under the area, not retired before the period began |
| microgrids | micro-grids under the area, not retired before the period began |
| microgrids_patrolled | those touched by in-time tracks of finished patrols started in the period |

Rates: value = numerator / denominator, null (not 0) when the denominator is 0; rounded to
4 decimal places (0.95 is 95%); ranks compare the exact fractions.

| name | formula |
|---|---|
| closure_rate | 结案率 = closed / due |
| on_time_closure_rate | 按期结案率 = closed_on_time / due |
| on_time_handling_rate | 按期处置率 = resolved_on_time / resolved |
| rework_rate | 返工率 = reworked / handled |
| town_or_below_rate | 镇街及以下解决率 = resolved_town_or_below / resolved |
| reports_per_grid | 网格平均上报数 = reported / grids |
| patrol_coverage | 巡查覆盖率 = microgrids_patrolled / microgrids |

Why these definitions:

- The base (due) is the cohort of cases *reported* in the period, not the cases whose
  handling deadline falls in it. Every case then belongs to exactly one period for good, so
  months, quarters and areas add up and nothing is counted twice; and a case counts from its
  first minute: a deadline cohort would leave out the reports nobody accepted (they have no
  handle_deadline yet), which would reward not accepting. Rejected and duplicate reports
  were never registered (未立案) and are not cases: rejecting junk must not lower a rate.
- Outcomes (status, resolved_at, rework_count) are the cases' current state, so a recent
  period's rates keep changing until its last case closes, then stay; `as_of` in the answer
  says when they were read. Publish a month after a fixed settling time if it must compare.
- On time means resolved_at <= handle_deadline. The workflow sets handle_deadline on accept,
  renews it on a return (rework gets a fresh clock) and keeps it on escalation; resolved_at is
  the last resolution. A case with no handle_deadline (resolved on the spot, 自处置, or a
  category without a handling limit) cannot be late and counts as on time.
- handled also counts rework_count > 0, because a return clears resolved_at: a case sent back
  and not yet resolved again was still handled once.
- overdue is a stock, not a flow: open means not closed, rejected or duplicate (so a case
  waiting too long for verification is overdue too, as in `GET /incidents?overdue=true`), and
  the deadline is the current stage's (past deadlines are not kept). For the current period
  it is the live backlog; for a past one, the cases still open now that were already overdue
  when the period ended.
- reports_per_grid counts every report, rejected and duplicates included: it measures
  finding and reporting (发现上报).
- Patrol coverage is by area, not by person: the share of the area's micro-grids that the
  track of at least one finished patrol (started in the period, by anyone) touched. The track
  is built as the patrol summary builds it (the line through its points in time order; the
  points when the worker never moved), from the patrol's in-time points. It needs no
  assignment history, and it answers the question the ranking asks: was every micro-grid
  walked. What one worker covered of their own micro-grids stays on each patrol
  (microgrids_visited / microgrids_assigned).
- In time: a patrol counts only if the server recorded it (created_at) at most the
  back-dating limit (GRIDGOV_PATROL_MAX_BACKDATE_HOURS, default 24 h) after its started_at,
  and a track point only if the server received it (recorded_at) at most that long after its
  time t; points stored before recorded_at was kept (NULL) count. Without this, a month's
  coverage and its ranking could be raised long after they were published by back-dating
  walks into it. The patrol endpoints refuse anything older than the same limit, so what
  they accept always counts; the rule leaves out rows written some other way (a script, SQL,
  a larger limit earlier).

Rankings rank the areas at one level (town or grid) under a parent area: rank 1 is the best,
i.e. the highest value, except for rework_rate and overdue where lower is better. Equal values
(as exact fractions) share a rank (1, 2, 2, 4); areas whose value is null get no rank and come
last; ties and nulls are listed in code order.

Scope: admin sees every area; anyone else the areas at or under the areas they are assigned to
now (a worker: their grids and micro-grids). A ranking needs its parent in scope; without one
it ranks the caller's areas above the level (a town supervisor may rank grids, not towns).
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session, aliased

from geo.codes import LEVEL_CODE_LENGTH
from gridgov.errors import AreaNotFound, Forbidden, ValidationFailed
from gridgov.models import (
    HANDLING_LEVELS,
    INCIDENT_AREA_COLUMNS,
    Area,
    Incident,
    Patrol,
    TrackPoint,
    User,
)
from gridgov.services.calendar import CHINA_TZ
from gridgov.services.incident_queries import overdue_condition
from gridgov.services.users import assigned_area_codes

MAX_PERIOD_DAYS = 366
ROUND_DIGITS = 4
RANKING_LEVELS = ("town", "grid")
# Reports that never became cases (未立案): they are not due for closing.
NOT_CASES = ("rejected", "duplicate")
# Resolved "at town level or below": every handling level except the district.
TOWN_OR_BELOW = HANDLING_LEVELS[: HANDLING_LEVELS.index("town") + 1]

COUNT_DEFINITIONS = {
    "reported": "cases reported in the period (created_at in [start, end)), any status",
    "due": "reported, less rejected and duplicate reports (应结案数)",
    "closed": "due cases whose status is now closed (结案数)",
    "closed_on_time": "closed cases that were resolved on time (按期结案数)",
    "resolved": "due cases resolved now (resolved_at set: resolved, verified, closed)",
    "resolved_on_time": "resolved, with resolved_at <= handle_deadline or no handle_deadline",
    "handled": "due cases resolved at least once (resolved now, or rework_count > 0)",
    "reworked": "due cases sent back at least once (rework_count > 0, 返工)",
    "resolved_town_or_below": "resolved cases whose resolved_level is grid, community or town",
    "overdue": "cases open now whose current deadline < as_of, whenever reported",
    "grids": "grids under the area, not retired before the period began",
    "microgrids": "micro-grids under the area, not retired before the period began",
    "microgrids_patrolled": (
        "those touched by in-time tracks of finished patrols started in the period"
    ),
}
COUNTS = tuple(COUNT_DEFINITIONS)


@dataclass(frozen=True)
class RateDefinition:
    label: str
    numerator: str
    denominator: str
    higher_is_better: bool = True

    @property
    def formula(self) -> str:
        """The formula as documented: `label = numerator / denominator`."""
        return f"{self.label} = {self.numerator} / {self.denominator}"


RATE_DEFINITIONS = {
    "closure_rate": RateDefinition("结案率", "closed", "due"),
    "on_time_closure_rate": RateDefinition("按期结案率", "closed_on_time", "due"),
    "on_time_handling_rate": RateDefinition("按期处置率", "resolved_on_time", "resolved"),
    "rework_rate": RateDefinition("返工率", "reworked", "handled", higher_is_better=False),
    "town_or_below_rate": RateDefinition("镇街及以下解决率", "resolved_town_or_below", "resolved"),
    "reports_per_grid": RateDefinition("网格平均上报数", "reported", "grids"),
    "patrol_coverage": RateDefinition("巡查覆盖率", "microgrids_patrolled", "microgrids"),
}
RATES = tuple(RATE_DEFINITIONS)
# What a ranking may rank by: every rate, and the overdue count (fewer is better).
RANKABLE = (*RATES, "overdue")
DEFAULT_RANKING_INDICATOR = "on_time_closure_rate"


def definitions() -> dict[str, str]:
    """Every count's definition and every rate's formula, by name (as the module docs say)."""
    return {
        **COUNT_DEFINITIONS,
        **{name: rate.formula for name, rate in RATE_DEFINITIONS.items()},
    }


# --- periods --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Whole days in China time, first_day to last_day included."""

    label: str
    first_day: date
    last_day: date

    @property
    def start(self) -> datetime:
        """The first instant of the period (China midnight)."""
        return datetime.combine(self.first_day, time(), CHINA_TZ)

    @property
    def end(self) -> datetime:
        """The first instant after the period (exclusive)."""
        return datetime.combine(self.last_day + timedelta(days=1), time(), CHINA_TZ)


def month_period(year: int, month: int) -> Period:
    """The calendar month `year-month`."""
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    return Period(f"{year:04d}-{month:02d}", first, following - timedelta(days=1))


def quarter_period(year: int, quarter: int) -> Period:
    """The calendar quarter `quarter` (1-4) of `year`."""
    first_month = 3 * (quarter - 1) + 1
    first, last = month_period(year, first_month), month_period(year, first_month + 2)
    return Period(f"{year:04d}-Q{quarter}", first.first_day, last.last_day)


def period_from_label(label: str) -> Period:
    """`YYYY-MM` or `YYYY-Qn` as a Period; ValueError when it is neither."""
    year_text, _, rest = label.partition("-")
    if not (year_text.isascii() and year_text.isdigit() and len(year_text) == 4):
        raise ValueError(f"not a period: {label!r}")
    year = int(year_text)
    if rest[:1] == "Q" and rest[1:] in ("1", "2", "3", "4"):
        return quarter_period(year, int(rest[1:]))
    if len(rest) == 2 and rest.isascii() and rest.isdigit() and 1 <= int(rest) <= 12:
        return month_period(year, int(rest))
    raise ValueError(f"not a period: {label!r}")


def day_period(first_day: date, last_day: date) -> Period:
    """The days first_day..last_day (included); ValidationFailed if reversed or too long."""
    if last_day < first_day:
        raise ValidationFailed(
            "The period ends before it starts.", errors={"query": {"to": ["Before from."]}}
        )
    if (last_day - first_day).days + 1 > MAX_PERIOD_DAYS:
        raise ValidationFailed(
            f"A period spans at most {MAX_PERIOD_DAYS} days.",
            errors={"query": {"to": [f"At most {MAX_PERIOD_DAYS} days after from."]}},
        )
    return Period(f"{first_day.isoformat()}..{last_day.isoformat()}", first_day, last_day)


def current_month(now: datetime | None = None) -> Period:
    """The month in progress in China time."""
    today = (now or datetime.now(UTC)).astimezone(CHINA_TZ).date()
    return month_period(today.year, today.month)


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AreaRef:
    id: int
    code: str
    name: str
    level: str


@dataclass(frozen=True)
class Rate:
    numerator: int
    denominator: int

    @property
    def exact(self) -> Fraction | None:
        """numerator / denominator as an exact fraction; None when the denominator is 0."""
        return Fraction(self.numerator, self.denominator) if self.denominator else None

    @property
    def value(self) -> float | None:
        """The rate rounded to ROUND_DIGITS places; None when the denominator is 0."""
        exact = self.exact
        return None if exact is None else round(float(exact), ROUND_DIGITS)


@dataclass(frozen=True)
class AreaIndicators:
    area: AreaRef
    counts: dict[str, int]

    @property
    def rates(self) -> dict[str, Rate]:
        """Every rate, from the counts."""
        return {
            name: Rate(self.counts[rate.numerator], self.counts[rate.denominator])
            for name, rate in RATE_DEFINITIONS.items()
        }


@dataclass(frozen=True)
class IndicatorReport:
    period: Period
    as_of: datetime
    indicators: AreaIndicators

    @property
    def definitions(self) -> dict[str, str]:
        """Every count's definition and every rate's formula (they travel with the figures)."""
        return definitions()


@dataclass(frozen=True)
class RankedArea:
    rank: int | None  # None: no value (its denominator is 0)
    code: str
    name: str
    value: float | int | None
    numerator: int
    denominator: int | None  # None for a count (overdue)


@dataclass(frozen=True)
class Ranking:
    level: str
    parent: str | None
    indicator: str
    higher_is_better: bool
    period: Period
    as_of: datetime
    items: list[RankedArea]

    @property
    def definition(self) -> str:
        """The ranked indicator's definition or formula."""
        return definitions()[self.indicator]

    @property
    def order(self) -> str:
        """desc when higher is better, else asc."""
        return "desc" if self.higher_is_better else "asc"


# --- use cases ------------------------------------------------------------------------------


def area_indicators(
    session: Session,
    *,
    user: User,
    area_code: str,
    period: Period,
    max_backdate: timedelta,
    now: datetime | None = None,
) -> IndicatorReport:
    """Counts and rates of one area the user may see, for the period."""
    row = session.execute(
        select(Area.id, Area.code, Area.name, Area.level).where(Area.code == area_code)
    ).first()
    if row is None:
        raise AreaNotFound(f"No area with code {area_code!r}.")
    area = AreaRef(*row)
    require_in_scope(session, user=user, code=area.code)
    as_of = min(now or datetime.now(UTC), period.end)
    computed = _indicators(
        session,
        areas=[area],
        period=period,
        as_of=as_of,
        with_patrols=True,
        max_backdate=max_backdate,
    )
    return IndicatorReport(period=period, as_of=as_of, indicators=computed[0])


def ranking(
    session: Session,
    *,
    user: User,
    level: str,
    period: Period,
    max_backdate: timedelta,
    indicator: str = DEFAULT_RANKING_INDICATOR,
    parent_code: str | None = None,
    now: datetime | None = None,
) -> Ranking:
    """The areas at `level` under `parent_code` (default: the caller's scope), best first."""
    if level not in RANKING_LEVELS:
        raise ValidationFailed(
            f"Rankings are by {' or '.join(RANKING_LEVELS)}.",
            errors={"query": {"level": [f"One of {', '.join(RANKING_LEVELS)}."]}},
        )
    if indicator not in RANKABLE:
        raise ValidationFailed(
            f"Unknown indicator {indicator!r}.",
            errors={"query": {"indicator": [f"One of {', '.join(RANKABLE)}."]}},
        )
    prefixes = _ranking_prefixes(session, user=user, level=level, parent_code=parent_code)
    as_of = min(now or datetime.now(UTC), period.end)
    areas = _areas_at(session, level=level, prefixes=prefixes, period=period)
    computed = _indicators(
        session,
        areas=areas,
        period=period,
        as_of=as_of,
        with_patrols=indicator == "patrol_coverage",
        max_backdate=max_backdate,
    )
    higher_is_better = indicator in RATES and RATE_DEFINITIONS[indicator].higher_is_better
    return Ranking(
        level=level,
        parent=parent_code,
        indicator=indicator,
        higher_is_better=higher_is_better,
        period=period,
        as_of=as_of,
        items=_ranked(computed, indicator=indicator, higher_is_better=higher_is_better),
    )


# --- scope ----------------------------------------------------------------------------------


def _scope_codes(session: Session, user: User) -> list[str] | None:
    """Codes of the areas whose subtrees the user sees; None for everything (admin)."""
    if user.role == "admin":
        return None
    return assigned_area_codes(session, user_id=user.id)


def require_in_scope(session: Session, *, user: User, code: str) -> None:
    """Forbidden unless the area `code` is in the user's subtree (an admin's is everything)."""
    scope = _scope_codes(session, user)
    if scope is not None and not any(code.startswith(own) for own in scope):
        raise Forbidden(f"Area {code} is outside your scope.", details={"area": code})


def _ranking_prefixes(
    session: Session, *, user: User, level: str, parent_code: str | None
) -> list[str] | None:
    """Code prefixes of the areas to rank (None: all of them)."""
    length = LEVEL_CODE_LENGTH[level]
    if parent_code is not None:
        if session.scalar(select(Area.id).where(Area.code == parent_code)) is None:
            raise AreaNotFound(f"No area with code {parent_code!r}.")
        if len(parent_code) >= length:
            raise ValidationFailed(
                f"The parent must be an area above the {level} level.",
                code="invalid_parent",
                errors={"query": {"parent": [f"Not above the {level} level."]}},
            )
        require_in_scope(session, user=user, code=parent_code)
        return [parent_code]
    scope = _scope_codes(session, user)
    if scope is None:
        return None
    above = [code for code in scope if len(code) < length]
    if not above:
        raise Forbidden(
            f"A ranking of {level}s needs an area above the {level} level in your scope.",
            details={"level": level},
        )
    return above


def _areas_at(
    session: Session, *, level: str, prefixes: list[str] | None, period: Period
) -> list[AreaRef]:
    """Areas at `level` under any of `prefixes`, not retired before the period, in code order."""
    query = select(Area.id, Area.code, Area.name, Area.level).where(
        Area.level == level, or_(Area.retired_at.is_(None), Area.retired_at >= period.start)
    )
    if prefixes is not None:
        query = query.where(or_(*(Area.code.startswith(prefix) for prefix in prefixes)))
    return [AreaRef(*row) for row in session.execute(query.order_by(Area.code))]


# --- counting -------------------------------------------------------------------------------


def _indicators(
    session: Session,
    *,
    areas: list[AreaRef],
    period: Period,
    as_of: datetime,
    with_patrols: bool,
    max_backdate: timedelta,
) -> list[AreaIndicators]:
    """The counts of each area (all at one level), in the order given."""
    if not areas:
        return []
    level = areas[0].level
    by_area = _incident_counts(
        session, level=level, area_ids=[a.id for a in areas], period=period, as_of=as_of
    )
    by_code = _area_counts(
        session,
        level=level,
        codes=[a.code for a in areas],
        period=period,
        with_patrols=with_patrols,
        max_backdate=max_backdate,
    )
    zero = dict.fromkeys(COUNTS, 0)
    return [
        AreaIndicators(area=a, counts={**zero, **by_area.get(a.id, {}), **by_code.get(a.code, {})})
        for a in areas
    ]


def _incident_conditions(period: Period, as_of: datetime) -> dict:
    """The SQL condition of each incident count (see the module's table)."""
    reported = and_(Incident.created_at >= period.start, Incident.created_at < period.end)
    due = and_(reported, Incident.status.notin_(NOT_CASES))
    resolved = and_(due, Incident.resolved_at.is_not(None))
    on_time = or_(
        Incident.handle_deadline.is_(None), Incident.resolved_at <= Incident.handle_deadline
    )
    closed = and_(due, Incident.status == "closed")
    return {
        "reported": reported,
        "due": due,
        "closed": closed,
        "closed_on_time": and_(closed, on_time),
        "resolved": resolved,
        "resolved_on_time": and_(resolved, on_time),
        "handled": and_(due, or_(Incident.resolved_at.is_not(None), Incident.rework_count > 0)),
        "reworked": and_(due, Incident.rework_count > 0),
        "resolved_town_or_below": and_(resolved, Incident.resolved_level.in_(TOWN_OR_BELOW)),
        "overdue": overdue_condition(as_of),
    }


def _incident_counts(
    session: Session, *, level: str, area_ids: list[int], period: Period, as_of: datetime
) -> dict[int, dict[str, int]]:
    """One aggregate query: every incident count per area id (areas without cases absent)."""
    area_id = INCIDENT_AREA_COLUMNS[level]
    conditions = _incident_conditions(period, as_of)
    query = (
        select(
            area_id.label("area_id"),
            *(func.count().filter(condition).label(name) for name, condition in conditions.items()),
        )
        .where(area_id.in_(area_ids), or_(conditions["reported"], conditions["overdue"]))
        .group_by(area_id)
    )
    return {
        row.area_id: {name: row._mapping[name] for name in conditions}
        for row in session.execute(query)
    }


def _area_counts(
    session: Session,
    *,
    level: str,
    codes: list[str],
    period: Period,
    with_patrols: bool,
    max_backdate: timedelta,
) -> dict[str, dict[str, int]]:
    """One aggregate query: grids, micro-grids (and those patrolled) per area code."""
    prefix = func.left(Area.code, LEVEL_CODE_LENGTH[level])
    is_grid, is_microgrid = Area.level == "grid", Area.level == "microgrid"
    columns = [
        prefix.label("code"),
        func.count().filter(is_grid).label("grids"),
        func.count().filter(is_microgrid).label("microgrids"),
    ]
    if with_patrols:
        patrolled = Area.id.in_(patrolled_microgrids(period, max_backdate=max_backdate))
        columns.append(func.count().filter(is_microgrid, patrolled).label("microgrids_patrolled"))
    query = (
        select(*columns)
        .where(
            Area.level.in_(("grid", "microgrid")),
            or_(Area.retired_at.is_(None), Area.retired_at >= period.start),
            prefix.in_(codes),
        )
        .group_by(prefix)
    )
    return {
        row.code: {key: value for key, value in row._mapping.items() if key != "code"}
        for row in session.execute(query)
    }


def patrolled_microgrids(period: Period, *, max_backdate: timedelta):
    """SQL: ids of the micro-grids the track of a finished patrol started in the period touched.

    The track is built as the patrol summary builds it: the line through the points in time
    order, or the points themselves when they are all in one place (a zero-length line
    intersects nothing), from the patrols and points recorded in time (see the module's
    docs). The GiST index on area.boundary finds the micro-grids.
    """
    line = func.ST_MakeLine(aggregate_order_by(TrackPoint.location, TrackPoint.t))
    path = case((func.ST_Length(line) > 0, line), else_=func.ST_Collect(TrackPoint.location))
    tracks = (
        select(path.label("path"))
        .select_from(TrackPoint)
        .join(Patrol, Patrol.id == TrackPoint.patrol_id)
        .where(
            Patrol.finished_at.is_not(None),
            Patrol.started_at >= period.start,
            Patrol.started_at < period.end,
            Patrol.created_at <= Patrol.started_at + max_backdate,
            or_(
                TrackPoint.recorded_at.is_(None),
                TrackPoint.recorded_at <= TrackPoint.t + max_backdate,
            ),
        )
        .group_by(TrackPoint.patrol_id)
        .subquery("track")
    )
    microgrid = aliased(Area)
    return (
        select(microgrid.id)
        .join(tracks, func.ST_Intersects(microgrid.boundary, tracks.c.path))
        .where(microgrid.level == "microgrid")
    )


# --- ranking --------------------------------------------------------------------------------


def _ranked(
    computed: list[AreaIndicators], *, indicator: str, higher_is_better: bool
) -> list[RankedArea]:
    """Best first; equal exact values share a rank (1, 2, 2, 4); no value: no rank, last."""
    entries = []
    for item in computed:
        if indicator in RATES:
            rate = item.rates[indicator]
            exact, entry = rate.exact, (rate.value, rate.numerator, rate.denominator)
        else:
            count = item.counts[indicator]
            exact, entry = Fraction(count), (count, count, None)
        entries.append((exact, item.area, entry))
    valued = sorted(
        (e for e in entries if e[0] is not None),
        key=lambda e: (-e[0] if higher_is_better else e[0], e[1].code),
    )
    ranked: list[RankedArea] = []
    rank, previous = 0, None
    for position, (exact, area, (value, numerator, denominator)) in enumerate(valued, start=1):
        if exact != previous:
            rank, previous = position, exact
        ranked.append(RankedArea(rank, area.code, area.name, value, numerator, denominator))
    for _, area, (value, numerator, denominator) in entries:
        if value is None:
            ranked.append(RankedArea(None, area.code, area.name, None, numerator, denominator))
    return ranked
