"""Open311 GeoReport v2 under /open311/v2: conformance with the spec's documents (JSON and XML)
and the life of a request posted through it.

The reference structures below are the spec's example documents
(http://wiki.open311.org/GeoReport_v2, section named in each comment) with placeholder values:
the element names, their nesting and their order are the spec's, the values are ours. Every
document we serve is parsed and its element paths and leaf types compared with them.
"""

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from gridgov.api.open311_render import w3_datetime
from gridgov.extensions import db
from gridgov.models import Area, Category, Incident, IntegrationClient, User
from gridgov.services import open311_clients
from gridgov.services import open311_requests as requests_service
from gridgov.services.calendar import CHINA_TZ
from gridgov.spatial import from_db
from tests.factories import make_incident
from tests.helpers import configure, map_locked

WORKER_MICROGRID = "330212001001001001"
FIRST_TOWN = WORKER_MICROGRID[:9]
BASE = "/open311/v2"

# --------------------------------------------------------------------------- the spec's shapes

# Service Discovery (http://wiki.open311.org/Service_Discovery, "Examples").
SPEC_DISCOVERY_XML = """<?xml version="1.0" encoding="UTF-8"?>
<discovery>
  <changeset>2011-02-03 14:18</changeset>
  <contact>…</contact>
  <key_service>…</key_service>
  <endpoints>
    <endpoint>
      <specification>http://wiki.open311.org/GeoReport_v2</specification>
      <url>http://example.org/v2</url>
      <changeset>2010-11-23 09:01</changeset>
      <type>production</type>
      <formats><format>text/xml</format><format>application/json</format></formats>
    </endpoint>
  </endpoints>
</discovery>"""

# GeoReport v2, "GET Service List", example response.
SPEC_SERVICES_XML = """<?xml version="1.0" encoding="utf-8"?>
<services>
  <service>
    <service_code>001</service_code>
    <service_name>…</service_name>
    <description>…</description>
    <metadata>true</metadata>
    <type>realtime</type>
    <keywords>a, b, c</keywords>
    <group>…</group>
  </service>
</services>"""

# GeoReport v2, "GET Service Definition", example response.
SPEC_DEFINITION_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_definition>
  <service_code>DMV66</service_code>
  <attributes>
    <attribute>
      <variable>true</variable>
      <code>X</code>
      <datatype>singlevaluelist</datatype>
      <required>true</required>
      <datatype_description></datatype_description>
      <order>1</order>
      <description>…</description>
      <values>
        <value><key>1</key><name>…</name></value>
      </values>
    </attribute>
  </attributes>
</service_definition>"""

# GeoReport v2, "POST Service Request", example response (realtime: an id, no token).
SPEC_POST_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_requests>
  <request>
    <service_request_id>293944</service_request_id>
    <service_notice>…</service_notice>
    <account_id/>
  </request>
</service_requests>"""

# GeoReport v2, "GET Service Requests" and "GET Service Request", example response.
SPEC_REQUESTS_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_requests>
  <request>
    <service_request_id>638344</service_request_id>
    <status>closed</status>
    <status_notes>…</status_notes>
    <service_name>…</service_name>
    <service_code>006</service_code>
    <description></description>
    <agency_responsible></agency_responsible>
    <service_notice></service_notice>
    <requested_datetime>2010-04-14T06:37:38-08:00</requested_datetime>
    <updated_datetime>2010-04-14T06:37:38-08:00</updated_datetime>
    <expected_datetime>2010-04-15T06:37:38-08:00</expected_datetime>
    <address>…</address>
    <address_id>545483</address_id>
    <zipcode>94122</zipcode>
    <lat>37.762221815</lat>
    <long>-122.4651145</long>
    <media_url>http://example.org/638344.jpg</media_url>
  </request>
</service_requests>"""

# GeoReport v2, "Errors", example.
SPEC_ERRORS_XML = """<?xml version="1.0" encoding="utf-8"?>
<errors>
  <error>
    <code>403</code>
    <description>Invalid api_key received -- can't proceed with create_request.</description>
  </error>
