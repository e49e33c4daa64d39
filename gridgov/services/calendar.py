"""Working time: deadlines counted in working hours or working days on a data-driven calendar.

Rules (documented once, here):
- A working day is Monday-Friday unless it is a holiday, plus any adjusted working day
  (调休: a Saturday or Sunday that is worked).
- Holidays and adjusted working days come from the chinesecalendar package (the State Council's
  yearly notices). The calendar file (GRIDGOV_WORK_CALENDAR) is the local override: a year
  listed in it, under "holidays" or "adjusted_working_days", replaces the package's data for
  that year whole (both lists), so an office can add a year before the package has it, or
  correct one. A year is covered when either source has it; outside its covered years the
  calendar counts weekends only, which is why readiness and the escalation job check coverage.
- Working hours are the day's windows (default 08:30-12:00 and 13:30-17:30), in China time
  (CHINA_TZ, the one time zone object of the code base: deadlines, periods, Open311 days).
- N working hours from t: walk forward through the windows from t, consuming N hours.
- N working days from t: the end of the N-th working day after t's own day (the day of the
  report never counts, whatever its hour), so "1 working day" reported on Friday afternoon is
  due at the close of the next working day.
"""

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import chinese_calendar

CHINA_TZ = timezone(timedelta(hours=8), "UTC+08:00")
UNITS = ("working_hours", "working_days")
_MAX_DAYS_SCANNED = 3 * 366  # a limit larger than this is a data error, not a deadline


@dataclass(frozen=True)
class WorkCalendar:
    tz: timezone
    windows: tuple[tuple[time, time], ...]
    holidays: frozenset[date]
    adjusted_working_days: frozenset[date]
    covered_years: frozenset[int]

    def is_working_day(self, day: date) -> bool:
        """True for a weekday that is no holiday, or an adjusted working weekend day."""
        if day in self.adjusted_working_days:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add(self, start: datetime, amount: float, unit: str) -> datetime:
        """The deadline `amount` working hours/days after `start` (an aware datetime)."""
        if unit == "working_hours":
            return self.add_working_hours(start, amount)
        if unit == "working_days":
            return self.add_working_days(start, int(amount))
        raise ValueError(f"unknown time-limit unit {unit!r}; expected one of {UNITS}")

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """`hours` of working time after `start`, as an aware UTC datetime."""
        remaining = timedelta(hours=hours)
        local = start.astimezone(self.tz)
        day = local.date()
        for _ in range(_MAX_DAYS_SCANNED):
            if self.is_working_day(day):
                for opens, closes in self.windows:
                    window_start = max(local, datetime.combine(day, opens, self.tz))
                    window_end = datetime.combine(day, closes, self.tz)
                    if window_start >= window_end:
                        continue
                    if window_start + remaining <= window_end:
                        return (window_start + remaining).astimezone(UTC)
                    remaining -= window_end - window_start
            day += timedelta(days=1)
        raise ValueError("time limit runs past the calendar's horizon")

    def working_hours_between(self, start: datetime, end: datetime) -> float:
        """Working hours from `start` to `end`; negative when `end` is the earlier one."""
        if end < start:
            return -self.working_hours_between(end, start)
        total = timedelta()
        day, last = start.astimezone(self.tz).date(), end.astimezone(self.tz).date()
        while day <= last:
            if self.is_working_day(day):
                for opens, closes in self.windows:
                    low = max(start, datetime.combine(day, opens, self.tz))
                    high = min(end, datetime.combine(day, closes, self.tz))
                    total += max(high - low, timedelta())
            day += timedelta(days=1)
        return total / timedelta(hours=1)

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """Close of the `days`-th working day after `start`'s day, as an aware UTC datetime."""
        day = start.astimezone(self.tz).date()
        counted = 0
        for _ in range(_MAX_DAYS_SCANNED):
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
                if counted >= days:
                    return datetime.combine(day, self.windows[-1][1], self.tz).astimezone(UTC)
        raise ValueError("time limit runs past the calendar's horizon")


_REMEDY = (
    "Add {year} to the calendar override (GRIDGOV_WORK_CALENDAR) from the State Council's"
    " notice, or upgrade chinesecalendar once it has {year}."
)


@dataclass(frozen=True)
class Coverage:
    """Whether the calendar knows the years a deadline is counted in, as of `today`."""

    today: date
    uncovered_year: int | None  # this year is not covered: deadlines are wrong now
    error: str | None
    warnings: tuple[str, ...]  # the coming year is not covered and it is close


def check_coverage(
    calendar: WorkCalendar, *, warn_days: int, today: date | None = None
) -> Coverage:
    """The calendar's coverage of this year, and of the next within `warn_days` of year end."""
    today = today or datetime.now(calendar.tz).date()
    year = today.year
    if year not in calendar.covered_years:
        error = (
            f"The working calendar does not cover {year}: deadlines are counted without its"
            f" holidays and adjusted working days. {_REMEDY.format(year=year)}"
        )
        return Coverage(today=today, uncovered_year=year, error=error, warnings=())
    coming = year + 1
    days_left = (date(coming, 1, 1) - today).days
    warnings = ()
    if coming not in calendar.covered_years and days_left <= warn_days:
        warnings = (
            f"The working calendar does not cover {coming}: from {coming}-01-01 deadlines will"
            f" be counted without its holidays and adjusted working days."
            f" {_REMEDY.format(year=coming)}",
        )
    return Coverage(today=today, uncovered_year=None, error=None, warnings=warnings)


def _parse_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _dates(by_year: dict[str, list[str]]) -> frozenset[date]:
    days = frozenset(date.fromisoformat(d) for listed in by_year.values() for d in listed)
    for year, listed in by_year.items():
        misplaced = [d for d in listed if date.fromisoformat(d).year != int(year)]
        if misplaced:
            raise ValueError(f"calendar file lists {', '.join(misplaced)} under {year}")
    return days


@lru_cache(maxsize=8)
def load_calendar(path: Path) -> WorkCalendar:
    """The package's holidays and adjusted working days, the calendar file's years over them."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("timezone_offset_hours", 8) != 8:
        raise ValueError("the working calendar counts China time: timezone_offset_hours must be 8")
    overridden = {int(year) for year in (*data["holidays"], *data["adjusted_working_days"])}
    package_years = {day.year for day in chinese_calendar.holidays}
    return WorkCalendar(
        tz=CHINA_TZ,
        windows=tuple((_parse_time(a), _parse_time(b)) for a, b in data["working_hours"]),
        holidays=_dates(data["holidays"])
        | {day for day in chinese_calendar.holidays if day.year not in overridden},
        adjusted_working_days=_dates(data["adjusted_working_days"])
        | {day for day in chinese_calendar.workdays if day.year not in overridden},
        covered_years=frozenset(package_years | overridden),
    )
