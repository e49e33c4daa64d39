"""/api/v1/categories: what a phone shows in its report form; admins add and change them."""

from gridgov.api.input import Blueprint
from gridgov.api.security import current_user, roles_allowed
from gridgov.extensions import db
from gridgov.schemas.categories import (
    CategoryCreateSchema,
    CategoryListSchema,
    CategorySchema,
    CategoryUpdateSchema,
)
from gridgov.services import categories as category_service

blp = Blueprint("categories", __name__, url_prefix="/api/v1", description="Categories.")


@blp.route("/categories")
@blp.response(200, CategoryListSchema)
def categories():
    """Active incident categories with their default priority and time limits."""
    return {"items": category_service.list_categories(db.session)}


@blp.route("/categories", methods=["POST"])
@roles_allowed("admin")
@blp.arguments(CategoryCreateSchema)
@blp.response(201, CategorySchema)
@blp.alt_response(403, description="`forbidden`: admins only.")
@blp.alt_response(409, description="`category_exists`.")
def create_category(body):
    """Add a category (admin): code, names, default priority and time limits per stage."""
    category = category_service.create_category(db.session, actor=current_user(), **body)
    db.session.commit()
    return category


@blp.route("/categories/<code>", methods=["PATCH"])
@roles_allowed("admin")
@blp.arguments(CategoryUpdateSchema)
@blp.response(200, CategorySchema)
@blp.alt_response(403, description="`forbidden`: admins only.")
@blp.alt_response(404, description="`category_not_found`.")
def update_category(body, code):
    """Change a category (admin); new time limits apply to stages entered from now on."""
    category = category_service.update_category(db.session, actor=current_user(), code=code, **body)
    db.session.commit()
    return category
