"""Working-time deadlines across weekends, holidays and adjusted working days; the calendar's
sources (the chinesecalendar package, the file's override) and its coverage checks."""

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from config import Config
from gridgov.services.calendar import check_coverage, load_calendar
from tests.factories import make_incident
from tests.helpers import configure

CST = timezone(timedelta(hours=8))
# The last year the shipped calendar covers: the package's, since the shipped file lists none.
LAST = max(load_calendar(Config.WORK_CALENDAR_FILE).covered_years)


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


# --- sources: the package, and the file as its override ------------------------------------------


def write_calendar(tmp_path, *, holidays, adjusted_working_days):
    """A copy of the shipped calendar file listing these years (path is new, so not cached)."""
    data = json.loads(Config.WORK_CALENDAR_FILE.read_text(encoding="utf-8"))
    data.update(holidays=holidays, adjusted_working_days=adjusted_working_days)
    path = tmp_path / "work_calendar.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "start, days, due",
    [
        # National Day 2024 (10-01..07) and Saturday 10-12 worked: in no file, only the package.
        ("2024-09-30 17:00", 1, "2024-10-08 17:30"),
        ("2024-10-11 10:00", 1, "2024-10-12 17:30"),
        # 2026: Mid-Autumn Friday 09-25 off, Sunday 09-20 worked.
        ("2026-09-24 10:00", 1, "2026-09-28 17:30"),
        ("2026-09-18 10:00", 1, "2026-09-20 17:30"),
    ],
)
def test_the_shipped_file_lists_no_year_and_the_package_supplies_them(cal, start, days, due):
    assert cal.add(at(start), days, "working_days") == at(due).astimezone(UTC)


def test_the_package_covers_its_years(cal):
    assert set(range(2004, 2027)) <= cal.covered_years
    assert LAST + 1 not in cal.covered_years


def test_the_file_adds_a_year_the_package_lacks(tmp_path, cal):
    path = write_calendar(
        tmp_path,
        holidays={"2030": ["2030-02-01"]},  # a Friday off
        adjusted_working_days={"2030": ["2030-02-02"]},  # that Saturday worked
    )
    start = at("2030-01-31 10:00")
    assert cal.add(start, 1, "working_days") == at("2030-02-01 17:30").astimezone(UTC)
    assert 2030 not in cal.covered_years
    overridden = load_calendar(path)
    assert overridden.add(start, 1, "working_days") == at("2030-02-02 17:30").astimezone(UTC)
    assert overridden.covered_years == cal.covered_years | {2030}
    # The package's other years stay.
    assert not overridden.is_working_day(date(2026, 10, 5))


def test_a_year_in_the_file_replaces_the_packages_year_whole(tmp_path, cal):
    path = write_calendar(tmp_path, holidays={"2026": ["2026-10-01"]}, adjusted_working_days={})
    overridden = load_calendar(path)
    assert not overridden.is_working_day(date(2026, 10, 1))
    assert overridden.is_working_day(date(2026, 10, 2))  # the package's holiday is gone
    assert not overridden.is_working_day(date(2026, 10, 10))  # so is its working Saturday
    assert cal.is_working_day(date(2026, 10, 10))
    assert overridden.covered_years == cal.covered_years


def test_a_day_listed_under_another_year_is_refused(tmp_path):
    path = write_calendar(tmp_path, holidays={"2030": ["2031-01-01"]}, adjusted_working_days={})
    with pytest.raises(ValueError, match="2031-01-01 under 2030"):
        load_calendar(path)


# --- coverage -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def only_2026(cal):
    return dataclasses.replace(cal, covered_years=frozenset({2026}))


@pytest.mark.parametrize(
    "today, warned",
    [
        ("2026-06-01", False),
        ("2026-11-01", False),  # 61 days before 2027
        ("2026-11-02", True),  # 60 days
        ("2026-12-31", True),
    ],
)
def test_the_coming_year_is_warned_about_within_the_warning_days(only_2026, today, warned):
    coverage = check_coverage(only_2026, warn_days=60, today=date.fromisoformat(today))
    assert coverage.error is None and coverage.uncovered_year is None
    if warned:
        (warning,) = coverage.warnings
        assert warning.startswith("The working calendar does not cover 2027: from 2027-01-01")
        assert "GRIDGOV_WORK_CALENDAR" in warning
    else:
        assert coverage.warnings == ()


def test_a_covered_coming_year_is_not_warned_about(cal, only_2026):
    both = dataclasses.replace(cal, covered_years=frozenset({2026, 2027}))
    assert check_coverage(both, warn_days=366, today=date(2026, 12, 31)).warnings == ()
    assert check_coverage(only_2026, warn_days=0, today=date(2026, 12, 31)).warnings == ()


def test_an_uncovered_current_year_is_an_error(only_2026):
    coverage = check_coverage(only_2026, warn_days=60, today=date(2027, 1, 1))
    assert coverage.uncovered_year == 2027
    assert coverage.error.startswith("The working calendar does not cover 2027: deadlines")
    assert coverage.warnings == ()
    assert check_coverage(only_2026, warn_days=60, today=date(2025, 12, 31)).uncovered_year == 2025


# --- the escalation job -------------------------------------------------------------------------


def escalate(app):
    return app.test_cli_runner().invoke(args=["incidents", "escalate-overdue"])


def test_the_escalation_job_warns_before_an_uncovered_year(app, db_session, monkeypatch):
    configure(monkeypatch, app, CALENDAR_TODAY=date(LAST, 12, 3))
    result = escalate(app)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"escalate-overdue: WARNING: The working calendar does not cover {LAST + 1}:"
        f" from {LAST + 1}-01-01 deadlines will be counted without its holidays and adjusted"
        f" working days. Add {LAST + 1} to the calendar override (GRIDGOV_WORK_CALENDAR) from"
        f" the State Council's notice, or upgrade chinesecalendar once it has {LAST + 1}.\n"
    )
    assert "escalate-overdue: 0 escalated" in result.stdout
    configure(monkeypatch, app, CALENDAR_WARN_DAYS=28)  # 29 days left: not yet
    quiet = escalate(app)
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_the_escalation_job_still_escalates_but_fails_in_an_uncovered_year(
    app, db_session, demo_users, monkeypatch
):
    overdue = make_incident(
        db_session,
        reporter=demo_users["grid_worker"],
        microgrid_code="330212001001001001",
        deadline=datetime.now(UTC) - timedelta(hours=1),
    )
    configure(monkeypatch, app, CALENDAR_TODAY=date(LAST + 1, 3, 1))
    result = escalate(app)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"escalate-overdue: ERROR: The working calendar does not cover {LAST + 1}: deadlines"
    )
    assert f"escalated incident {overdue.id}: grid -> community" in result.stdout
