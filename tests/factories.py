"""Test data factories: rows inserted straight through the session (no API), then flushed."""

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from geo.levels import LEVELS
from gridgov.models import Area, Assignment, Category, Incident, User
from gridgov.spatial import point_sql

# Far outside the demo district (Ningbo is near 121.5E 29.8N): nothing covers it.
UNROUTED_POINT = (100.0, 30.0)


def make_incident(
    session,
    *,
    reporter: User | int,
    microgrid_code: str | None = None,
    status: str = "reported",
    category_code: str = "env_garbage",
    **overrides,
) -> Incident:
    """Insert a valid incident routed (`covered`) to a micro-grid, or `unrouted` without one.

    The location is a point on the micro-grid's surface; every routing level is filled by
    walking the parent chain. `overrides` set any other Incident column.
    """
    reporter_id = reporter if isinstance(reporter, int) else reporter.id
    category = session.scalar(select(Category).where(Category.code == category_code))
    if category is None:
        raise LookupError(f"no category {category_code!r}")
    routing: dict[str, int | None] = dict.fromkeys(level.column for level in LEVELS)
    level = "grid"
    if microgrid_code is None:
        lon, lat = UNROUTED_POINT
        method = "unrouted"
        # An unrouted report waits in the district's queue.
        routing[LEVELS.root.column] = session.scalar(
            select(Area.id).where(Area.level == LEVELS.root.name)
        )
        level = "district"
    else:
        microgrid = session.scalar(
            select(Area).where(Area.code == microgrid_code, Area.level == LEVELS.leaf.name)
        )
        if microgrid is None:
            raise LookupError(f"no micro-grid {microgrid_code!r}")
        point = func.ST_PointOnSurface(Area.boundary)
        lon, lat = session.execute(
            select(func.ST_X(point), func.ST_Y(point)).where(Area.id == microgrid.id)
        ).one()
        area: Area | None = microgrid
        while area is not None:
            routing[LEVELS[area.level].column] = area.id
            area = session.get(Area, area.parent_id) if area.parent_id else None
        method = "covered"
    values = {
        "client_id": str(uuid.uuid4()),
        "reporter_id": reporter_id,
        "content_hash": hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
        "category_id": category.id,
        "priority": category.default_priority,
        "description": "test incident",
        "status": status,
        "occurred_at": datetime.now(UTC),
        "location": point_sql(lon, lat),
        "input_lon": lon,
        "input_lat": lat,
        "input_crs": "wgs84",
        "routing_method": method,
        "routing_candidates": 1 if method == "covered" else 0,
        "handling_level": level,
        **routing,
        **overrides,
    }
    incident = Incident(**values)
    session.add(incident)
    session.flush()
    return incident


def make_user(
    session,
    *,
    username: str,
    role: str = "worker",
    area_code: str | None = None,
    duty: str | None = None,
) -> User:
    """Insert an active user, assigned (from yesterday on) to `area_code` when one is given."""
    user = User(username=username, display_name=username, password_hash="!", role=role)
    session.add(user)
    session.flush()
    if area_code is not None:
        area = session.scalar(select(Area).where(Area.code == area_code))
        if area is None:
            raise LookupError(f"no area {area_code!r}")
        session.add(
            Assignment(
                user_id=user.id,
                area_id=area.id,
                duty=duty or ("supervisor" if role == "supervisor" else "full_time"),
                active_from=datetime.now(UTC) - timedelta(days=1),
            )
        )
        session.flush()
    return user


def make_assignment(
    session,
    *,
    user: User | int,
    area_code: str,
    duty: str = "full_time",
    active_from: datetime | None = None,
    active_to: datetime | None = None,
) -> Assignment:
    """Insert an assignment as is (no rule checks), from yesterday on unless told otherwise."""
    area = session.scalar(select(Area).where(Area.code == area_code))
    if area is None:
        raise LookupError(f"no area {area_code!r}")
    assignment = Assignment(
        user_id=user if isinstance(user, int) else user.id,
        area_id=area.id,
        duty=duty,
        active_from=active_from or datetime.now(UTC) - timedelta(days=1),
        active_to=active_to,
    )
    session.add(assignment)
    session.flush()
    return assignment
