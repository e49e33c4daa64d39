"""Stage time limits per category and priority, on the working calendar."""

from datetime import datetime, timedelta, timezone

import pytest

from config import Config
from gridgov.models import Category
from gridgov.services.calendar import load_calendar
from gridgov.services.time_limits import deadline_for

CST = timezone(timedelta(hours=8))
FRIDAY_AFTERNOON = datetime(2026, 11, 27, 16, 30, tzinfo=CST)


@pytest.fixture(scope="module")
def category():
    return Category(
        code="env_garbage",
        name="暴露垃圾",
        group_name="环境卫生",
        default_priority="normal",
        time_limits={
            "accept": {"amount": 1, "unit": "working_hours"},
            "handle": {"amount": 4, "unit": "working_hours"},
            "verify": {"amount": 1, "unit": "working_days"},
            "priority_overrides": {"urgent": {"handle": {"amount": 1, "unit": "working_hours"}}},
        },
    )


@pytest.fixture(scope="module")
def cal():
    return load_calendar(Config.WORK_CALENDAR_FILE)


@pytest.mark.parametrize(
    "status, priority, due",
    [
        ("reported", "normal", datetime(2026, 11, 27, 17, 30, tzinfo=CST)),  # accept: 1 h
        ("accepted", "normal", datetime(2026, 11, 30, 11, 30, tzinfo=CST)),  # handle: 4 h, weekend
        ("dispatched", "urgent", datetime(2026, 11, 27, 17, 30, tzinfo=CST)),  # override: 1 h
        ("resolved", "normal", datetime(2026, 11, 30, 17, 30, tzinfo=CST)),  # verify: 1 day
        ("verified", "normal", None),  # no clock runs
        ("closed", "normal", None),
    ],
)
def test_deadline_per_stage_and_priority(category, cal, status, priority, due):
    got = deadline_for(
        category, priority=priority, status=status, start=FRIDAY_AFTERNOON, calendar=cal
    )
    assert got == due
