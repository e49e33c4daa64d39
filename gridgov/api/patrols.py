"""Patrol endpoints: /api/v1/patrols (start, track upload, finish, read, list)."""

import json
from datetime import UTC, datetime

from gridgov.api.input import Blueprint
from gridgov.api.paging import decode_cursor, encode_cursor, invalid_cursor, page_limit
from gridgov.api.security import current_user, roles_allowed
from gridgov.extensions import db
from gridgov.schemas.patrols import (
    PatrolFinishSchema,
    PatrolListQuerySchema,
    PatrolMapQuerySchema,
    PatrolMapSchema,
    PatrolPageSchema,
    PatrolStartedSchema,
    PatrolStartSchema,
    PatrolSummarySchema,
    TrackResultSchema,
    TrackUploadSchema,
)
from gridgov.services import patrol_map as patrol_map_service
from gridgov.services import patrols as patrol_service
from gridgov.services.calendar import CHINA_TZ
from gridgov.settings import settings

blp = Blueprint(
    "patrols", __name__, url_prefix="/api/v1/patrols", description="Workers' patrols and tracks."
)

NOT_FOUND_DOC = "No such patrol you may read (`patrol_not_found`)."
TOO_OLD_DOC = "more than GRIDGOV_PATROL_MAX_BACKDATE_HOURS (default 24) hours ago"


@blp.route("", methods=["POST"])
@roles_allowed("worker", "supervisor")
@blp.arguments(PatrolStartSchema)
@blp.response(201, PatrolStartedSchema)
@blp.alt_response(200, schema=PatrolStartedSchema, description="A replay of a recorded start.")
@blp.alt_response(403, description="Admins do not patrol (`forbidden`).")
@blp.alt_response(409, description="Same client_id, other started_at (`client_id_conflict`).")
@blp.alt_response(
    422,
    description=f"`started_at_too_old` ({TOO_OLD_DOC}; a replay of a recorded start is"
    " still 200) or `started_at_in_future`.",
)
def start_patrol(args):
    """Start a patrol; replaying the same client_id and started_at returns it with 200."""
    user = current_user()
    result = patrol_service.start_patrol(
        db.session, worker_id=user.id, max_backdate=_max_backdate(), **args
    )
    db.session.commit()
    return result.patrol, 201 if result.created else 200


@blp.route("/<id64:patrol_id>/track", methods=["POST"])
@blp.arguments(TrackUploadSchema)
@blp.response(200, TrackResultSchema)
@blp.alt_response(404, description=NOT_FOUND_DOC)
@blp.alt_response(409, description="The patrol is finished (`patrol_finished`).")
@blp.alt_response(
    422,
    description="A bad point (errors name its index), `too_many_points`, or"
    f" `point_time_out_of_range`: before the start, in the future, or new and {TOO_OLD_DOC}.",
)
def upload_track(args, patrol_id):
    """Add GPS fixes to one's open patrol; resending a fix (same time) adds nothing."""
    result = patrol_service.add_track_points(
        db.session,
        patrol_id=patrol_id,
        worker_id=current_user().id,
        fixes=args["points"],
        max_backdate=_max_backdate(),
    )
    db.session.commit()
    return result


@blp.route("/<id64:patrol_id>/finish", methods=["POST"])
@blp.arguments(PatrolFinishSchema)
@blp.response(200, PatrolSummarySchema)
@blp.alt_response(404, description=NOT_FOUND_DOC)
@blp.alt_response(
    422,
    description="`finished_before_start`, `finished_at_in_future`, or `finished_at_too_old`"
    f" ({TOO_OLD_DOC}).",
)
def finish_patrol(args, patrol_id):
    """Finish one's patrol: length and micro-grid coverage; finishing again returns the same."""
    summary = patrol_service.finish_patrol(
        db.session,
        patrol_id=patrol_id,
        worker_id=current_user().id,
        finished_at=args.get("finished_at"),
        max_backdate=_max_backdate(),
    )
    db.session.commit()
    return summary


@blp.route("/<id64:patrol_id>")
@blp.response(200, PatrolSummarySchema)
@blp.alt_response(404, description=NOT_FOUND_DOC)
def get_patrol(patrol_id):
    """One patrol: one's own, any for an admin, those walked in one's areas for a supervisor."""
    return patrol_service.get_patrol(db.session, patrol_id=patrol_id, viewer=current_user())


@blp.route("")
@blp.arguments(PatrolListQuerySchema, location="query")
@blp.response(200, PatrolPageSchema)
def list_patrols(args):
    """The caller's patrols, or with `user` those of that user the caller may read."""
    limit = page_limit(args)
    after = _decode_position(args["cursor"]) if "cursor" in args else None
    page = patrol_service.list_patrols(
        db.session,
        viewer=current_user(),
        worker_id=args.get("user"),
        after=after,
        limit=limit,
    )
    next_cursor = None
    if page.has_more:
        last = page.items[-1]
        next_cursor = encode_cursor({"started_at": last.started_at.isoformat(), "id": last.id})
    return {"items": page.items, "next_cursor": next_cursor}


@blp.route("/map")
@blp.arguments(PatrolMapQuerySchema, location="query")
@blp.response(200, PatrolMapSchema)
@blp.alt_response(403, description="`forbidden`: the area is outside your scope.")
@blp.alt_response(404, description="`area_not_found`.")
def patrol_map(args):
    """The tracks walked in an area on a day, and its micro-grids not patrolled that week."""
    day = args.get("day") or datetime.now(UTC).astimezone(CHINA_TZ).date()
    result = patrol_map_service.patrol_map(
        db.session,
        viewer=current_user(),
        area_code=args["area"],
        day=day,
        max_backdate=_max_backdate(),
    )
    tracks = [
        {
            "type": "Feature",
            "geometry": json.loads(track.geometry_json),
            "properties": {
                "patrol_id": track.patrol_id,
                "worker": track.worker,
                "started_at": track.started_at.isoformat(),
                "finished_at": track.finished_at.isoformat() if track.finished_at else None,
                "length_m": track.length_m,
                "points": track.points,
            },
        }
        for track in result.tracks
    ]
    unpatrolled = [
        {
            "type": "Feature",
            "geometry": json.loads(grid.geometry_json),
            "properties": {"code": grid.code, "name": grid.name},
        }
        for grid in result.unpatrolled
    ]
    return {
        "day": day,
        "week": {"from": result.week.first_day.isoformat(), "to": result.week.last_day.isoformat()},
        "microgrids": result.microgrids,
        "tracks": {"type": "FeatureCollection", "features": tracks},
        "unpatrolled": {"type": "FeatureCollection", "features": unpatrolled},
    }


def _max_backdate():
    return settings().patrol_max_backdate


def _decode_position(cursor: str) -> tuple[datetime, int]:
    position = decode_cursor(cursor, fields={"started_at": str, "id": int})
    try:
        started_at = datetime.fromisoformat(position["started_at"])
    except ValueError as exc:
        raise invalid_cursor() from exc
    if started_at.tzinfo is None:
        raise invalid_cursor()
    return started_at, position["id"]
