"""Incident categories: the list phones and maps show, and their administration.

A category's time limits are data (the `time_limits` JSON, checked by the API's schema): a
new limit needs no code. A changed limit applies to stages entered from then on; a deadline
already running keeps the limit it started with.
"""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gridgov.errors import CategoryNotFound, Conflict
from gridgov.models import Category, User
from gridgov.services import audit

# Fields an update may change, as the model names them.
EDITABLE = ("name", "group_name", "default_priority", "time_limits", "is_active")


def list_categories(session: Session) -> list[Category]:
    """Active categories, grouped then by code."""
    return list(
        session.scalars(
            select(Category)
            .where(Category.is_active.is_(True))
            .order_by(Category.group_name, Category.code)
        )
    )


def create_category(session: Session, *, actor: User, code: str, **values) -> Category:
    """Add a category (admin); codes are unique and never reused."""
    exists = session.scalar(select(Category.id).where(Category.code == code))
    if exists is not None:
        raise Conflict(f"Category {code!r} exists.", code="category_exists")
    category = Category(code=code, **values)
    session.add(category)
    session.flush()
    audit.record(session, actor=actor, action="category_create", target=code, data=_audited(values))
    return category


def update_category(session: Session, *, actor: User, code: str, **changes) -> Category:
    """Change a category's names, priority, time limits or active flag (admin)."""
    category = session.scalar(select(Category).where(Category.code == code).with_for_update())
    if category is None:
        raise CategoryNotFound(f"No category {code!r}.")
    before = {name: getattr(category, name) for name in changes}
    for name, value in changes.items():
        setattr(category, name, value)
    category.updated_at = func.now()
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="category_update",
        target=code,
        data={"before": _audited(before), "after": _audited(changes)},
    )
    return category


def _audited(values: dict) -> dict:
    return {name: values[name] for name in EDITABLE if name in values}
