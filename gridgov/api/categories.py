"""GET /api/v1/categories: what a phone shows in its report form."""

from gridgov.api.input import Blueprint
from gridgov.extensions import db
from gridgov.schemas.categories import CategoryListSchema
from gridgov.services.categories import list_categories

blp = Blueprint("categories", __name__, url_prefix="/api/v1", description="Categories.")


@blp.route("/categories")
@blp.response(200, CategoryListSchema)
def categories():
    """Active incident categories with their default priority and time limits."""
    return {"items": list_categories(db.session)}