</errors>"""

# The JSON examples are the same documents by the Spark convention (a list where the XML
# repeats an element). Several example values are not valid JSON (service_code 001, "006"
# written as 006), so the JSON references are written as types: a path maps to the JSON types
# the spec's field tables allow there ("null" where the spec says "may not be returned" or the
# example shows null).
STR, NUM, BOOL, NULL = "string", "number", "boolean", "null"
SPEC_DISCOVERY_JSON = {
    "changeset": {STR},
    "contact": {STR},
    "key_service": {STR},
    "endpoints[]": {"array"},
    "endpoints[].specification": {STR},
    "endpoints[].url": {STR},
    "endpoints[].changeset": {STR},
    "endpoints[].type": {STR},
    "endpoints[].formats[]": {"array"},
    "endpoints[].formats[].": {STR},
}
SPEC_SERVICES_JSON = {
    "[].service_code": {STR, NUM},
    "[].service_name": {STR},
    "[].description": {STR, NULL},
    "[].metadata": {BOOL},
    "[].type": {STR},
    "[].keywords": {STR, NULL},
    "[].group": {STR, NULL},
}
SPEC_DEFINITION_JSON = {
    "service_code": {STR, NUM},
    "attributes[]": {"array"},
    "attributes[].variable": {BOOL},
    "attributes[].code": {STR},
    "attributes[].datatype": {STR},
    "attributes[].required": {BOOL},
    "attributes[].datatype_description": {STR, NULL},
    "attributes[].order": {NUM},
    "attributes[].description": {STR},
    "attributes[].values[]": {"array"},
    "attributes[].values[].key": {STR, NUM},
    "attributes[].values[].name": {STR},
}
SPEC_POST_JSON = {
    "[].service_request_id": {STR, NUM},
    "[].service_notice": {STR, NULL},
    "[].account_id": {STR, NUM, NULL},
}
SPEC_REQUESTS_JSON = {
    "[].service_request_id": {STR, NUM},
    "[].status": {STR},
    "[].status_notes": {STR, NULL},
    "[].service_name": {STR},
    "[].service_code": {STR, NUM},
    "[].description": {STR, NULL},
    "[].agency_responsible": {STR, NULL},
    "[].service_notice": {STR, NULL},
    "[].requested_datetime": {STR},
    "[].updated_datetime": {STR},
    "[].expected_datetime": {STR, NULL},
    "[].address": {STR, NULL},
    "[].address_id": {STR, NUM, NULL},
    "[].zipcode": {STR, NUM, NULL},
    "[].lat": {NUM},
    "[].long": {NUM},
    "[].media_url": {STR, NULL},
}
SPEC_ERRORS_JSON = {"[].code": {NUM}, "[].description": {STR}}

# Leaf text the spec constrains (field tables): booleans, integers, w3 date-times, numbers.
W3_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")
XML_LEAF_RULES = {
    "metadata": re.compile(r"^(true|false)$"),
    "variable": re.compile(r"^(true|false)$"),
    "required": re.compile(r"^(true|false)$"),
    "type": re.compile(r"^(realtime|batch|blackbox|production|test)$"),
    "datatype": re.compile(r"^(string|number|datetime|text|singlevaluelist|multivaluelist)$"),
    "order": re.compile(r"^[1-9][0-9]*$"),
    "status": re.compile(r"^(open|closed)$"),
    "requested_datetime": W3_DATETIME,
    "updated_datetime": W3_DATETIME,
    "expected_datetime": re.compile(W3_DATETIME.pattern + "|^$"),
    "lat": re.compile(r"^-?\d+(\.\d+)?$"),
    "long": re.compile(r"^-?\d+(\.\d+)?$"),
    "code": re.compile(r"^.+$"),
}


def xml_paths(element: ET.Element, prefix: str = "") -> list[str]:
    """Every element path in document order, e.g. services/service/service_code."""
    path = f"{prefix}/{element.tag}" if prefix else element.tag
    paths = [path]
    for child in element:
        paths += xml_paths(child, path)
    return paths


def xml_structure(document: bytes | str) -> list[str]:
    """Distinct element paths of an XML document, in first-seen order."""
    return list(dict.fromkeys(xml_paths(ET.fromstring(document))))


def json_types(value: object, path: str = "") -> dict[str, set[str]]:
    """{path: JSON types seen there}; lists add "[]" and their items' paths."""
    found: dict[str, set[str]] = {}

    def add(p: str, kind: str) -> None:
        found.setdefault(p, set()).add(kind)

    def walk(v: object, p: str) -> None:
        if isinstance(v, dict):
            for key, child in v.items():
                walk(child, f"{p}.{key}" if p else key)
        elif isinstance(v, list):
            add(f"{p}[]", "array")
            for child in v:
                walk(child, f"{p}[]" if isinstance(child, dict) else f"{p}[].")
        elif isinstance(v, bool):
            add(p, BOOL)
        elif isinstance(v, int | float):
            add(p, NUM)
        elif isinstance(v, str):
            add(p, STR)
        else:
            add(p, NULL)

    walk(value, path)
    if isinstance(value, list):
        found.pop("[]", None)
    return found


def assert_json_conforms(document: object, reference: dict[str, set[str]]) -> None:
    """Same paths as the spec, and at each path only types the spec allows there."""
    seen = json_types(document)
    assert set(seen) == set(reference), (set(seen) ^ set(reference), seen)
    for path, kinds in seen.items():
        assert kinds <= reference[path], (path, kinds, reference[path])


def assert_xml_conforms(body: bytes, reference_xml: str) -> ET.Element:
    """Same element paths in the same order as the spec's example, leaves of the right form."""
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    ours = xml_structure(body)
    spec = xml_structure(reference_xml.encode())
    assert ours == spec, (ours, spec)
    root = ET.fromstring(body)
    for element in root.iter():
        rule = XML_LEAF_RULES.get(element.tag)
        if rule is not None and len(element) == 0:
            assert rule.match(element.text or ""), (element.tag, element.text)
    return root


