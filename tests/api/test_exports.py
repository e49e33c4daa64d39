"""GET /api/v1/exports/incidents.csv and .geojson: scope, filters, encoding, streaming."""

import csv
import io
import json

import pytest
from sqlalchemy import func, select, text

from gridgov.models import Area, Incident
from gridgov.services import exports as export_service
from tests.helpers import BULK_INCIDENTS_SQL

FIRST_TOWN_MICROGRID = "330212001001001001"
FIRST_TOWN = FIRST_TOWN_MICROGRID[:9]
CSV_URL = "/api/v1/exports/incidents.csv"
GEOJSON_URL = "/api/v1/exports/incidents.geojson"
DESCRIPTION = '楼道堆放杂物，"纸箱"和旧家具,堵住安全出口'


@pytest.fixture
def bulk(db_session, demo_users):
    """3,000 cases in the first town and 500 in another, inserted by one statement each."""
    other_microgrid = db_session.scalar(
        select(func.min(Area.code)).where(
            Area.level == "microgrid", Area.code.not_like(f"{FIRST_TOWN}%")
        )
    )
    reporter = demo_users["grid_worker"].id
    for microgrid, count in ((FIRST_TOWN_MICROGRID, 3000), (other_microgrid, 500)):
        db_session.execute(
            BULK_INCIDENTS_SQL,
            {
                "reporter": reporter,
                "microgrid": microgrid,
                "count": count,
                "description": DESCRIPTION,
                "prefix": "export",
            },
        )
    return {"other_town": other_microgrid[:9]}


def _count(db_session, *conditions) -> int:
    return db_session.scalar(select(func.count()).select_from(Incident).where(*conditions))


def _town_id(db_session, code: str) -> int:
    return db_session.scalar(select(Area.id).where(Area.code == code))


def _csv_rows(response) -> list[dict]:
    assert response.status_code == 200, response.data[:500]
    assert response.data.startswith(b"\xef\xbb\xbf")  # the UTF-8 BOM Excel needs
    reader = csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"), newline=""))
    assert tuple(reader.fieldnames) == export_service.COLUMNS
    return list(reader)


def test_csv_is_scoped_to_the_callers_town_and_keeps_chinese(client, auth, bulk, db_session):
    response = client.get(CSV_URL, headers=auth("town_supervisor"))
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="incidents-all-')
    assert disposition.endswith('.csv"')
    assert "Content-Length" not in response.headers  # streamed, not one string
    rows = _csv_rows(response)
    in_town = _count(db_session, Incident.town_id == _town_id(db_session, FIRST_TOWN))
    assert len(rows) == in_town >= 3000
    assert {row["town"] for row in rows} == {FIRST_TOWN}
    assert [int(r["id"]) for r in rows] == sorted(int(r["id"]) for r in rows)
    second = next(r for r in rows if r["description"].startswith("第2号"))
    assert second["description"] == f"第2号：{DESCRIPTION}\n第二行"  # quotes, commas, newline
    assert second["category"] == "fire_corridor" and second["category_name"] == "楼道堆物"
    assert second["ref"] == f"GG{int(second['id']):08d}"
    assert second["microgrid"] == FIRST_TOWN_MICROGRID
    assert second["reported_at"].endswith("+08:00")
    assert 121 < float(second["lon"]) < 122 and 29 < float(second["lat"]) < 31
    closed = [r for r in rows if r["status"] == "closed"]
    assert len(closed) == 300
    assert all(r["closed_at"] and r["resolved_level"] == "grid" for r in closed)
    # A formula from a phone stays text in Excel.
    formulas = [r["description"] for r in rows if "HYPERLINK" in r["description"]]
    assert formulas and all(f.startswith("'=") for f in formulas)


