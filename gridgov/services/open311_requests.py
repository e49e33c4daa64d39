"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2): services and service requests.

The mapping between our cases and the spec's services and service requests: list, get and
create. Clients and their api_keys: gridgov/services/open311_clients.py; the spec's documents
in JSON and XML are rendered at the HTTP edge (gridgov/api/open311_render.py, served by
gridgov/api/open311.py).

Decisions (tested in tests/api/test_open311.py):

- Services are the active categories: service_code = category code, group = category group.
  Only the safety and fire groups have attributes (metadata=true): an optional `floor`
  (string) and an optional `hazard_level` (singlevaluelist low/medium/high; "high" raises the
  case's priority to at least high). Answers are stored in incident.external["attributes"].
- Who may read which requests: reading is public in the spec (no api_key), so the public read
  endpoints expose only requests that were *made through Open311* (incident.source =
  "open311"), never phone reports. Grid workers report family and neighbour disputes, elderly
  people living alone and fraud victims, with a point on a micro-grid of 50-100 households:
  published, that identifies people (and PIPL forbids publishing it without consent). A
  citizen app or a hotline posting through Open311 knows the spec publishes its requests.
  Even for those, contact details, reporter identity, device/account ids and photos are never
  shown; the description, service, status, times, address and point are.
- Posted requests go through submit_incident like any report. The reporter is the client's
  service user; the idempotency key (client_id) is derived, since the spec has none:
  sha256 over the client's full submission (service_code, lat, long, address, description,
  media_url, contact fields, device_id, account_id, attributes) plus the calendar day in the
  district's time zone. An identical re-post on the same day is the same request (200, the
  same service_request_id, no second case); the same text at the same point on a later day is
  a new request, so a recurrence is never swallowed by an old, possibly closed, case (a real
  duplicate is closed as `duplicate` by the town in the workflow).
- Status: open/closed (closed = closed, rejected, duplicate) with status_notes naming our
  workflow status in Chinese and English; expected_datetime = the current stage's deadline;
  agency_responsible = the town (the district for unrouted cases); zipcode is null.
- Locations: lat/long (WGS-84) are required unless address_string/address_id is given; this
  server has no geocoder, so an address alone is refused with a 400 that says so.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from geo.points import InputPoint
from gridgov.errors import NotFound, ValidationFailed
from gridgov.models import Area, Category, Incident, IntegrationClient, User
from gridgov.services.categories import list_categories
from gridgov.services.incident_queries import open_condition
from gridgov.services.incidents import IntakeResult, IntakeSettings, NewIncident, submit_incident
from gridgov.services.time_limits import stage_limit

SOURCE = "open311"

# Response volume (spec, GET Service Requests): "a span of 90 days or first 1000 requests
# returned, whichever is smallest"; an explicit range "may not span more than 90 days".
MAX_SPAN = timedelta(days=90)
MAX_REQUESTS = 1000
MAX_DESCRIPTION = 4000  # spec: "free form text limited to 4,000 characters"

# Our workflow status → (Open311 status, status_notes).
STATUS_MAP = {
    "reported": ("open", "已上报，待受理 reported, awaiting acceptance"),
    "accepted": ("open", "已受理 accepted"),
    "dispatched": ("open", "已派遣 dispatched to a handler"),
    "in_progress": ("open", "处置中 being handled"),
    "resolved": ("open", "已处置，待核查 handled, awaiting verification"),
    "verified": ("open", "已核查，待结案 verified, awaiting closure"),
    "returned": ("open", "返工 returned for rework"),
    "closed": ("closed", "已结案 closed"),
    "rejected": ("closed", "不予受理 rejected"),
    "duplicate": ("closed", "重复上报 duplicate of another request"),
}

_UNITS = {"working_hours": ("工作小时", "working hour"), "working_days": ("工作日", "working day")}


@dataclass(frozen=True)
class AttributeValue:
    key: str
    name: str


@dataclass(frozen=True)
class Attribute:
    """One attribute of a service definition (spec: GET Service Definition)."""

    code: str
    datatype: str  # string, number, datetime, text, singlevaluelist, multivaluelist
    required: bool
    description: str
    order: int
    datatype_description: str | None = None
    values: tuple[AttributeValue, ...] = ()
    max_length: int = 100


