"""Incident intake: validate, route, store once (idempotent per reporter and client_id).

Idempotency is enforced by the database: INSERT … ON CONFLICT (reporter_id, client_id) DO
NOTHING, then the existing row is fetched and its content hash compared. Two identical
requests racing each other therefore yield one incident and two identical answers; the
same client_id with different content is a conflict.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from geoalchemy2 import Geography
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from geo.levels import LEVELS
from geo.points import InputPoint
from gridgov.errors import Conflict, ValidationFailed
from gridgov.models import Area, Category, Incident, IncidentEvent, User
from gridgov.services import photos as photo_service
from gridgov.services.boundaries import lock_map_shared
from gridgov.services.calendar import WorkCalendar
from gridgov.services.duty import proposed_handler
from gridgov.services.incident_queries import case_ref, open_condition
from gridgov.services.patrols import get_open_patrol_of_worker
from gridgov.services.routing import (
    AreaRef,
    Routing,
    original_routing_columns,
    route_point,
    routing_columns,
)
from gridgov.services.scope import incident_scope
from gridgov.services.time_limits import deadline_for
from gridgov.spatial import from_db, point_sql


@dataclass(frozen=True)
class NewIncident:
    """What a phone submits (already parsed and its point converted to WGS-84)."""

    client_id: str
    category: str
    description: str
    location: InputPoint
    occurred_at: datetime | None = None
    priority: str | None = None
    resolved_on_site: bool = False
    patrol_id: int | None = None
    photos: tuple[str, ...] = field(default_factory=tuple)
    # The channel it came through ("phone", "open311", …) and that channel's own data
    # (address_string, contact details, attribute answers…), stored as is in incident.external.
    source: str = "phone"
    external: dict = field(default_factory=dict)

    def content_hash(self) -> str:
        """sha256 of everything the phone sent except client_id (what a replay must match)."""
        content = {
            "category": self.category,
            "description": self.description,
            "location": [
                self.location.input_lon,
                self.location.input_lat,
                self.location.crs,
                self.location.accuracy_m,
            ],
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat()
            if self.occurred_at
            else None,
            "priority": self.priority,
            "resolved_on_site": self.resolved_on_site,
            "patrol_id": self.patrol_id,
            "photos": sorted(self.photos),
        }
        raw = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class IntakeSettings:
    max_nearest_m: float
    calendar: WorkCalendar
    duplicate_radius_m: float
    duplicate_window: timedelta
    map_lock_wait_ms: int


@dataclass(frozen=True)
class IntakeResult:
    incident: Incident
    created: bool


def get_category(session: Session, *, code: str) -> Category:
    """An active category by code, or ValidationFailed(unknown_category)."""
    category = session.scalar(
        select(Category).where(Category.code == code, Category.is_active.is_(True))
    )
    if category is None:
        raise ValidationFailed(
            f"Unknown category {code!r}.",
            code="unknown_category",
            errors={"category": [f"unknown_category: no active category {code!r}"]},
        )
    return category


def submit_incident(
    session: Session,
    *,
    reporter: User,
    report: NewIncident,
    settings: IntakeSettings,
    now: datetime | None = None,
) -> IntakeResult:
    """Create the incident, or return the one this reporter already sent with this client_id.

    `now` is when it is received (default: the clock); the demo loader dates its cases."""
    content_hash = report.content_hash()
    existing = _find(session, reporter_id=reporter.id, client_id=report.client_id)
    if existing is not None:
        return _replay(existing, content_hash)
    category = get_category(session, code=report.category)
    if report.patrol_id is not None:
        get_open_patrol_of_worker(session, patrol_id=report.patrol_id, worker_id=reporter.id)
    now = now or datetime.now(UTC)
    # A boundary change cannot commit between routing and insert; one in progress is waited
    # for, but only so long (MapBusy): a whole-district import must not stall every worker.
    lock_map_shared(session, wait_ms=settings.map_lock_wait_ms)
    values = _incident_values(session, reporter, report, category, content_hash, now, settings)
    inserted_id = session.scalar(
        insert(Incident)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_incident_reporter_client")
        .returning(Incident.id)
    )
    if inserted_id is None:  # a concurrent request with this client_id committed first
        raced = _find(session, reporter_id=reporter.id, client_id=report.client_id)
        return _replay(raced, content_hash)
    incident = session.get(Incident, inserted_id)
    if report.photos:
        photo_service.attach_photos(
            session, incident_id=incident.id, photo_ids=list(report.photos), reporter_id=reporter.id
        )
    session.add(
        IncidentEvent(
            incident_id=incident.id,
            actor_id=reporter.id,
            action="report",
            from_status=None,
            to_status=incident.status,
            note="",
            data={"client_id": report.client_id, "routing": incident.routing_method},
            created_at=now,
        )
    )
    session.flush()
    return IntakeResult(incident=incident, created=True)


def _find(session: Session, *, reporter_id: int, client_id: str) -> Incident | None:
    return session.scalar(
        select(Incident).where(Incident.reporter_id == reporter_id, Incident.client_id == client_id)
    )


def _replay(existing: Incident, content_hash: str) -> IntakeResult:
    if existing.content_hash != content_hash:
        raise Conflict(
            "This client_id was already used for a different report.",
            code="client_id_conflict",
            details={"id": existing.id, "client_id": existing.client_id},
        )
    return IntakeResult(incident=existing, created=False)


def _incident_values(session, reporter, report, category, content_hash, now, settings) -> dict:
    point = report.location
    routing = route_point(
        session, lon=point.lon, lat=point.lat, max_nearest_m=settings.max_nearest_m
    )
    priority = report.priority or category.default_priority
    status = "resolved" if report.resolved_on_site else "reported"
    # An unrouted report waits in the district's queue, so the district handles it.
    level = "grid" if routing.area("grid") else "district"
    proposed = proposed_handler(
        session, microgrid_id=routing.area_id("microgrid"), grid_id=routing.area_id("grid")
    )
    on_site = {"resolved_at": now, "resolved_level": level} if report.resolved_on_site else {}
    return {
        "client_id": report.client_id,
        "created_at": now,
        "reporter_id": reporter.id,
        "content_hash": content_hash,
        "source": report.source,
        "external": report.external,
        "category_id": category.id,
        "priority": priority,
        "description": report.description,
        "status": status,
        "resolved_on_site": report.resolved_on_site,
        "occurred_at": report.occurred_at or now,
        "patrol_id": report.patrol_id,
        "location": point_sql(point.lon, point.lat),
        "input_lon": point.input_lon,
        "input_lat": point.input_lat,
        "input_crs": point.crs,
        "accuracy_m": point.accuracy_m,
        "deadline": deadline_for(
            category, priority=priority, status=status, start=now, calendar=settings.calendar
        ),
        "version": 1,
        "handling_level": level,
        "proposed_handler_id": proposed.id if proposed else None,
        **on_site,
        **routing_columns(routing),
        **original_routing_columns(routing),
    }


@dataclass(frozen=True)
class IncidentView:
    """An incident as the API shows it: the row plus its category, routing and photos."""

    incident: Incident
    category: Category
    routing: Routing
    lon: float
    lat: float
    photos: list[str]

    @property
    def ref(self) -> str:
        """The case number."""
        return case_ref(self.incident.id)

    @property
    def overdue(self) -> bool:
        """True when the current stage's deadline has passed."""
        deadline = self.incident.deadline
        return deadline is not None and deadline < datetime.now(UTC)


