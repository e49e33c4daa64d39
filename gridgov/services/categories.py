"""Incident categories as phones and maps list them."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from gridgov.models import Category


def list_categories(session: Session) -> list[Category]:
    """Active categories, grouped then by code."""
    return list(
        session.scalars(
            select(Category)
            .where(Category.is_active.is_(True))
            .order_by(Category.group_name, Category.code)
        )
    )
