"""Stage time limits of a category (and priority), turned into deadlines on the calendar.

A category's `time_limits` JSON: {"accept": {"amount": 1, "unit": "working_hours"},
"handle": {...}, "verify": {...}, "priority_overrides": {"urgent": {"handle": {...}}}}.
An override for the incident's priority wins over the category's stage limit.
"""

from datetime import datetime

from gridgov.models import Category
from gridgov.services.calendar import WorkCalendar

# The stage whose clock runs while an incident is in a status; terminal statuses have none.
# Its values are the stages a category's time limits may name.
STAGE_OF_STATUS = {
    "reported": "accept",
    "accepted": "handle",
    "dispatched": "handle",
    "in_progress": "handle",
    "returned": "handle",
    "resolved": "verify",
}
STAGES = tuple(dict.fromkeys(STAGE_OF_STATUS.values()))


def stage_limit(category: Category, *, priority: str, stage: str) -> dict | None:
    """The {"amount", "unit"} limit of a stage for this priority, or None if unlimited."""
    override = category.time_limits.get("priority_overrides", {}).get(priority, {})
    return override.get(stage) or category.time_limits.get(stage)


def deadline_for(
    category: Category, *, priority: str, status: str, start: datetime, calendar: WorkCalendar
) -> datetime | None:
    """When the stage of `status`, entered at `start`, is due (None if no clock runs)."""
    stage = STAGE_OF_STATUS.get(status)
    limit = stage and stage_limit(category, priority=priority, stage=stage)
    if not limit:
        return None
    return calendar.add(start, limit["amount"], limit["unit"])
