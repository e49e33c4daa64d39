"""GET /map: the supervisor map page, its headers and assets, and the page itself in Chromium."""

import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask

from config import load_config
from geo.levels import LEVELS
from gridgov.services.demo import DEMO_PASSWORD
from gridgov.settings import install_settings
from gridgov.web import register_web

VENDOR = Path(__file__).resolve().parents[2] / "gridgov/web/static/vendor/maplibre-gl"
PAGE_TIMEOUT_MS = 30_000


# ------------------------------------------------------------------ the page over HTTP


class _PageScan(HTMLParser):
    """Collects what a strict CSP would refuse: inline scripts, style attributes, handlers."""

    def __init__(self):
        super().__init__()
        self.scripts: list[dict] = []
        self.inline_script = False
        self.style_elements = 0
        self.forbidden_attributes: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name in attributes:
            if name == "style" or name.startswith("on"):
                self.forbidden_attributes.append(f"<{tag} {name}>")
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True
        if tag == "style":
            self.style_elements += 1

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_script = True


def test_map_page_is_public_and_sends_security_headers(client):
    response = client.get("/map")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    csp = dict(
        part.strip().partition(" ")[::2] for part in headers["Content-Security-Policy"].split(";")
    )
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'"
    assert csp["style-src"] == "'self'"
    assert csp["connect-src"] == "'self'"
    assert csp["worker-src"] == "'self' blob:"
    assert csp["frame-ancestors"] == "'none'"
    assert "unsafe" not in headers["Content-Security-Policy"]


def test_map_page_has_no_inline_script_or_style(client):
    scan = _PageScan()
    scan.feed(client.get("/map").get_data(as_text=True))

    assert scan.scripts == [{"type": "module", "src": "/map/static/map.js"}]
    assert not scan.inline_script
    assert scan.style_elements == 0
    assert scan.forbidden_attributes == []


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [
        ("/map/static/map.js", "text/javascript"),
        ("/map/static/map.css", "text/css"),
        ("/map/static/vendor/maplibre-gl/maplibre-gl.mjs", "text/javascript"),
        ("/map/static/vendor/maplibre-gl/maplibre-gl-worker.mjs", "text/javascript"),
        ("/map/static/vendor/maplibre-gl/maplibre-gl.css", "text/css"),
    ],
)
def test_static_files_are_public(client, path, mimetype):
    response = client.get(path)

    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    response.close()


def test_the_data_still_needs_a_token(client):
    response = client.get("/api/v1/incidents?format=geojson")

    assert response.status_code == 401
    assert response.get_json()["error"] == "token_missing"


def _bare_app(**config) -> Flask:
    app = Flask(__name__)
    app.config.update(load_config("test"), **config)
    install_settings(app)
    register_web(app)
    return app


def _data(html: str, name: str) -> str:
    return re.search(rf'data-{name}="([^"]*)"', html).group(1)


def test_source_is_geojson_without_a_tiles_route_and_tiles_with_one():
    without = _bare_app().test_client()
    with_tiles = _bare_app()
    with_tiles.add_url_rule("/tiles/<layer>/<int:z>/<int:x>/<int:y>.mvt", "tiles", lambda **kw: "")
    with_tiles = with_tiles.test_client()

    assert _data(without.get("/map").get_data(as_text=True), "source") == "geojson"
    assert _data(with_tiles.get("/map").get_data(as_text=True), "source") == "tiles"


@pytest.mark.parametrize(
    ("query", "expected"),
    [("?source=tiles", "tiles"), ("?source=geojson", "geojson"), ("?source=bogus", "geojson")],
)
def test_the_source_query_parameter_wins(query, expected):
    html = _bare_app().test_client().get(f"/map{query}").get_data(as_text=True)

    assert _data(html, "source") == expected


def test_a_basemap_style_url_is_handed_over_and_allowed_by_the_csp():
    app = _bare_app(MAP_BASEMAP_STYLE_URL="https://maps.example.cn:8443/styles/light.json")
    response = app.test_client().get("/map")

    assert _data(response.get_data(as_text=True), "basemap-style") == (
        "https://maps.example.cn:8443/styles/light.json"
    )
    csp = response.headers["Content-Security-Policy"]
    assert "connect-src 'self' https://maps.example.cn:8443;" in csp
    assert "img-src 'self' data: blob: https://maps.example.cn:8443;" in csp


def test_the_area_levels_come_from_the_server(client):
    """map.js keeps no list of levels: the page hands it the registry as JSON."""
    html = client.get("/map").get_data(as_text=True)
    levels = json.loads(re.search(r"data-levels='([^']*)'", html).group(1))
    assert levels == LEVELS.as_config()
    assert [level["name"] for level in levels][-1] == "microgrid"
    script = (Path(register_web.__code__.co_filename).parent / "static/map.js").read_text()
    assert '"microgrid"' not in script and "微网格" not in script


def test_no_basemap_by_default(client):
    html = client.get("/map").get_data(as_text=True)

    assert _data(html, "basemap-style") == ""


def test_vendored_maplibre_matches_its_version_record():
    record = (VENDOR / "VERSION").read_text().splitlines()
    version = record[0].split()[1]
    sums = dict(line.split()[::-1] for line in record if re.match(r"^[0-9a-f]{64}  ", line))

    assert set(sums) == {
        "maplibre-gl.mjs",
        "maplibre-gl-worker.mjs",
        "maplibre-gl.css",
        "LICENSE.txt",
    }
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert f"`{version}`" in (VENDOR / "maplibre-gl.mjs").read_text()[:4000]
    assert "BSD" in (VENDOR / "LICENSE.txt").read_text()