def test_wider_scopes_and_filters(client, auth, bulk, db_session):
    everything = _csv_rows(client.get(CSV_URL, headers=auth("district_supervisor")))
    assert len(everything) == _count(db_session) >= 3500
    other = bulk["other_town"]
    area = _csv_rows(client.get(f"{CSV_URL}?area={other}", headers=auth("admin")))
    assert len(area) == 500 and {r["town"] for r in area} == {other}
    # The town supervisor asking for another town gets nothing from it (scope wins).
    assert _csv_rows(client.get(f"{CSV_URL}?area={other}", headers=auth("town_supervisor"))) == []
    closed = _csv_rows(
        client.get(f"{CSV_URL}?area={FIRST_TOWN}&status=closed", headers=auth("admin"))
    )
    assert len(closed) == 300
    future = _csv_rows(
        client.get(f"{CSV_URL}?from=2099-01-01T00:00:00%2B08:00", headers=auth("admin"))
    )
    assert future == []
    past = _csv_rows(
        client.get(f"{CSV_URL}?to=2000-01-01T00:00:00Z&area={other}", headers=auth("admin"))
    )
    assert past == []
    named = client.get(f"{CSV_URL}?area={other}", headers=auth("admin"))
    assert f'filename="incidents-{other}-' in named.headers["Content-Disposition"]


def test_geojson_is_a_feature_collection(client, auth, bulk, db_session):
    response = client.get(GEOJSON_URL, headers=auth("town_supervisor"))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/geo+json"
    assert response.headers["Content-Disposition"].endswith('.geojson"')
    assert "Content-Length" not in response.headers
    document = json.loads(response.data)
    assert document["type"] == "FeatureCollection"
    features = document["features"]
    assert len(features) == _count(db_session, Incident.town_id == _town_id(db_session, FIRST_TOWN))
    first = features[0]
    assert first["type"] == "Feature" and first["geometry"]["type"] == "Point"
    lon, lat = first["geometry"]["coordinates"]
    assert 121 < lon < 122 and 29 < lat < 31
    assert first["properties"]["town"] == FIRST_TOWN
    assert "lon" not in first["properties"]
    assert any(DESCRIPTION in f["properties"]["description"] for f in features)
    assert {f["id"] for f in features} == {f["properties"]["id"] for f in features}


def test_empty_geojson_is_still_valid(client, auth):
    response = client.get(f"{GEOJSON_URL}?from=2099-01-01T00:00:00Z", headers=auth("admin"))
    assert json.loads(response.data) == {"type": "FeatureCollection", "features": []}


@pytest.mark.parametrize("url", [CSV_URL, GEOJSON_URL])
def test_response_is_a_generator_over_a_server_side_cursor(app, auth, bulk, db_session, url):
    """The body is produced chunk by chunk from a named (server-side) cursor."""
    with app.test_request_context(url, headers=auth("town_supervisor")):
        response = app.full_dispatch_request()
        assert response.is_streamed
        assert not isinstance(response.response, list | tuple | bytes | str)
        chunks = iter(response.response)
        first = next(chunks)
        second = next(chunks)
        # Mid-stream, PostgreSQL holds the query as an open cursor of this connection.
        cursors = db_session.execute(text("SELECT count(*) FROM pg_cursors")).scalar()
        assert cursors == 1
        rest = list(chunks)
        response.close()
    assert len(rest) >= 4  # 3,000 rows in chunks of 500: written incrementally
    body = first + second + b"".join(rest)
    if url == CSV_URL:
        assert body.decode("utf-8-sig").count("第二行") >= 2900
    else:
        assert len(json.loads(body)["features"]) >= 3000


def test_errors_come_before_the_stream(client, auth):
    response = client.get(f"{CSV_URL}?area=330212999", headers=auth("admin"))
    assert response.status_code == 404
    assert response.get_json()["error"] == "area_not_found"
    assert client.get(CSV_URL).status_code == 401
    bad = client.get(f"{GEOJSON_URL}?status=lost", headers=auth("admin"))
    assert bad.status_code == 422 and bad.get_json()["error"] == "validation_failed"


def test_a_query_the_database_refuses_fails_before_the_stream(client, auth):
    # A NUL in a filter reaches PostgreSQL, which refuses it: that must be an error response
    # (the envelope), never a 200 whose body breaks off.
    response = client.get(f"{CSV_URL}?category=a%00b", headers=auth("admin"))
    assert response.status_code >= 400
    assert response.get_json()["error"]


def test_formula_guard_only_touches_text_cells():
    assert export_service._cell_text("=1+1") == "'=1+1"
    assert export_service._cell_text("-2 度结冰") == "'-2 度结冰"
    assert export_service._cell_text("正常描述") == "正常描述"
    assert export_service._cell_text(None) is None
