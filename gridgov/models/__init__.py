"""SQLAlchemy models; importing this package registers every table on Base.metadata."""

from gridgov.models.area import AREA_LEVELS, Area, AreaRevision, BoundaryChangeset
from gridgov.models.audit import AuditEvent, IntegrationClient, RefreshToken
from gridgov.models.base import Base
from gridgov.models.category import PRIORITIES, Category
from gridgov.models.incident import (
    HANDLING_LEVELS,
    INCIDENT_AREA_COLUMNS,
    INPUT_CRS,
    ROUTING_METHODS,
    STATUSES,
    TERMINAL_STATUSES,
    Incident,
    IncidentEvent,
)
from gridgov.models.notification import (
    DEVICE_KINDS,
    NOTIFICATION_KINDS,
    Delivery,
    Device,
    Notification,
)
from gridgov.models.patrol import Patrol, TrackPoint
from gridgov.models.photo import Photo
from gridgov.models.user import DUTIES, ROLES, Assignment, User

__all__ = [
    "AREA_LEVELS",
    "DEVICE_KINDS",
    "DUTIES",
    "HANDLING_LEVELS",
    "INCIDENT_AREA_COLUMNS",
    "INPUT_CRS",
    "NOTIFICATION_KINDS",
    "PRIORITIES",
    "ROLES",
    "ROUTING_METHODS",
    "STATUSES",
    "TERMINAL_STATUSES",
    "Area",
    "AreaRevision",
    "Assignment",
    "AuditEvent",
    "Base",
    "BoundaryChangeset",
    "Category",
    "Delivery",
    "Device",
    "Incident",
    "IncidentEvent",
    "IntegrationClient",
    "Notification",
    "Patrol",
    "Photo",
    "RefreshToken",
    "TrackPoint",
    "User",
]