FLOOR = Attribute(
    code="floor",
    datatype="string",
    required=False,
    description="楼层 Floor where it is, if inside a building (e.g. 3, B1)",
    order=1,
    datatype_description="e.g. 3, 12, B1",
    max_length=20,
)
HAZARD_LEVEL = Attribute(
    code="hazard_level",
    datatype="singlevaluelist",
    required=False,
    description="危险程度 How dangerous it is right now",
    order=2,
    values=(
        AttributeValue("low", "低 low"),
        AttributeValue("medium", "中 medium"),
        AttributeValue("high", "高 high: people or property at immediate risk"),
    ),
)
# Attributes by category group: only hazards inside buildings have questions worth asking.
ATTRIBUTES_BY_GROUP: dict[str, tuple[Attribute, ...]] = {
    "安全隐患": (FLOOR, HAZARD_LEVEL),
    "消防隐患": (FLOOR, HAZARD_LEVEL),
}
_PRIORITY_ORDER = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class Service:
    """A category as an Open311 service."""

    code: str
    name: str
    group: str
    description: str
    keywords: str
    attributes: tuple[Attribute, ...]
    category: Category


def _service(category: Category) -> Service:
    notice = time_limit_notice(category, priority=category.default_priority)
    return Service(
        code=category.code,
        name=category.name,
        group=category.group_name,
        description=f"{category.group_name}：{category.name}。{notice}",
        keywords=", ".join([category.name, category.group_name, *category.code.split("_")]),
        attributes=ATTRIBUTES_BY_GROUP.get(category.group_name, ()),
        category=category,
    )


def list_services(session: Session) -> list[Service]:
    """The active categories as Open311 services."""
    return [_service(category) for category in list_categories(session)]


def get_service(session: Session, *, code: str) -> Service:
    """One active service, or NotFound(unknown_service_code)."""
    category = None
    if "\x00" not in code:  # not text PostgreSQL can compare; no such code anyway
        category = session.scalar(
            select(Category).where(Category.code == code, Category.is_active.is_(True))
        )
    if category is None:
        raise NotFound(f"service_code {code!r} was not found.", code="unknown_service_code")
    return _service(category)


def services_changeset(session: Session) -> datetime | None:
    """When the service list last changed (the newest category or change; None without any)."""
    return session.scalar(select(func.max(func.greatest(Category.created_at, Category.updated_at))))


def time_limit_notice(category: Category, *, priority: str) -> str:
    """The category's accept and handle limits, in Chinese and English."""
    parts_zh, parts_en = [], []
    for stage, zh, en in (("accept", "受理", "accepted"), ("handle", "处置", "handled")):
        limit = stage_limit(category, priority=priority, stage=stage)
        if limit and limit.get("unit") in _UNITS:
            amount = limit["amount"]
            unit_zh, unit_en = _UNITS[limit["unit"]]
            parts_zh.append(f"{amount}{unit_zh}内{zh}")
            parts_en.append(f"{en} within {amount} {unit_en}{'' if amount == 1 else 's'}")
    if not parts_zh:
        return ""
    return f"{'，'.join(parts_zh)}（{', '.join(parts_en)}）。"


# --------------------------------------------------------------------------- POST requests


@dataclass(frozen=True)
class RequestSubmission:
    """A parsed POST Service Request (empty parameters are None, as the spec says)."""

    service_code: str
    location: InputPoint | None = None
    lat: float | None = None
    long: float | None = None
    jurisdiction_id: str | None = None
    address_string: str | None = None
    address_id: str | None = None
    email: str | None = None
    device_id: str | None = None
    account_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    description: str | None = None
    media_url: str | None = None
    # attribute[code]=value → {code: (value,)}; attribute[code][]=v1&… → {code: (v1, …)}
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)


def submit_request(
    session: Session,
    *,
    client: IntegrationClient,
    reporter: User,
    submission: RequestSubmission,
    settings: IntakeSettings,
    now: datetime | None = None,
) -> IntakeResult:
    """Create the case of a POST Service Request (or return the one an identical post made)."""
    if (
        submission.jurisdiction_id
        and client.jurisdiction_id
        and submission.jurisdiction_id != client.jurisdiction_id
    ):
        raise NotFound(
            f"jurisdiction_id {submission.jurisdiction_id!r} was not found.",
            code="unknown_jurisdiction",
        )
    service = get_service(session, code=submission.service_code)
    attributes = _checked_attributes(service, submission.attributes)
    if submission.location is None:
        if submission.address_string or submission.address_id:
            raise ValidationFailed(
                "This server cannot locate address_string/address_id (no geocoder is"
                " configured): send lat and long (WGS-84).",
                code="geocoder_unavailable",
            )
        raise ValidationFailed(
            "A location is required: lat and long (WGS-84).", code="location_required"
        )
    now = now or datetime.now(UTC)
    priority = _priority(service.category.default_priority, attributes)
    report = NewIncident(
        client_id=derive_client_id(submission, day=now.astimezone(settings.calendar.tz).date()),
        category=service.code,
        description=submission.description or "",
        location=submission.location,
        priority=priority,
        source=SOURCE,
        external=_external(client, submission, attributes),
    )
    return submit_incident(session, reporter=reporter, report=report, settings=settings)


