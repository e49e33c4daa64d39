"""People and assignments: /api/v1/users, /api/v1/assignments, /api/v1/areas/{code}/workers.

Admins read and write everything; supervisors read the people and assignments of their
subtree; anyone may read themselves. Writes are the admin's and are logged as an audit line.
"""

from typing import Any

from gridgov.api.input import Blueprint
from gridgov.api.paging import encode_cursor, page_limit, page_position
from gridgov.api.security import current_user, roles_allowed
from gridgov.extensions import db
from gridgov.schemas.common import PageQuerySchema
from gridgov.schemas.people import (
    AssignmentCreateSchema,
    AssignmentListQuerySchema,
    AssignmentPageSchema,
    AssignmentSchema,
    OnDutyPageSchema,
    UserCreateSchema,
    UserDetailSchema,
    UserListQuerySchema,
    UserPageSchema,
    UserUpdateSchema,
)
from gridgov.services import accounts as account_service
from gridgov.services import assignments as assignment_service
from gridgov.services import duty as duty_service

blp = Blueprint(
    "people",
    __name__,
    url_prefix="/api/v1",
    description="People and assignments: users, their duties in areas, who is on duty.",
)


def _page(page: Any, key: Any) -> dict:
    next_cursor = encode_cursor(key(page.items[-1])) if page.has_more else None
    return {"items": page.items, "next_cursor": next_cursor}


# --- users ----------------------------------------------------------------------------------


@blp.route("/users")
@roles_allowed("admin", "supervisor")
@blp.arguments(UserListQuerySchema, location="query")
@blp.response(200, UserPageSchema)
@blp.alt_response(403, description="`forbidden`: workers may not list people.")
def list_users(args):
    """Users by id: all for an admin, those assigned now in a supervisor's subtree."""
    viewer = current_user()
    position = page_position(args, id=int)
    page = account_service.list_users(
        db.session,
        viewer=viewer,
        role=args.get("role"),
        area_code=args.get("area"),
        active=args.get("active"),
        q=args.get("q"),
        after_id=position["id"] if position else None,
        limit=page_limit(args),
    )
    return _page(page, lambda user: {"id": user.id})


@blp.route("/users", methods=["POST"])
@roles_allowed("admin")
@blp.arguments(UserCreateSchema)
@blp.response(201, UserDetailSchema)
@blp.alt_response(403, description="`forbidden`: admins only.")
@blp.alt_response(409, description="`username_taken` (regardless of case).")
@blp.alt_response(422, description="`weak_password`, `validation_failed`.")
def create_user(body):
    """Create a user (admin); the password is stored hashed and never returned."""
    actor = current_user()
    user = account_service.create_user(db.session, actor=actor, **body)
    db.session.commit()
    return user


@blp.route("/users/<id32:user_id>")
@blp.response(200, UserDetailSchema)
@blp.alt_response(404, description="`user_not_found` (also outside the caller's scope).")
def get_user(user_id):
    """One user with their assignment history, newest first."""
    return account_service.get_user(db.session, viewer=current_user(), user_id=user_id)


@blp.route("/users/<id32:user_id>", methods=["PATCH"])
@roles_allowed("admin")
@blp.arguments(UserUpdateSchema)
@blp.response(200, UserDetailSchema)
@blp.alt_response(403, description="`forbidden`: admins only.")
@blp.alt_response(404, description="`user_not_found`.")
@blp.alt_response(
    409,
    description="`cannot_deactivate_self`, `cannot_demote_self`, "
    "`role_conflicts_with_assignments`.",
)
def update_user(body, user_id):
    """Change a user (admin); `is_active: false` deactivates and ends open assignments."""
    actor = current_user()
    user = account_service.update_user(db.session, actor=actor, user_id=user_id, **body)
    db.session.commit()
    return user


# --- assignments ----------------------------------------------------------------------------


@blp.route("/assignments")
@roles_allowed("admin", "supervisor")
@blp.arguments(AssignmentListQuerySchema, location="query")
@blp.response(200, AssignmentPageSchema)
@blp.alt_response(403, description="`forbidden`: workers may not list assignments.")
def list_assignments(args):
    """Assignments by id, history included: all for an admin, a supervisor's subtree."""
    viewer = current_user()
    position = page_position(args, id=int)
    page = assignment_service.list_assignments(
        db.session,
        viewer=viewer,
        user_id=args.get("user"),
        area_code=args.get("area"),
        active=args.get("active"),
        after_id=position["id"] if position else None,
        limit=page_limit(args),
    )
    return _page(page, lambda assignment: {"id": assignment.id})


@blp.route("/assignments", methods=["POST"])
@roles_allowed("admin")
@blp.arguments(AssignmentCreateSchema)
@blp.response(201, AssignmentSchema)
@blp.alt_response(403, description="`forbidden`: admins only.")
@blp.alt_response(404, description="`user_not_found`, `area_not_found` (or retired).")
@blp.alt_response(409, description="`assignment_overlap`, `grid_head_taken`.")
@blp.alt_response(
    422,
    description="`assignment_role_mismatch`, `assignment_level_mismatch`, `user_inactive`, "
    "`invalid_period`.",
)
def create_assignment(body):
    """Assign a user to an area (admin)."""
    actor = current_user()
    assignment = assignment_service.create_assignment(
        db.session,
        actor=actor,
        user_id=body["user"],
        area_code=body["area"],
        duty=body["duty"],
        active_from=body.get("active_from"),
        active_to=body.get("active_to"),
    )
    db.session.commit()
    return assignment


@blp.route("/assignments/<id32:assignment_id>", methods=["DELETE"])
@roles_allowed("admin")
@blp.response(200, AssignmentSchema)
@blp.alt_response(403, description="`forbidden`: admins only.")
@blp.alt_response(404, description="`assignment_not_found`.")
def end_assignment(assignment_id):
    """End an assignment now (admin); the row stays as history, ending twice is a no-op."""
    actor = current_user()
    assignment = assignment_service.end_assignment(
        db.session, actor=actor, assignment_id=assignment_id
    )
    db.session.commit()
    return assignment


# --- who is on duty -------------------------------------------------------------------------


@blp.route("/areas/<string:code>/workers")
@blp.arguments(PageQuerySchema, location="query")
@blp.response(200, OnDutyPageSchema)
@blp.alt_response(403, description="`forbidden`: the area is outside the caller's scope.")
@blp.alt_response(404, description="`area_not_found`.")
def area_workers(args, code):
    """Who is on duty in an area now, grid heads first (a grid with its micro-grids, a micro-grid
    with its grid)."""
    position = page_position(args, rank=int, user=int, assignment=int)
    page = duty_service.workers_on_duty(
        db.session,
        viewer=current_user(),
        area_code=code,
        after=(position["rank"], position["user"], position["assignment"]) if position else None,
        limit=page_limit(args),
    )
    return _page(
        page,
        lambda duty: {"rank": duty.rank, "user": duty.user.id, "assignment": duty.assignment_id},
    )