def test_reference_structures_parse():
    # The references themselves are well-formed and have the spec's roots.
    roots = [
        ET.fromstring(doc.encode()).tag
        for doc in (
            SPEC_DISCOVERY_XML,
            SPEC_SERVICES_XML,
            SPEC_DEFINITION_XML,
            SPEC_POST_XML,
            SPEC_REQUESTS_XML,
            SPEC_ERRORS_XML,
        )
    ]
    assert roots == [
        "discovery",
        "services",
        "service_definition",
        "service_requests",
        "service_requests",
        "errors",
    ]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def spot(app):
    """A WGS-84 point inside the first town's first micro-grid."""
    with app.app_context():
        boundary = db.session.scalar(select(Area.boundary).where(Area.code == WORKER_MICROGRID))
        db.session.remove()
    point = from_db(boundary).representative_point()
    return round(point.x, 7), round(point.y, 7)


@pytest.fixture
def open311_client(db_session):
    """A fresh integration client: (its row, its api_key)."""
    created = open311_clients.create_client(db_session, name="12345 热线")
    return created.client, created.api_key


@pytest.fixture
def api_key(open311_client):
    return open311_client[1]


@pytest.fixture
def post_request(client, api_key, spot):
    """POST a form-encoded service request; keyword arguments override the form."""

    def send(fmt="json", **overrides):
        form = {
            "api_key": api_key,
            "service_code": "env_garbage",
            "lat": str(spot[1]),
            "long": str(spot[0]),
            "address_string": "钟公庙街道 金色水岸小区 3号楼北侧",
            "email": "citizen@example.cn",
            "device_id": "device-7",
            "account_id": "acct-42",
            "first_name": "小明",
            "last_name": "王",
            "phone": "138 0000 0000",
            "description": "小区门口垃圾堆了三天没人清理",
            "media_url": "https://img.example.cn/r/1.jpg",
        }
        form.update(overrides)
        form = {k: v for k, v in form.items() if v is not None}
        return client.post(f"{BASE}/requests.{fmt}", data=form)

    return send


def body_json(response):
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    return json.loads(response.data)


def assert_spec_error(response, status: int, fmt: str = "json", contains: str = "") -> str:
    """A spec-form error (never the /api/v1 envelope); returns its description."""
    assert response.status_code == status, response.data
    if fmt == "json":
        document = body_json(response)
        assert_json_conforms(document, SPEC_ERRORS_JSON)
        assert isinstance(document, list) and document
        assert {e["code"] for e in document} == {status}
        description = " ".join(e["description"] for e in document)
    else:
        assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
        root = assert_xml_conforms(response.data, SPEC_ERRORS_XML)
        assert {e.findtext("code") for e in root} == {str(status)}
        description = " ".join(e.findtext("description") for e in root)
    assert contains in description, description
    return description


