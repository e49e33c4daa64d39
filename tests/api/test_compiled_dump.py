"""gridgov/schemas/compiled.py: the compiled dumps return exactly what the schemas dump."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from marshmallow import Schema, fields, post_dump

from gridgov.api.areas import _dump_page as dump_area_page
from gridgov.api.areas import _dump_properties
from gridgov.api.incidents import (
    _dump_incident,
    _dump_page,
    _dump_summaries,
    _dump_tasks,
    incident_answer,
)
from gridgov.models import Incident, User
from gridgov.schemas import incidents as schemas
from gridgov.schemas.areas import AreaPageSchema, AreaSummarySchema
from gridgov.schemas.common import Inline
from gridgov.schemas.compiled import compile_dump
from gridgov.services import incident_queries, incidents
from gridgov.services.areas import AreaView, list_areas
from tests.factories import make_incident

MICROGRIDS = ("330212001001001001", "330212001001001002", None)


def same(compiled, expected) -> None:
    """Equal values, and the same JSON text (key order and number types included)."""
    assert compiled == expected
    assert json.dumps(compiled, ensure_ascii=False) == json.dumps(expected, ensure_ascii=False)


@pytest.fixture
def rows(db_session, demo_users):
    """Real list rows of varied incidents: routed, unrouted, overdue, held, without deadline."""
    worker = demo_users["grid_worker"]
    now = datetime.now(UTC)
    for i, (microgrid, status) in enumerate(
        zip(MICROGRIDS * 3, ["reported", "dispatched", "closed"] * 3, strict=True)
    ):
        make_incident(
            db_session,
            reporter=worker.id,
            microgrid_code=microgrid,
            status=status,
            description=f'第{i}号 <b>&\u2028 "quoted"',
            deadline=None if i % 4 == 0 else now + timedelta(hours=i - 4),
            handler_id=worker.id if status == "dispatched" else None,
        )
    admin = db_session.get(User, demo_users["admin"].id)
    return incident_queries.list_incidents(
        db_session, user=admin, filters=incident_queries.IncidentFilters(), limit=500
    ).items


def test_real_rows_compile_to_the_schema_dump(rows):
    assert len(rows) >= 9
    same(_dump_summaries(rows), schemas.IncidentSummarySchema(many=True).dump(rows))
    page = {"items": rows, "next_cursor": "abc"}
    same(_dump_page(page), schemas.IncidentPageSchema().dump(page))
    same(_dump_tasks({"items": rows}), schemas.TasksSchema().dump({"items": rows}))


def test_incident_answers_compile_to_the_schema_dump(rows, db_session, demo_users):
    """Every incident of the fixture (routed or not, held or not), with and without duplicates."""
    for row in rows:
        incident = db_session.get(Incident, row.id)
        view = incidents.incident_view(db_session, incident=incident)
        duplicates = [incidents.PossibleDuplicate(row.id, "reported", 12.5, row.reported_at)]
        # A supervisor (allowed actions with required fields) and a worker (fewer or none).
        viewers = [db_session.get(User, demo_users[name].id) for name in ("admin", "grid_worker")]
        for answer in (
            *(incident_answer(view, viewer) for viewer in viewers),
            incident_answer(view, viewers[0], possible_duplicates=[]),
            incident_answer(view, viewers[-1], possible_duplicates=duplicates),
        ):
            same(_dump_incident(answer), schemas.IncidentSchema().dump(answer))


def test_awkward_values_compile_to_the_schema_dump(rows):
    """Values of other types than the rows carry, None, and keys that are not there."""
    row = rows[0]
    odd = [
        replace(row, lon=121, lat=Decimal("29.5"), town=None, grid=None, microgrid=None),
        replace(row, id=True, version=3.0, handler_id=None, deadline=None),
        replace(row, reported_at=datetime(2024, 2, 29, 23, 59, 59, 999999)),
        replace(row, deadline=datetime(1900, 1, 1, tzinfo=timezone(timedelta(hours=14)))),
        replace(row, category=b"bytes", description="", category_name="\x00"),
    ]
    as_dicts = [{"id": 7, "status": "reported", "lon": 1, "extra": "ignored"}, {}]
    for items in (odd, as_dicts, []):
        same(_dump_summaries(items), schemas.IncidentSummarySchema(many=True).dump(items))
        for page in ({"items": items}, {"items": items, "next_cursor": None}):
            same(_dump_page(page), schemas.IncidentPageSchema().dump(page))


class _Tree(Schema):
    name = fields.String(data_key="label", attribute="node.name")
    flag = fields.Boolean(allow_none=True)
    when = fields.DateTime()
    data = fields.Dict()
    raw = fields.Raw()
    numbers = fields.List(fields.Float())
    children = fields.List(fields.Nested(lambda: _Leaf()))
    leaf = fields.Nested(lambda: _Leaf(), allow_none=True)
    leaves = fields.Nested(lambda: _Leaf(), many=True)
    inline = Inline(lambda: _Leaf())


class _Leaf(Schema):
    name = fields.String()
    count = fields.Integer(allow_none=True)


def test_every_compiled_field_kind_dumps_like_marshmallow():
    values = [
        {},
        {
            "node": {"name": "根"},
            "flag": 0,
            "when": datetime(2026, 1, 1, 8, tzinfo=UTC),
            "data": {"a": [1]},
            "raw": {"x": None},
            "numbers": [1, None, Decimal("2.5")],
            "children": [{"name": 3, "count": "4"}, None],
            "leaf": None,
            "leaves": [{}, {"count": 1.9}],
            "name": "inline",
            "count": None,
        },
        {"node": None, "numbers": None, "children": None, "leaves": None, "leaf": {"x": 1}},
    ]
    compiled = compile_dump(_Tree())
    for value in values:
        same(compiled(value), _Tree().dump(value))
    same(compile_dump(_Tree(many=True))(values), _Tree(many=True).dump(values))


class _Hooked(Schema):
    name = fields.String()

    @post_dump
    def shout(self, data, **kwargs):
        return {k: v.upper() for k, v in data.items()}


@pytest.mark.parametrize(
    "schema",
    [
        _Hooked(),
        Schema.from_dict({"x": fields.Function(len)})(),
        Schema.from_dict({"x": fields.DateTime(format="rfc")})(),
        Schema.from_dict({"x": fields.Integer(as_string=True)})(),
        Schema.from_dict({"x": fields.String(dump_default="-")})(),
        Schema.from_dict({"x": fields.Dict(values=fields.Integer())})(),
        Schema.from_dict({"x": fields.Nested(_Hooked)})(),
    ],
)
def test_what_it_cannot_compile_is_refused(schema):
    """Refused when compiling (at import), never dumped differently."""
    with pytest.raises(TypeError):
        compile_dump(schema)


def test_area_pages_compile_to_the_schema_dump(db_session):
    areas = list_areas(db_session, limit=500).items
    areas += [AreaView(code=1, name="", level="grid", parent=None, geometry_json="{}")]
    for area in areas:
        same(_dump_properties(area), AreaSummarySchema().dump(area))
    page = {"items": areas, "next_cursor": None}
    same(dump_area_page(page), AreaPageSchema().dump(page))