# ------------------------------------------------------------------ the page in Chromium

READY = """
(want) => {
  const s = window.gridgovMap;
  return !!s && s.ready && s.pending === 0 && s.counts.grids > 0
    && want.every((id) => s.renderedIncidentIds.includes(id));
}
"""
GONE = """
(id) => {
  const s = window.gridgovMap;
  return s.pending === 0 && s.idles > 0 && !s.renderedIncidentIds.includes(id);
}
"""


def _state(page) -> dict:
    return page.evaluate("() => JSON.parse(JSON.stringify({...window.gridgovMap, map: null}))")


def _click_incident(page, incident) -> None:
    x, y = page.evaluate(
        """([lon, lat]) => {
          const map = window.gridgovMap.map;
          const p = map.project([lon, lat]);
          const r = map.getCanvas().getBoundingClientRect();
          return [r.left + p.x, r.top + p.y];
        }""",
        [incident.lon, incident.lat],
    )
    page.mouse.click(x, y)
    page.wait_for_selector(
        f'#detail[data-incident-id="{incident.id}"]', state="visible", timeout=PAGE_TIMEOUT_MS
    )


def _timeline_actions(page) -> list[str]:
    return page.eval_on_selector_all("#timeline li", "items => items.map(i => i.dataset.action)")


@pytest.mark.parametrize("source", ["geojson", "tiles"])
def test_supervisor_map_in_chromium(browser, live_server, map_incidents, source, tmp_path):
    accepted, overdue, dispatched = (
        map_incidents["accepted"],
        map_incidents["overdue"],
        map_incidents["dispatched"],
    )
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    try:
        page.goto(f"{live_server.url}/map?source={source}")
        assert page.get_attribute("body", "data-source") == source

        # A wrong password is refused on the form.
        page.fill("#login-username", "town_supervisor")
        page.fill("#login-password", "wrong-password")
        page.click("#login-submit")
        page.wait_for_selector("#login-error", state="visible")
        assert "不正确" in page.text_content("#login-error")
        console_errors.clear()  # the browser logs the refused login's 401

        page.fill("#login-password", DEMO_PASSWORD)
        page.click("#login-submit")
        page.wait_for_selector("#workspace", state="visible")

        # Frame our three incidents, then wait for grids and all three to be drawn.
        page.evaluate(
            """(points) => {
              const wait = () => new Promise((ok) => {
                const s = window.gridgovMap;
                if (s.ready) ok(); else setTimeout(() => wait().then(ok), 50);
              });
              return wait().then(() => {
                const lons = points.map((p) => p[0]), lats = points.map((p) => p[1]);
                window.gridgovMap.map.fitBounds(
                  [[Math.min(...lons), Math.min(...lats)], [Math.max(...lons), Math.max(...lats)]],
                  {padding: 160, maxZoom: 16, animate: false});
              });
            }""",
            [[i.lon, i.lat] for i in map_incidents.values()],
        )
        ids = [i.id for i in map_incidents.values()]
        page.wait_for_function(READY, arg=ids, timeout=PAGE_TIMEOUT_MS)
        state = _state(page)
        assert state["source"] == source
        assert state["counts"]["grids"] >= 1
        assert state["counts"]["overdue"] >= 1
        assert state["byStatus"].get("accepted", 0) >= 1
        assert state["byStatus"].get("dispatched", 0) >= 1
        # GET /api/v1/categories answers: the filter lists every category by name.
        assert state["categorySource"] == "api"
        options = page.eval_on_selector_all("#filter-category option", "os => os.map(o => o.value)")
        assert {"env_garbage", "fire_corridor", "facility_streetlight"} <= set(options)

        # Clicking an incident shows its details and its timeline.
        _click_incident(page, accepted)
        assert page.text_content("#detail-id") == str(accepted.id)
        assert page.get_attribute("#detail-status", "data-status") == "accepted"
        assert _timeline_actions(page) == list(accepted.actions)
        assert "测试accept" in page.text_content("#timeline")

        _click_incident(page, overdue)
        assert page.get_attribute("#detail-status", "data-status") == "reported"
        assert page.is_visible("#detail .badge-overdue")
        assert _timeline_actions(page) == ["report"]

        # An expired access token is renewed with the refresh token before the next call.
        page.evaluate(
            """() => {
              const key = "gridgov.map.auth";
              const s = JSON.parse(sessionStorage.getItem(key));
              sessionStorage.setItem(key, JSON.stringify({...s, access: "expired", expiresAt: 0}));
            }"""
        )
        _click_incident(page, dispatched)
        assert page.get_attribute("#detail-status", "data-status") == "dispatched"
        assert _timeline_actions(page) == ["report", "accept", "dispatch"]
        stored = json.loads(page.evaluate("() => sessionStorage.getItem('gridgov.map.auth')"))
        assert stored["access"] != "expired" and stored["expiresAt"] > 0
        assert context.cookies() == []  # tokens never go into a cookie

        page.screenshot(path=str(tmp_path / f"map-{source}.png"))
        print(f"screenshot: {tmp_path / f'map-{source}.png'}")

        # The status filter hides what is unchecked.
        page.uncheck('#status-legend input[value="accepted"]')
        page.wait_for_function(GONE, arg=accepted.id, timeout=PAGE_TIMEOUT_MS)
        assert dispatched.id in _state(page)["renderedIncidentIds"]

        assert _state(page)["errors"] == []
        assert console_errors == []
    finally:
        context.close()
