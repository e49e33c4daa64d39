"""GET /api/v1/audit: the audit log (admin)."""

from gridgov.api.input import Blueprint
from gridgov.api.paging import encode_cursor, page_limit, page_position
from gridgov.api.security import roles_allowed
from gridgov.extensions import db
from gridgov.schemas.audit import AuditPageSchema, AuditQuerySchema
from gridgov.services import audit

blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="Audit log.")


@blp.route("/audit")
@roles_allowed("admin")
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditPageSchema)
def list_audit(args):
    """Logins, failed logins and admin actions, newest first (admins only)."""
    position = page_position(args, id=int)
    before = position["id"] if position else None
    events, has_more = audit.list_events(
        db.session,
        action=args.get("action"),
        actor_id=args.get("actor"),
        before_id=before,
        limit=page_limit(args),
    )
    next_cursor = encode_cursor({"id": events[-1].id}) if has_more else None
    return {"items": events, "next_cursor": next_cursor}
