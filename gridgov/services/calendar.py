"""Working time: deadlines counted in working hours or working days on a data-driven calendar.

Rules (documented once, here):
- A working day is Monday-Friday unless it is a holiday, plus any adjusted working day
  (调休: a Saturday or Sunday that is worked). All of these come from the calendar file.
- Working hours are the day's windows (default 08:30-12:00 and 13:30-17:30, China time).
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

UNITS = ("working_hours", "working_days")
_MAX_DAYS_SCANNED = 3 * 366  # a limit larger than this is a data error, not a deadline


@dataclass(frozen=True)
class WorkCalendar:
    tz: timezone
    windows: tuple[tuple[time, time], ...]
    holidays: frozenset[date]
    adjusted_working_days: frozenset[date]

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


def _parse_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _dates(by_year: dict[str, list[str]]) -> frozenset[date]:
    return frozenset(date.fromisoformat(d) for days in by_year.values() for d in days)


@lru_cache(maxsize=8)
def load_calendar(path: Path) -> WorkCalendar:
    """Read a calendar file (see gridgov/data/work_calendar.json for the format)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return WorkCalendar(
        tz=timezone(timedelta(hours=data["timezone_offset_hours"])),
        windows=tuple((_parse_time(a), _parse_time(b)) for a, b in data["working_hours"]),
        holidays=_dates(data["holidays"]),
        adjusted_working_days=_dates(data["adjusted_working_days"]),
    )