def derive_client_id(submission: RequestSubmission, *, day: date) -> str:
    """The idempotency key of a submission: sha256 of all it carries and the local day."""
    content = {
        name: getattr(submission, name)
        for name in (
            "service_code",
            "address_string",
            "address_id",
            "email",
            "device_id",
            "account_id",
            "first_name",
            "last_name",
            "phone",
            "description",
            "media_url",
        )
    }
    content["point"] = [submission.lat, submission.long]
    content["attributes"] = {code: list(v) for code, v in sorted(submission.attributes.items())}
    content["day"] = day.isoformat()
    raw = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()  # 64 hex characters: client_id's length


def _checked_attributes(service: Service, given: dict[str, tuple[str, ...]]) -> dict:
    defined = {a.code: a for a in service.attributes}
    problems = []
    answers: dict[str, str | list[str]] = {}
    for code, values in sorted(given.items()):
        attribute = defined.get(code)
        if attribute is None:
            known = ", ".join(sorted(defined)) or "none"
            problems.append(
                f"attribute[{code}] is not defined for service {service.code!r} (defined: {known})."
            )
            continue
        values = tuple(v for v in values if v != "")
        if not values:
            continue
        if attribute.datatype != "multivaluelist" and len(values) > 1:
            problems.append(f"attribute[{code}] takes one value.")
            continue
        keys = {v.key for v in attribute.values}
        bad = [v for v in values if keys and v not in keys]
        if bad:
            problems.append(
                f"attribute[{code}] must be one of {', '.join(sorted(keys))}, not {bad[0]!r}."
            )
            continue
        if any(len(v) > attribute.max_length for v in values):
            problems.append(f"attribute[{code}] has at most {attribute.max_length} characters.")
            continue
        answers[code] = list(values) if attribute.datatype == "multivaluelist" else values[0]
    for attribute in service.attributes:
        if attribute.required and attribute.code not in answers:
            problems.append(f"attribute[{attribute.code}] is required for this service.")
    if problems:
        raise ValidationFailed(
            " ".join(problems), code="invalid_attribute", errors={"attribute": problems}
        )
    return answers


def _priority(default: str, attributes: dict) -> str:
    if attributes.get("hazard_level") == "high":
        return max(default, "high", key=_PRIORITY_ORDER.index)
    return default


def _external(client: IntegrationClient, submission: RequestSubmission, attributes: dict) -> dict:
    """What incident.external keeps: the channel's own data (contact details stay private)."""
    contact = {
        name: getattr(submission, name)
        for name in ("email", "phone", "first_name", "last_name")
        if getattr(submission, name)
    }
    external = {
        "channel": SOURCE,
        "client_id": client.id,
        "client": client.name,
        "jurisdiction_id": submission.jurisdiction_id,
        "address_string": submission.address_string,
        "address_id": submission.address_id,
        "media_url": submission.media_url,
        "device_id": submission.device_id,
        "account_id": submission.account_id,
        "contact": contact or None,
    }
    return {k: v for k, v in external.items() if v is not None} | {"attributes": attributes}


# --------------------------------------------------------------------------- GET requests


@dataclass(frozen=True)
class RequestQuery:
    """GET Service Requests filters (None: not given)."""

    service_request_ids: tuple[int, ...] | None = None
    service_codes: tuple[str, ...] = ()
    start: datetime | date | None = None
    end: datetime | date | None = None
    statuses: tuple[str, ...] = ()  # "open", "closed"