# --------------------------------------------------------------------------- discovery, services


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_discovery_is_public_and_conforms(client, fmt):
    response = client.get(f"{BASE}/discovery.{fmt}")  # no token
    assert response.status_code == 200
    if fmt == "json":
        document = body_json(response)
        assert_json_conforms(document, SPEC_DISCOVERY_JSON)
        endpoint = document["endpoints"][0]
        formats = endpoint["formats"]
    else:
        root = assert_xml_conforms(response.data, SPEC_DISCOVERY_XML)
        endpoint = {e.tag: e.text for e in root.find("endpoints/endpoint")}
        formats = [f.text for f in root.findall("endpoints/endpoint/formats/format")]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == "http://localhost/open311/v2"
    assert endpoint["type"] == "test"
    assert sorted(formats) == ["application/json", "text/xml"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_services_are_the_active_categories(client, db_session, fmt):
    response = client.get(f"{BASE}/services.{fmt}")
    assert response.status_code == 200
    if fmt == "json":
        services = body_json(response)
        assert_json_conforms(services, SPEC_SERVICES_JSON)
    else:
        root = assert_xml_conforms(response.data, SPEC_SERVICES_XML)
        services = [{e.tag: e.text for e in s} for s in root]
        for service in services:
            service["metadata"] = service["metadata"] == "true"
    categories = db_session.scalars(select(Category).where(Category.is_active.is_(True))).all()
    assert {s["service_code"] for s in services} == {c.code for c in categories}
    by_code = {s["service_code"]: s for s in services}
    for category in categories:
        service = by_code[category.code]
        assert service["service_name"] == category.name
        assert service["group"] == category.group_name
        assert service["type"] == "realtime"
        assert category.name in service["keywords"]
        # Attributes (metadata) only where they mean something: hazards in buildings.
        assert service["metadata"] is (category.group_name in ("安全隐患", "消防隐患"))
    assert "4工作小时内处置" in by_code["env_garbage"]["description"]


def test_inactive_category_is_no_service(client, db_session):
    db_session.execute(text("UPDATE category SET is_active = false WHERE code = 'env_green'"))
    codes = {s["service_code"] for s in body_json(client.get(f"{BASE}/services.json"))}
    assert "env_green" not in codes and "env_garbage" in codes
    assert_spec_error(client.get(f"{BASE}/services/env_green.json"), 404, contains="env_green")


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_service_definition_conforms(client, fmt):
    response = client.get(f"{BASE}/services/hazard_gas.{fmt}")
    assert response.status_code == 200
    if fmt == "json":
        definition = body_json(response)
        assert_json_conforms(definition, SPEC_DEFINITION_JSON)
        attributes = definition["attributes"]
        assert definition["service_code"] == "hazard_gas"
    else:
        root = assert_xml_conforms(response.data, SPEC_DEFINITION_XML)
        assert root.findtext("service_code") == "hazard_gas"
        attributes = [
            {
                **{e.tag: e.text for e in a if e.tag != "values"},
                "values": [{v.tag: v.text for v in value} for value in a.findall("values/value")],
            }
            for a in root.findall("attributes/attribute")
        ]
    assert [a["code"] for a in attributes] == ["floor", "hazard_level"]
    floor, hazard = attributes
    assert floor["datatype"] == "string"
    assert hazard["datatype"] == "singlevaluelist"
    assert [v["key"] for v in hazard["values"]] == ["low", "medium", "high"]
    assert str(floor["required"]).lower() == "false"


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_service_without_attributes_has_an_empty_definition(client, fmt):
    response = client.get(f"{BASE}/services/env_garbage.{fmt}")
    assert response.status_code == 200
    if fmt == "json":
        assert body_json(response) == {"service_code": "env_garbage", "attributes": []}
    else:
        root = ET.fromstring(response.data)
        assert [e.tag for e in root] == ["service_code", "attributes"]
        assert len(root.find("attributes")) == 0


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_service_definition_is_404(client, fmt):
    response = client.get(f"{BASE}/services/no_such_thing.{fmt}")
    assert_spec_error(response, 404, fmt, contains="no_such_thing")


# --------------------------------------------------------------------------- POST and read back


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_post_creates_a_case_and_answers_per_spec(post_request, open311_client, db_session, fmt):
    response = post_request(fmt)
    assert response.status_code == 201, response.data
    if fmt == "json":
        document = body_json(response)
        assert_json_conforms(document, SPEC_POST_JSON)
        (answer,) = document
    else:
        root = assert_xml_conforms(response.data, SPEC_POST_XML)
        answer = {e.tag: e.text for e in root.find("request")}
        answer["service_request_id"] = int(answer["service_request_id"])
    assert answer["account_id"] == "acct-42"
    assert "受理" in answer["service_notice"]
    incident = db_session.get(Incident, answer["service_request_id"])
    client_row, _ = open311_client
    assert incident.source == "open311"
    assert incident.reporter_id == client_row.service_user_id
    assert incident.routing_method == "covered"
    assert db_session.get(Area, incident.microgrid_id).code == WORKER_MICROGRID
    assert incident.description == "小区门口垃圾堆了三天没人清理"
    assert len(incident.client_id) == 64
    external = incident.external
    assert external["address_string"] == "钟公庙街道 金色水岸小区 3号楼北侧"
    assert external["contact"] == {
        "email": "citizen@example.cn",
        "phone": "138 0000 0000",
        "first_name": "小明",
        "last_name": "王",
    }
    assert external["device_id"] == "device-7" and external["account_id"] == "acct-42"
    assert external["client"] == "12345 热线"
    assert external["attributes"] == {}


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_post_while_the_map_is_changed_is_503_with_retry_after(
    post_request, app, db_session, monkeypatch, fmt
):
    configure(monkeypatch, app, MAP_LOCK_WAIT_MS=200)
    db_session.commit()  # the client survives the failed request's rollback (the test's undo)
    with map_locked(app):
        busy = post_request(fmt)
    assert_spec_error(busy, 503, fmt, contains="map is being changed")
    assert busy.headers["Retry-After"] == "5"
    db_session.rollback()  # the request's teardown does this when its app context ends
    assert post_request(fmt).status_code == 201


def test_post_without_account_id_answers_null_account(post_request):
    response = post_request("xml", account_id=None)
    assert response.status_code == 201
    root = ET.fromstring(response.data)
    account = root.find("request/account_id")
    assert account is not None and account.text is None  # <account_id/>, as in the spec
    assert (
        body_json(post_request("json", account_id=None, description="另一条"))[0]["account_id"]
        is None
    )


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_read_back_by_id_conforms_and_shows_no_personal_data(client, post_request, db_session, fmt):
    request_id = body_json(post_request())[0]["service_request_id"]
    response = client.get(f"{BASE}/requests/{request_id}.{fmt}")
    assert response.status_code == 200
    if fmt == "json":
        document = body_json(response)
        assert_json_conforms(document, SPEC_REQUESTS_JSON)
        (request,) = document
    else:
        root = assert_xml_conforms(response.data, SPEC_REQUESTS_XML)
        request = {e.tag: e.text for e in root.find("request")}
        request["service_request_id"] = int(request["service_request_id"])
        request["lat"], request["long"] = float(request["lat"]), float(request["long"])
    town = db_session.scalar(select(Area.name).where(Area.code == FIRST_TOWN))
    assert request["service_request_id"] == request_id
    assert request["status"] == "open"
    assert request["status_notes"] == "已上报，待受理 reported, awaiting acceptance"
    assert request["service_code"] == "env_garbage"
    assert request["service_name"] == "暴露垃圾"
    assert request["agency_responsible"] == town
    assert request["address"] == "钟公庙街道 金色水岸小区 3号楼北侧"
    assert request["media_url"] == "https://img.example.cn/r/1.jpg"
    assert request["zipcode"] in (None, "")
    assert request["requested_datetime"].endswith("+08:00")
    assert W3_DATETIME.match(request["expected_datetime"])
    incident = db_session.get(Incident, request_id)
    point = from_db(incident.location)
    assert abs(request["lat"] - point.y) < 1e-7 and abs(request["long"] - point.x) < 1e-7
    # Contact details, reporter identity, device and account never leave the server.
    body = response.data.decode()
    for private in ("citizen@example.cn", "138 0000 0000", "小明", "device-7", "acct-42"):
        assert private not in body
    assert str(incident.reporter_id) not in re.findall(r"reporter\w*", body)


def test_address_falls_back_to_the_area_names_most_specific_first(client, post_request):
    request_id = body_json(post_request(address_string=None))[0]["service_request_id"]
    (request,) = body_json(client.get(f"{BASE}/requests/{request_id}.json"))
    names = request["address"].split(", ")
    assert len(names) == 5  # micro-grid, grid, community, town, district
    assert names[-1] == "鄞州区"


def test_phone_reports_are_never_published(client, db_session, demo_users):
    phone = make_incident(
        db_session, reporter=demo_users["grid_worker"], microgrid_code=WORKER_MICROGRID
    )
    assert_spec_error(client.get(f"{BASE}/requests/{phone.id}.json"), 404, contains=str(phone.id))
    ids = {r["service_request_id"] for r in body_json(client.get(f"{BASE}/requests.json"))}
    assert phone.id not in ids
    listed = body_json(client.get(f"{BASE}/requests.json?service_request_id={phone.id}"))
    assert listed == []


def test_identical_repost_is_idempotent(post_request, db_session):
    first = post_request()
    second = post_request()
    assert (first.status_code, second.status_code) == (201, 200)
    assert body_json(first) == body_json(second)
    request_id = body_json(first)[0]["service_request_id"]
    client_id = db_session.get(Incident, request_id).client_id
    count = db_session.scalar(
        select(func.count()).select_from(Incident).where(Incident.client_id == client_id)
    )
    assert count == 1
    other = post_request(description="小区门口垃圾又堆起来了")
    assert other.status_code == 201
    assert body_json(other)[0]["service_request_id"] != request_id


def test_client_id_is_derived_from_content_and_day():
    submission = requests_service.RequestSubmission(
        service_code="env_garbage", lat=29.8, long=121.5
    )
    day = datetime(2026, 11, 27).date()
    same = requests_service.derive_client_id(submission, day=day)
    assert same == requests_service.derive_client_id(submission, day=day)
    assert len(same) == 64
    assert same != requests_service.derive_client_id(submission, day=day + timedelta(days=1))
    moved = requests_service.RequestSubmission(service_code="env_garbage", lat=29.8, long=121.6)
    assert same != requests_service.derive_client_id(moved, day=day)


def test_form_encoding_is_required(client, api_key, spot):
    response = client.post(
        f"{BASE}/requests.json",
        json={"api_key": api_key, "service_code": "env_garbage", "lat": 1, "long": 2},
    )
    assert_spec_error(response, 400, contains="x-www-form-urlencoded")


# --------------------------------------------------------------------------- errors of POST


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_bad_api_key_is_403(post_request, fmt):
    assert_spec_error(post_request(fmt, api_key="not-a-key"), 403, fmt, contains="api_key")
    assert_spec_error(post_request(fmt, api_key=None), 403, fmt, contains="api_key")


def test_deactivated_client_is_403(post_request, open311_client, db_session):
    client_row, _ = open311_client
    client_row.is_active = False
    db_session.flush()
    assert_spec_error(post_request(), 403, contains="api_key")


def test_deactivated_service_user_is_403(post_request, open311_client, db_session):
    db_session.get(User, open311_client[0].service_user_id).is_active = False
    db_session.flush()
    assert_spec_error(post_request(), 403)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_service_code_is_404(post_request, fmt):
    assert_spec_error(post_request(fmt, service_code="potholes"), 404, fmt, contains="potholes")


def test_missing_service_code_is_400(post_request):
    assert_spec_error(post_request(service_code=None), 400, contains="service_code")


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_missing_location_is_400(post_request, fmt):
    description = assert_spec_error(
        post_request(fmt, lat=None, long=None, address_string=None), 400, fmt
    )
    assert "lat" in description and "long" in description


def test_lat_without_long_is_400(post_request):
    assert_spec_error(post_request(long=None), 400, contains="lat and long must both be sent")
    assert_spec_error(post_request(long=""), 400, contains="lat and long must both be sent")


def test_swapped_coordinates_are_400_with_a_clear_description(post_request, spot):
    lon, lat = spot
    description = assert_spec_error(post_request(lat=str(lon), long=str(lat)), 400)
    assert "look swapped" in description
    assert f"did you mean lat={lat!r}, long={lon!r}" in description


@pytest.mark.parametrize(
    ("lat", "long", "expected"),
    [
        ("95", "121.5", "lat must be within [-90, 90]"),
        ("29.8", "200", "long must be within [-180, 180]"),
        ("north", "121.5", "lat must be a number"),
        ("nan", "121.5", "lat must be a finite number"),
        ("29.8", "inf", "long must be a finite number"),
    ],
)
def test_bad_coordinates_are_400(post_request, lat, long, expected):
    assert_spec_error(post_request(lat=lat, long=long), 400, contains=expected)


@pytest.mark.parametrize("field", ["address_string", "address_id"])
def test_address_only_is_400_without_a_geocoder(post_request, field):
    form = {"lat": None, "long": None, "address_string": None, field: "金色水岸小区"}
    response = post_request(**form)
    assert_spec_error(response, 400, contains="no geocoder")


def test_jurisdiction_is_checked_against_the_clients(client, db_session, spot):
    created = open311_clients.create_client(
        db_session, name="宁波政务APP", jurisdiction_id="yinzhou.gov.cn"
    )
    form = {
        "api_key": created.api_key,
        "service_code": "env_garbage",
        "lat": str(spot[1]),
        "long": str(spot[0]),
        "description": "路边垃圾",
    }
    wrong = client.post(f"{BASE}/requests.json", data={**form, "jurisdiction_id": "sfgov.org"})
    assert_spec_error(wrong, 404, contains="sfgov.org")
    right = client.post(f"{BASE}/requests.json", data={**form, "jurisdiction_id": "yinzhou.gov.cn"})
    assert right.status_code == 201
    # Optional means optional: not sent (or sent empty) is fine.
    empty = client.post(f"{BASE}/requests.json", data={**form, "jurisdiction_id": ""})
    assert empty.status_code == 200  # the same request again (jurisdiction_id is not content)
    assert client.post(f"{BASE}/requests.json", data=form).status_code == 200


def test_attributes_are_checked_and_stored(post_request, db_session):
    response = post_request(
        service_code="fire_corridor",
        **{"attribute[floor]": "3", "attribute[hazard_level]": "high"},
    )
    assert response.status_code == 201, response.data
    incident = db_session.get(Incident, body_json(response)[0]["service_request_id"])
    assert incident.external["attributes"] == {"floor": "3", "hazard_level": "high"}
    # hazard_level=high raises the category's default priority (normal) to high.
    assert incident.priority == "high"
    low = post_request(service_code="fire_corridor", **{"attribute[hazard_level]": "low"})
    assert db_session.get(Incident, body_json(low)[0]["service_request_id"]).priority == "normal"


@pytest.mark.parametrize(
    ("service", "attribute", "value", "expected"),
    [
        ("fire_corridor", "hazard_level", "extreme", "must be one of high, low, medium"),
        ("fire_corridor", "colour", "red", "attribute[colour] is not defined"),
        ("env_garbage", "floor", "3", "attribute[floor] is not defined"),
        ("fire_corridor", "floor", "x" * 21, "at most 20 characters"),
    ],
)
def test_bad_attributes_are_400(post_request, service, attribute, value, expected):
    response = post_request(service_code=service, **{f"attribute[{attribute}]": value})
    assert_spec_error(response, 400, contains=expected)


def test_nul_characters_are_400_not_a_database_error(client, post_request):
    assert_spec_error(post_request(description="a\x00b"), 400, contains="NUL")
    assert_spec_error(post_request(**{"attribute[floor]": "3\x00"}), 400, contains="NUL")
    assert_spec_error(client.get(f"{BASE}/requests.json?service_code=a%00b"), 400)
    assert_spec_error(client.get(f"{BASE}/services/env%00garbage.xml"), 404, "xml")


def test_too_long_description_is_400(post_request):
    assert_spec_error(post_request(description="长" * 4001), 400, contains="description")


# --------------------------------------------------------------------------- GET requests


def _post_id(post_request, **form) -> int:
    response = post_request(**form)
    assert response.status_code == 201, response.data
    return body_json(response)[0]["service_request_id"]


def _listed(client, query: str = "", fmt: str = "json") -> list[int]:
    response = client.get(f"{BASE}/requests.{fmt}{query}")
    assert response.status_code == 200, response.data
    if fmt == "json":
        document = body_json(response)
        if document:
            assert_json_conforms(document, SPEC_REQUESTS_JSON)
        return [r["service_request_id"] for r in document]
    root = ET.fromstring(response.data)
    if len(root):
        assert_xml_conforms(response.data, SPEC_REQUESTS_XML)
    return [int(r.findtext("service_request_id")) for r in root]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_filters(client, post_request, db_session, fmt):
    garbage = _post_id(post_request, description="垃圾一")
    light = _post_id(post_request, service_code="facility_streetlight", description="路灯不亮")
    old = _post_id(post_request, description="很久以前的垃圾")
    db_session.execute(
        text("UPDATE incident SET created_at = now() - interval '100 days' WHERE id = :id"),
        {"id": old},
    )
    # Default: the last 90 days, newest first.
    listed = _listed(client, fmt=fmt)
    assert listed[:2] == [light, garbage] and old not in listed
    assert _listed(client, "?service_code=env_garbage", fmt) == [garbage]
    assert _listed(client, "?service_code=env_garbage,facility_streetlight", fmt)[:2] == [
        light,
        garbage,
    ]
    # service_request_id overrides every other argument (the old one is found too).
    ids = f"{old},{garbage}"
    assert sorted(_listed(client, f"?service_request_id={ids}&status=closed", fmt)) == sorted(
        [old, garbage]
    )
    assert set(_listed(client, "?status=open", fmt)) >= {garbage, light}
    assert _listed(client, "?status=closed", fmt) == []
    # An explicit range finds the old one; a date is a whole local day.
    created = db_session.get(Incident, old).created_at.astimezone(UTC)
    start = (created - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (created + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _listed(client, f"?start_date={start}&end_date={end}", fmt) == [old]
    day = created.astimezone(CHINA_TZ).date()
    around = f"?start_date={day - timedelta(days=1)}&end_date={day + timedelta(days=1)}"
    assert _listed(client, around, fmt) == [old]
    # Only a start: 90 days from there, so today's are outside.
    assert garbage not in _listed(client, f"?start_date={start}", fmt)
    # Empty parameters count as not sent.
    assert _listed(client, "?service_code=&status=&start_date=", fmt)[:2] == [light, garbage]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z", "90 days"),
        ("?start_date=2026-03-01T00:00:00Z&end_date=2026-02-01T00:00:00Z", "before"),
        ("?start_date=2026-03-01T00:00:00", "time zone"),
        ("?end_date=yesterday", "w3 date-time"),
        ("?status=pending", "'pending' is not one of open, closed"),
        ("?service_request_id=12,abc", "'abc' is not a valid value"),
    ],
)
def test_bad_filters_are_400(client, query, expected):
    assert_spec_error(client.get(f"{BASE}/requests.json{query}"), 400, contains=expected)


def test_at_most_1000_requests(client, post_request, db_session, open311_client):
    template = _post_id(post_request)
    db_session.execute(
        text(
            """
            INSERT INTO incident (client_id, reporter_id, content_hash, source, category_id,
                priority, description, status, occurred_at, location, input_lon, input_lat,
                input_crs, routing_method, routing_candidates, microgrid_id, grid_id,
                community_id, town_id, district_id, handling_level, external)
            SELECT 'bulk-' || n, reporter_id, content_hash, source, category_id, priority,
                description, status, occurred_at, location, input_lon, input_lat, input_crs,
                routing_method, routing_candidates, microgrid_id, grid_id, community_id,
                town_id, district_id, handling_level, external
            FROM incident, generate_series(1, 1005) AS n WHERE id = :id
            """
        ),
        {"id": template},
    )
    assert len(_listed(client)) == 1000


def test_unknown_request_is_404(client):
    for fmt in ("json", "xml"):
        assert_spec_error(client.get(f"{BASE}/requests/999999999.{fmt}"), 404, fmt)
        assert_spec_error(client.get(f"{BASE}/requests/GG0001.{fmt}"), 404, fmt)


# --------------------------------------------------------------------------- workflow → status


def _act(client, auth, incident_id: int, **body):
    response = client.post(
        f"/api/v1/incidents/{incident_id}/actions", json=body, headers=auth("town_supervisor")
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_status_follows_our_workflow(client, auth, post_request, db_session, fmt):
    request_id = _post_id(post_request)

    def current() -> dict:
        response = client.get(f"{BASE}/requests/{request_id}.{fmt}")
        if fmt == "json":
            return body_json(response)[0]
        return {e.tag: e.text for e in ET.fromstring(response.data).find("request")}

    steps = [
        ({"action": "accept"}, "open", "已受理 accepted"),
        ({"action": "dispatch", "handling_unit": "街道环卫所"}, "open", "已派遣"),
        ({"action": "resolve", "note": "已清理"}, "open", "已处置，待核查"),
        ({"action": "verify"}, "open", "已核查，待结案"),
        ({"action": "close"}, "closed", "已结案 closed"),
    ]
    for body, status, notes in steps:
        _act(client, auth, request_id, **body)
        request = current()
        assert request["status"] == status
        assert request["status_notes"].startswith(notes)
    incident = db_session.get(Incident, request_id)
    closed_at = w3_datetime(incident.closed_at, incident.closed_at.tzinfo)
    assert datetime.fromisoformat(request["updated_datetime"]) == datetime.fromisoformat(
        closed_at
    ).replace(microsecond=0)
    assert request["expected_datetime"] in (None, "")  # no clock runs on a closed case
    assert request_id in _listed(client, "?status=closed", fmt)
    assert request_id not in _listed(client, "?status=open", fmt)


def test_rejected_and_duplicate_are_closed(client, auth, post_request):
    rejected = _post_id(post_request, description="不是本辖区的问题")
    _act(client, auth, rejected, action="reject", note="非网格事项")
    original = _post_id(post_request, description="原件")
    copy = _post_id(post_request, description="原件的重复")
    _act(client, auth, copy, action="duplicate", duplicate_of=original)
    answers = body_json(client.get(f"{BASE}/requests.json?service_request_id={rejected},{copy}"))
    notes = {a["service_request_id"]: (a["status"], a["status_notes"]) for a in answers}
    assert notes[rejected] == ("closed", "不予受理 rejected")
    assert notes[copy] == ("closed", "重复上报 duplicate of another request")


def test_status_map_covers_every_status():
    from gridgov.models import STATUSES, TERMINAL_STATUSES

    assert set(requests_service.STATUS_MAP) == set(STATUSES)
    closed = {s for s, (o, _) in requests_service.STATUS_MAP.items() if o == "closed"}
    assert closed == set(TERMINAL_STATUSES)


# --------------------------------------------------------------------------- never the envelope


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/open311/v2/nothing.json", 404),
        ("GET", "/open311/v2/services.csv", 404),
        ("GET", "/open311/v2/requests/12/comments.xml", 404),
        ("GET", "/open311/v2", 404),
        ("GET", "/open311", 404),
        ("GET", "/open311/v3/services.json", 404),
        ("DELETE", "/open311/v2/requests.json", 405),
        ("PUT", "/open311/v2/services.xml", 405),
        ("POST", "/open311/v2/discovery.json", 405),
    ],
)
def test_framework_errors_use_the_spec_form(client, method, path, status):
    response = client.open(path, method=method)
    fmt = "xml" if not path.endswith(".json") else "json"
    assert_spec_error(response, status, fmt)
    if status == 405:
        assert "GET" in response.headers["Allow"] or "POST" in response.headers["Allow"]
    assert b'"error"' not in response.data and b"validation_failed" not in response.data