def incident_view(session: Session, *, incident: Incident) -> IncidentView:
    """Everything the API shows of one incident (a few primary-key lookups)."""
    point = from_db(incident.location)
    # Names only: whole Area rows would bring their boundaries (the district's is large).
    refs = {
        area_id: AreaRef(area_id, code, name)
        for area_id, code, name in session.execute(
            select(Area.id, Area.code, Area.name).where(
                Area.id.in_([getattr(incident, level.column) for level in LEVELS])
            )
        )
    }
    routing = Routing(
        lon=point.x,
        lat=point.y,
        method=incident.routing_method,
        distance_m=incident.routing_distance_m,
        candidates=incident.routing_candidates,
        areas={level.name: refs.get(getattr(incident, level.column)) for level in LEVELS},
    )
    return IncidentView(
        incident=incident,
        category=session.get(Category, incident.category_id),
        routing=routing,
        lon=point.x,
        lat=point.y,
        photos=photo_service.photo_ids_of_incident(session, incident_id=incident.id),
    )


@dataclass(frozen=True)
class PossibleDuplicate:
    id: int
    status: str
    distance_m: float
    reported_at: datetime


def possible_duplicates(
    session: Session, *, incident: Incident, viewer: User, settings: IntakeSettings
) -> list[PossibleDuplicate]:
    """Open incidents of the same category reported shortly before this one, close by."""
    here = select(Incident.location).where(Incident.id == incident.id).scalar_subquery()
    distance = func.ST_Distance(Incident.location.cast(Geography), here.cast(Geography))
    rows = session.execute(
        select(Incident.id, Incident.status, distance.label("distance_m"), Incident.created_at)
        .where(
            Incident.id != incident.id,
            Incident.category_id == incident.category_id,
            open_condition(),
            Incident.created_at <= incident.created_at,
            Incident.created_at >= incident.created_at - settings.duplicate_window,
            # Index-friendly prefilter in degrees (1 degree is over 70 km below latitude 50),
            # then the exact test in metres on the spheroid.
            func.ST_DWithin(Incident.location, here, settings.duplicate_radius_m / 70_000),
            func.ST_DWithin(
                Incident.location.cast(Geography),
                here.cast(Geography),
                settings.duplicate_radius_m,
            ),
            incident_scope(session, user=viewer),
        )
        .order_by(distance, Incident.id)
        .limit(10)
    ).all()
    return [PossibleDuplicate(r.id, r.status, round(r.distance_m, 1), r.created_at) for r in rows]