def _request_select() -> Select:
    town, district = aliased(Area), aliased(Area)
    microgrid, grid, community = aliased(Area), aliased(Area), aliased(Area)
    return (
        select(
            Incident.id,
            Incident.status,
            Incident.priority,
            Incident.description,
            Incident.external,
            Incident.created_at,
            Incident.updated_at,
            Incident.closed_at,
            Incident.deadline,
            func.ST_X(Incident.location).label("lon"),
            func.ST_Y(Incident.location).label("lat"),
            Category,
            town.name.label("town_name"),
            district.name.label("district_name"),
            microgrid.name.label("microgrid_name"),
            grid.name.label("grid_name"),
            community.name.label("community_name"),
        )
        .join(Category, Category.id == Incident.category_id)
        .outerjoin(town, town.id == Incident.town_id)
        .outerjoin(district, district.id == Incident.district_id)
        .outerjoin(microgrid, microgrid.id == Incident.microgrid_id)
        .outerjoin(grid, grid.id == Incident.grid_id)
        .outerjoin(community, community.id == Incident.community_id)
        # The public read policy (module docstring): only requests made through Open311.
        .where(Incident.source == SOURCE)
    )


def time_range(
    start: datetime | date | None, end: datetime | date | None, *, now: datetime, tz: tzinfo
) -> tuple[datetime, datetime]:
    """[from, until) of a GET Service Requests query, with the spec's 90-day rules."""
    lower = _instant(start, tz) if start is not None else None
    # end_date is inclusive: a day means the whole day, an instant that instant.
    upper = None
    if isinstance(end, datetime):
        upper = end + timedelta(microseconds=1)
    elif end is not None:
        upper = _instant(end + timedelta(days=1), tz)
    if lower is None and upper is None:
        upper = now + timedelta(microseconds=1)
    if lower is None:
        lower = upper - MAX_SPAN
    if upper is None:
        upper = lower + MAX_SPAN
    if upper <= lower:
        raise ValidationFailed("end_date must not be before start_date.", code="invalid_range")
    if upper - lower > MAX_SPAN + timedelta(microseconds=1):
        raise ValidationFailed(
            "start_date and end_date may not span more than 90 days.", code="range_too_long"
        )
    return lower, upper


def _instant(value: datetime | date, tz: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=tz)


@dataclass(frozen=True)
class ServiceRequestView:
    """One case as an Open311 service request (only public fields)."""

    id: int
    status: str
    status_notes: str
    service_name: str
    service_code: str
    description: str
    agency_responsible: str | None
    service_notice: str
    requested: datetime
    updated: datetime
    expected: datetime | None
    address: str | None
    address_id: str | None
    lat: float
    long: float
    media_url: str | None


def _view(row) -> ServiceRequestView:
    category: Category = row.Category
    external = row.external or {}
    status, notes = STATUS_MAP[row.status]
    areas = [
        row.microgrid_name,
        row.grid_name,
        row.community_name,
        row.town_name,
        row.district_name,
    ]
    # Spec: "from most specific to most general geographic unit".
    address = external.get("address_string") or ", ".join(a for a in areas if a) or None
    return ServiceRequestView(
        id=row.id,
        status=status,
        status_notes=notes,
        service_name=category.name,
        service_code=category.code,
        description=row.description,
        agency_responsible=row.town_name or row.district_name,
        service_notice=time_limit_notice(category, priority=row.priority),
        requested=row.created_at,
        updated=(row.closed_at or row.updated_at) if status == "closed" else row.updated_at,
        expected=row.deadline if status == "open" else None,
        address=address,
        address_id=external.get("address_id"),
        lat=row.lat,
        long=row.lon,
        media_url=external.get("media_url"),
    )


def list_requests(
    session: Session, *, query: RequestQuery, now: datetime, tz: tzinfo
) -> list[ServiceRequestView]:
    """Public service requests matching the spec's filters, newest first, at most 1000."""
    statement = _request_select()
    if query.service_request_ids is not None:  # "This overrides all other arguments."
        statement = statement.where(Incident.id.in_(query.service_request_ids))
    else:
        lower, upper = time_range(query.start, query.end, now=now, tz=tz)
        statement = statement.where(Incident.created_at >= lower, Incident.created_at < upper)
        if query.service_codes:
            statement = statement.where(Category.code.in_(query.service_codes))
        if set(query.statuses) == {"open"}:
            statement = statement.where(open_condition())
        elif set(query.statuses) == {"closed"}:
            statement = statement.where(~open_condition())
    rows = session.execute(
        statement.order_by(Incident.created_at.desc(), Incident.id.desc()).limit(MAX_REQUESTS)
    ).all()
    return [_view(row) for row in rows]


def get_request(session: Session, *, request_id: int) -> ServiceRequestView:
    """One public service request, or NotFound (phone reports are never found here)."""
    row = session.execute(_request_select().where(Incident.id == request_id)).first()
    if row is None:
        raise NotFound(f"service_request_id {request_id} was not found.", code="request_not_found")
    return _view(row)
