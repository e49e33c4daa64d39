"""Interoperability check: a standard Open311 client against a live gridgov server.

The client is `georeport` from PyPI (Python 3, maintained, GET methods only: it cannot POST).
It is not a project dependency; install it beside the project's venv and run::

    .venv/bin/python -m pip install --target /tmp/georeport georeport
    PYTHONPATH=/tmp/georeport .venv/bin/python bench/open311_interop.py

The script makes a throw-away database (on DATABASE_URL's server or the private cluster),
migrates it, loads the small demo district, creates an Open311 client, serves the real app on
a free 127.0.0.1 port (the only address contacted), posts a request form-encoded with urllib
(as any GeoReport client does), then reads everything back through georeport in JSON and in
XML (georeport parses XML with xmltodict). It exits non-zero on the first mismatch and drops
the database at the end. The other PyPI clients (`open311` 1.1, `three` 0.8) are Python 2 only.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

os.environ.setdefault("GRIDGOV_ENV", "test")

import flask_migrate  # noqa: E402
from sqlalchemy import select  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from geo.demo_district import generate_district  # noqa: E402
from gridgov import create_app  # noqa: E402
from gridgov.extensions import db  # noqa: E402
from gridgov.models import Area  # noqa: E402
from gridgov.services import demo as demo_service  # noqa: E402
from gridgov.services import open311_clients  # noqa: E402
from gridgov.spatial import from_db  # noqa: E402
from tests import dbsetup  # noqa: E402

try:
    from georeport import GeoReport
except ImportError:  # pragma: no cover - told how to install it
    sys.exit(__doc__)

DB_NAME = "gridgov_open311_interop"
HOST = "127.0.0.1"
MICROGRID = "330212001001001001"


def check(condition: bool, what: str) -> None:
    print(f"  {'ok  ' if condition else 'FAIL'} {what}")
    if not condition:
        raise SystemExit(1)


def prepare(url: str) -> tuple[object, str, tuple[float, float]]:
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        flask_migrate.upgrade()
        demo_service.load_demo(db.session, areas=generate_district(seed=2024, size="small"))
        created = open311_clients.create_client(db.session, name="interop check")
        db.session.commit()
        boundary = db.session.scalar(select(Area.boundary).where(Area.code == MICROGRID))
        point = from_db(boundary).representative_point()
        db.session.remove()
    return app, created.api_key, (round(point.x, 7), round(point.y, 7))


def post_form(root: str, fmt: str, form: dict) -> tuple[int, bytes]:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(
        f"{root}/requests.{fmt}",
        data=data,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def run(root: str, api_key: str, point: tuple[float, float]) -> None:
    lon, lat = point
    form = {
        "api_key": api_key,
        "service_code": "hazard_gas",
        "lat": lat,
        "long": lon,
        "description": "楼道里闻到煤气味",
        "attribute[floor]": "5",
        "attribute[hazard_level]": "high",
        "account_id": "interop-1",
    }
    status, body = post_form(root, "json", form)
    check(status == 201, f"POST requests.json form-encoded → {status}")
    request_id = json.loads(body)[0]["service_request_id"]
    status, body = post_form(root, "xml", {**form, "description": "燃气表漏气"})
    check(status == 201 and b"<service_requests><request>" in body, "POST requests.xml → 201")
    status, body = post_form(root, "json", {**form, "api_key": "wrong"})
    check(status == 403 and json.loads(body)[0]["code"] == 403, "bad api_key → 403, spec form")

    for fmt in ("json", "xml"):
        print(f"georeport, output_format={fmt}:")
        client = GeoReport(root, api_key=api_key, output_format=fmt)
        services = client.get_service_list()
        codes = {s["service_code"] for s in services}
        check({"hazard_gas", "env_garbage"} <= codes, f"get_service_list: {len(services)} services")
        definition = client.get_service_definition("hazard_gas")
        attributes = definition["attributes"]
        if fmt == "xml":  # xmltodict: <attributes><attribute>… → {"attribute": [...]}
            attributes = attributes["attribute"]
        check(
            [a["code"] for a in attributes] == ["floor", "hazard_level"],
            "get_service_definition: floor, hazard_level",
        )
        requests_ = client.get_service_requests(service_request_id=str(request_id))
        if isinstance(requests_, dict):  # xmltodict gives one element as a dict
            requests_ = [requests_]
        check(
            [str(r["service_request_id"]) for r in requests_] == [str(request_id)],
            "get_service_requests(service_request_id=…)",
        )
        listed = client.get_service_requests(service_code="hazard_gas", status="open")
        if isinstance(listed, dict):
            listed = [listed]
        check(len(listed) == 2, f"get_service_requests(service_code, status=open): {len(listed)}")
        one = client.get_service_request(str(request_id))
        check(
            one["status"] == "open" and one["service_code"] == "hazard_gas",
            f"get_service_request: {one['status']}, {one['status_notes']}",
        )
        check("interop-1" not in json.dumps(one, ensure_ascii=False), "no account_id published")


def main() -> int:
    base_url, cluster, started = dbsetup.server_url()
    url = dbsetup.recreate_database(base_url, DB_NAME)
    app = server = None
    try:
        app, api_key, point = prepare(url)
        server = make_server(HOST, 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        root = f"http://{HOST}:{server.server_port}/open311/v2"
        print(f"serving {root}")
        run(root, api_key, point)
        print("interop: all checks passed")
        return 0
    finally:
        if server is not None:
            server.shutdown()
        if app is not None:
            with app.app_context():
                db.engine.dispose()
        dbsetup.drop_database(base_url, DB_NAME)
        if started and cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
