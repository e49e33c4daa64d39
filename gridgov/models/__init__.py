"""SQLAlchemy models; importing this package registers every table on Base.metadata."""

from gridgov.models.area import AREA_LEVELS, Area, AreaRevision, BoundaryChangeset
from gridgov.models.base import Base
from gridgov.models.category import PRIORITIES, Category
from gridgov.models.user import DUTIES, ROLES, Assignment, User

__all__ = [
    "AREA_LEVELS",
    "DUTIES",
    "PRIORITIES",
    "ROLES",
    "Area",
    "AreaRevision",
    "Assignment",
    "Base",
    "BoundaryChangeset",
    "Category",
    "User",
]
