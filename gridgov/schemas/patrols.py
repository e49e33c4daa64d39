"""Schemas of the patrol endpoints: start, track upload, finish, read."""

from marshmallow import Schema, fields, post_load, pre_load, validate

from gridgov.schemas.areas import CODE_PATTERN
from gridgov.schemas.common import INT32_MAX, Day, Instant, PageQuerySchema
from gridgov.schemas.location import LocationSchema
from gridgov.services.patrols import MAX_POINTS_PER_UPLOAD, TrackFix, too_many_points

CLIENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# The window itself is checked by the service (a replay of a recorded start may be older).
NOT_OLDER = "; at most GRIDGOV_PATROL_MAX_BACKDATE_HOURS (default 24) hours ago"


class PatrolStartSchema(Schema):
    client_id = fields.String(
        required=True,
        validate=validate.Regexp(CLIENT_ID_PATTERN, error="1-64 characters of A-Z a-z 0-9 _ -."),
        metadata={"description": "The phone's id for this patrol: a replay returns it again."},
    )
    started_at = Instant(f"When the walk began{NOT_OLDER}", required=True)


class TrackPointSchema(LocationSchema):
    """A located point (LocationSchema's checks and CRS conversion) with its GPS time."""

    t = Instant(f"Time of the fix{NOT_OLDER} unless already stored", required=True)

    @post_load
    def to_point(self, data, **kwargs) -> TrackFix:
        point = super().to_point(data, **kwargs)
        return TrackFix(
            t=data["t"],
            lon=point.lon,
            lat=point.lat,
            input_lon=point.input_lon,
            input_lat=point.input_lat,
            input_crs=point.crs,
            accuracy_m=point.accuracy_m,
        )


class TrackUploadSchema(Schema):
    points = fields.List(
        fields.Nested(TrackPointSchema),
        required=True,
        metadata={
            "description": f"At most {MAX_POINTS_PER_UPLOAD} fixes, in any order; a fix whose "
            "time the patrol already has is counted as a duplicate and not stored again."
        },
    )

    @pre_load
    def limit_points(self, data, **kwargs):
        # Before the points are parsed one by one: a too-large batch is refused as a whole.
        points = data.get("points") if isinstance(data, dict) else None
        if isinstance(points, list) and len(points) > MAX_POINTS_PER_UPLOAD:
            raise too_many_points(len(points))
        return data


class PatrolFinishSchema(Schema):
    finished_at = Instant(f"When the walk ended; default now{NOT_OLDER}")


class PatrolStartedSchema(Schema):
    id = fields.Integer(required=True)
    client_id = fields.String(required=True)
    started_at = fields.DateTime(required=True)
    finished_at = fields.DateTime(allow_none=True)
    points = fields.Integer(required=True, metadata={"description": "Track points stored."})


class PatrolSummarySchema(PatrolStartedSchema):
    length_m = fields.Float(
        allow_none=True, metadata={"description": "Geodesic length of the track in metres."}
    )
    microgrids_assigned = fields.Integer(
        allow_none=True,
        metadata={"description": "Current micro-grids under the worker's assignments."},
    )
    microgrids_visited = fields.Integer(
        allow_none=True, metadata={"description": "How many of those the track touches."}
    )
    coverage = fields.Float(
        allow_none=True, metadata={"description": "visited / assigned; null when none assigned."}
    )


class TrackResultSchema(Schema):
    accepted = fields.Integer(required=True, metadata={"description": "New points stored."})
    duplicates = fields.Integer(
        required=True, metadata={"description": "Points whose time was already stored."}
    )
    points = fields.Integer(required=True, metadata={"description": "The patrol's points now."})


class PatrolListQuerySchema(PageQuerySchema):
    user = fields.Integer(
        validate=validate.Range(min=1, max=INT32_MAX),
        metadata={
            "description": "This user's patrols (default: yours): any for an admin; for a"
            " supervisor, those started while the user was on duty in the supervisor's areas."
        },
    )


class PatrolPageSchema(Schema):
    items = fields.List(fields.Nested(PatrolSummarySchema), required=True)
    next_cursor = fields.String(allow_none=True)


class PatrolMapQuerySchema(Schema):
    area = fields.String(
        required=True,
        validate=validate.Regexp(CODE_PATTERN),
        metadata={"description": "Code of an area in your scope."},
    )
    day = Day(metadata={"description": "A China date (YYYY-MM-DD); default: today."})


class PatrolMapSchema(Schema):
    day = fields.Date(required=True)
    week = fields.Dict(
        required=True,
        metadata={"description": "`from` (Monday) and `to` (the day): the coverage's days."},
    )
    microgrids = fields.Integer(required=True, metadata={"description": "Micro-grids in the area."})
    tracks = fields.Dict(
        required=True,
        metadata={
            "description": "FeatureCollection: the line of each patrol started that day that you"
            " may read and that touched the area; properties patrol_id, worker, started_at,"
            " finished_at, length_m, points."
        },
    )
    unpatrolled = fields.Dict(
        required=True,
        metadata={
            "description": "FeatureCollection: the area's micro-grids that no in-time track of a"
            " finished patrol started that week (up to the day) touched, as patrol_coverage"
            " counts them; properties code, name."
        },
    )