def test_unexpected_failure_is_a_spec_500(client, monkeypatch):
    def broken(session):
        raise RuntimeError("boom: SELECT secret FROM somewhere")

    monkeypatch.setattr(requests_service, "list_services", broken)
    for fmt in ("json", "xml"):
        description = assert_spec_error(client.get(f"{BASE}/services.{fmt}"), 500, fmt)
        assert "boom" not in description and "SELECT" not in description


def test_open311_needs_no_token_and_ignores_one(client, auth):
    assert client.get(f"{BASE}/services.json").status_code == 200
    response = client.get(f"{BASE}/services.json", headers={"Authorization": "Bearer garbage"})
    assert response.status_code == 200
    assert client.get(f"{BASE}/services.json", headers=auth("grid_worker")).status_code == 200


def test_api_v1_keeps_its_envelope(client):
    response = client.get("/api/v1/nothing")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


# --------------------------------------------------------------------------- the CLI


def test_cli_add_client_prints_a_working_key_once(app, client, db_session, spot):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["open311", "add-client", "甬城办事", "--jurisdiction", "nb.cn"])
    assert result.exit_code == 0, result.output
    (key,) = re.findall(r"^api_key: (\S+)$", result.output, re.MULTILINE)
    row = db_session.scalar(select(IntegrationClient).where(IntegrationClient.name == "甬城办事"))
    assert row.jurisdiction_id == "nb.cn"
    assert row.api_key_sha256 == open311_clients.hash_api_key(key)
    assert key not in json.dumps({"hash": row.api_key_sha256})
    user = db_session.get(User, row.service_user_id)
    assert user.role == "worker" and user.assignments == []
    assert user.password_hash.startswith("!")  # unusable: no password matches it
    login = client.post("/api/v1/auth/login", json={"username": user.username, "password": ""})
    assert login.status_code in (401, 422)
    form = {"api_key": key, "service_code": "env_garbage", "lat": spot[1], "long": spot[0]}
    assert client.post(f"{BASE}/requests.xml", data=form).status_code == 201
    again = runner.invoke(args=["open311", "add-client", "甬城办事"])
    assert again.exit_code != 0 and "exists already" in again.output


@pytest.fixture
def open311_read_limit(app, monkeypatch):
    """Fresh counters, and a setter of the read limit that is put back afterwards."""
    from gridgov.extensions import limiter

    limiter.reset()
    yield lambda limit: configure(monkeypatch, app, OPEN311_READ_RATE_LIMIT=limit)
    limiter.reset()


def test_public_reads_are_rate_limited_per_address_together(
    client, post_request, open311_read_limit
):
    open311_read_limit("4/minute")
    reads = [
        f"{BASE}/discovery.json",
        f"{BASE}/services.xml",
        f"{BASE}/services/env_garbage.json",
        f"{BASE}/requests.json",
    ]
    assert [client.get(path).status_code for path in reads] == [200, 200, 200, 200]
    for fmt in ("json", "xml"):
        blocked = client.get(f"{BASE}/requests/1.{fmt}")
        assert_spec_error(blocked, 429, fmt)
        assert int(blocked.headers["Retry-After"]) > 0
    # another address has its own count; posting with an api_key is not a public read
    other = client.get(f"{BASE}/services.json", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200
    assert post_request().status_code == 201
