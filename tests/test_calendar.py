"""Working-time deadlines across weekends, holidays and adjusted working days (2026 calendar)."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from config import Config
from gridgov.services.calendar import load_calendar

CST = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def cal():
    return load_calendar(Config.WORK_CALENDAR_FILE)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CST)


@pytest.mark.parametrize(
    "start, hours, due",
    [
        ("2026-11-25 09:00", 1, "2026-11-25 10:00"),  # Wednesday morning
        ("2026-11-25 11:30", 1, "2026-11-25 14:00"),  # across the lunch break
        ("2026-11-25 17:00", 4, "2026-11-26 12:00"),  # overnight: 0.5 h + 3.5 h
        ("2026-11-27 16:30", 4, "2026-11-30 11:30"),  # Friday → Monday, across a weekend
        ("2026-11-28 10:00", 1, "2026-11-30 09:30"),  # reported on Saturday
        ("2026-11-25 07:00", 1, "2026-11-25 09:30"),  # before opening
        ("2026-11-25 12:30", 0.5, "2026-11-25 14:00"),  # during lunch
        ("2026-09-30 17:00", 4, "2026-10-08 12:00"),  # National Day: 10-01..07 off
    ],
)
def test_working_hours(cal, start, hours, due):
    assert cal.add(at(start), hours, "working_hours") == at(due).astimezone(UTC)


@pytest.mark.parametrize(
    "start, days, due",
    [
        ("2026-11-25 10:00", 1, "2026-11-26 17:30"),
        ("2026-11-27 10:00", 1, "2026-11-30 17:30"),  # Friday: weekend skipped
        ("2026-11-25 10:00", 5, "2026-12-02 17:30"),
        # Spring Festival 02-15..02-23 off; Saturday 02-14 is an adjusted working day.
        ("2026-02-13 10:00", 1, "2026-02-14 17:30"),
        ("2026-02-14 10:00", 1, "2026-02-24 17:30"),
        # Saturday 02-28 is worked too.
        ("2026-02-27 10:00", 1, "2026-02-28 17:30"),
        # New Year 01-01..03 off, Sunday 01-04 worked.
        ("2025-12-31 10:00", 1, "2026-01-04 17:30"),
    ],
)
def test_working_days(cal, start, days, due):
    assert cal.add(at(start), days, "working_days") == at(due).astimezone(UTC)


def test_days_and_kinds(cal):
    assert cal.is_working_day(at("2026-10-10 00:00").date())  # Saturday, adjusted
    assert not cal.is_working_day(at("2026-10-05 00:00").date())  # Monday, holiday
    assert not cal.is_working_day(at("2026-11-29 00:00").date())  # plain Sunday


def test_unknown_unit_is_refused(cal):
    with pytest.raises(ValueError, match="unknown time-limit unit"):
        cal.add(at("2026-11-25 10:00"), 1, "fortnights")


def test_input_in_another_timezone_is_the_same_instant(cal):
    utc_start = at("2026-11-27 16:30").astimezone(UTC)
    assert cal.add(utc_start, 4, "working_hours") == at("2026-11-30 11:30").astimezone(UTC)
