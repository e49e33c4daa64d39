"""The boundary editor (/admin/boundaries) driven in headless Chromium on the demo district: move
an edge, a refused split (its place drawn), merge, split, revert from the history, and a redraw
scheduled for next month then cancelled; each previewed (problems and impact shown) and applied
after the confirmation naming the counts. Screenshots of each preview and confirmation are kept
in pytest's tmp path (`--basetemp=DIR` keeps them in DIR; `-s` prints the paths).

The editor commits real change sets, so it runs on a database of its own (the small demo
district), dropped afterwards: the session's test database stays as the other tests expect it.
"""

import os
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import flask_migrate
import pytest
import shapely
import shapely.affinity
from shapely.geometry import LineString
from sqlalchemy import select
from werkzeug.serving import make_server

from geo.demo_district import generate_district
from gridgov import create_app
from gridgov.extensions import db
from gridgov.models import Area, BoundaryChangeset
from gridgov.services import demo as demo_service
from gridgov.services.demo import DEMO_PASSWORD
from gridgov.spatial import from_db
from tests import dbsetup
from tests.api.test_boundary_edits import GRID, M1, M2, M3
from tests.web.conftest import LiveServer

PAGE_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def editor_server(server) -> Iterator[LiveServer]:
    base_url, _ = server
    name = f"gridgov_editor_test_{os.getpid()}"
    url = dbsetup.recreate_database(base_url, name)
    live = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with live.app_context():
        flask_migrate.upgrade()
        demo_service.load_demo(db.session, areas=generate_district(seed=2024, size="small"))
        db.session.commit()
    http = make_server("127.0.0.1", 0, live, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="editor-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{http.server_port}", app=live)
    finally:
        http.shutdown()
        thread.join(timeout=10)
        with live.app_context():
            db.session.remove()
            db.engine.dispose()
        dbsetup.drop_database(base_url, name)


def shapes(live, *codes):
    with live.app_context():
        rows = db.session.execute(
            select(Area.code, Area.boundary).where(Area.code.in_(codes), Area.retired_at.is_(None))
        ).all()
        db.session.remove()
    return {code: from_db(boundary) for code, boundary in rows}


def latest_changeset(live):
    with live.app_context():
        changeset = db.session.scalars(
            select(BoundaryChangeset).order_by(BoundaryChangeset.id.desc()).limit(1)
        ).one()
        db.session.remove()
    return changeset


class Editor:
    def __init__(self, page, shots):
        self.page, self.shots = page, shots

    def screen(self, lon, lat):
        return self.page.evaluate(
            """([lon, lat]) => {
              const map = window.gridgovEditor.map;
              const p = map.project([lon, lat]);
              const r = map.getCanvas().getBoundingClientRect();
              return [r.left + p.x, r.top + p.y];
            }""",
            [lon, lat],
        )

    def frame(self, shape):
        minx, miny, maxx, maxy = shape.bounds
        self.page.evaluate(
            """(b) => new Promise((done) => {
              const map = window.gridgovEditor.map;
              map.once("idle", () => done());
              map.fitBounds([[b[0], b[1]], [b[2], b[3]]], {padding: 120, animate: false});
            })""",
            [minx, miny, maxx, maxy],
        )
        self.page.wait_for_function("() => window.gridgovEditor.ready", timeout=PAGE_TIMEOUT_MS)
        self.page.wait_for_timeout(300)  # areas of the new view

    def pick(self, *areas):
        self.page.click("#clear-selection")
        for area in areas:
            point = area.representative_point()
            self.page.mouse.click(*self.screen(point.x, point.y))
        self.page.wait_for_function(
            "(n) => window.gridgovEditor.selected.length === n", arg=len(areas)
        )

    def draw_line(self, coordinates, *, ring=False):
        """Click the points; Enter ends a line, a click on the first point closes a ring."""
        self.page.click("#draw")
        for lon, lat in [*coordinates, *coordinates[:1]] if ring else coordinates:
            self.page.mouse.click(*self.screen(lon, lat))
            self.page.wait_for_timeout(150)
        if not ring:
            self.page.keyboard.press("Enter")
        self.page.wait_for_function("() => window.gridgovEditor.drawn !== null")

    def preview(self, name):
        self.page.click("#preview")
        self.page.wait_for_selector("#result", state="visible")
        self.page.wait_for_function("() => window.gridgovEditor.preview !== null")
        path = self.shots / f"{name}-preview.png"
        self.page.screenshot(path=str(path))
        print(f"screenshot: {path}")
        return self.page.text_content("#verdict")

    def confirm(self, name):
        self.page.wait_for_selector("#confirm[open]")
        text = self.page.text_content("#confirm-text")
        path = self.shots / f"{name}-confirm.png"
        self.page.screenshot(path=str(path))
        before = self.page.evaluate("() => (window.gridgovEditor.lastApplied || {}).changeset")
        self.page.click("#confirm-ok")
        self.page.wait_for_function(
            "(b) => (window.gridgovEditor.lastApplied || {}).changeset > (b || 0)",
            arg=before,
            timeout=PAGE_TIMEOUT_MS,
        )
        return text


def test_editor_in_chromium(browser, editor_server, tmp_path):
    live = editor_server.app
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    editor = Editor(page, tmp_path)
    try:
        page.goto(f"{editor_server.url}/admin/boundaries")
        page.fill("#login-username", "town_supervisor")
        page.fill("#login-password", DEMO_PASSWORD)
        page.click("#login-submit")
        page.wait_for_selector("#login-error", state="visible")
        assert "仅限管理员" in page.text_content("#login-error")
        page.fill("#login-username", "admin")
        page.fill("#login-password", DEMO_PASSWORD)
        page.click("#login-submit")
        page.wait_for_function("() => window.gridgovEditor.ready", timeout=PAGE_TIMEOUT_MS)
        assert page.text_content("#history li .badge") == "已生效"  # the demo load

        # Move the edge between M1 and M2: a bent line from one end of their edge to the other.
        m = shapes(live, M1, M2, GRID)
        editor.frame(m[M1].union(m[M2]))
        shared = shapely.line_merge(m[M1].boundary.intersection(m[M2].boundary))
        middle, toward = shared.interpolate(0.5, normalized=True), m[M2].centroid
        bent = (middle.x + 0.3 * (toward.x - middle.x), middle.y + 0.3 * (toward.y - middle.y))
        page.click('.op[data-op="move-edge"]')
        editor.pick(m[M1], m[M2])
        editor.draw_line([shared.coords[0], bent, shared.coords[-1]])
        assert "校验通过" in editor.preview("move-edge"), page.text_content("#problems")
        assert "变动的区域" in page.text_content("#impact")
        page.click("#apply")
        assert "将变动 2 个区域" in editor.confirm("move-edge")
        moved = shapes(live, M1)[M1]
        assert moved.area > m[M1].area
        assert latest_changeset(live).source == "edit:move-edge"

        # A split line that misses the area is refused, with its place drawn on the map.
        m = shapes(live, M1, M2, M3)
        page.click('.op[data-op="split"]')
        editor.pick(m[M3])
        minx, miny, maxx, maxy = m[M3].bounds
        outside = (maxx + (maxx - minx) * 0.3, miny), (maxx + (maxx - minx) * 0.3, maxy)
        editor.frame(m[M3].union(LineString(outside).buffer(0.0001)))
        editor.pick(m[M3])
        editor.draw_line(outside)
        assert "未通过" in editor.preview("split-refused")
        assert "line_misses_area" in page.text_content("#problems")
        assert page.is_disabled("#apply")

        # Merge M2 and M3.
        page.click('.op[data-op="merge"]')
        editor.frame(m[M2].union(m[M3]))
        editor.pick(m[M2], m[M3])
        assert "校验通过" in editor.preview("merge")
        page.click("#apply")
        assert "将变动 2 个区域" in editor.confirm("merge")
        assert M3 not in shapes(live, M3)

        # Split M1 in two with a straight line across it.
        m = shapes(live, M1)
        editor.frame(m[M1])
        minx, miny, maxx, maxy = m[M1].bounds
        x = (minx + maxx) / 2
        page.click('.op[data-op="split"]')
        editor.pick(m[M1])
        editor.draw_line([(x, maxy + (maxy - miny) * 0.1), (x, miny - (maxy - miny) * 0.1)])
        assert "校验通过" in editor.preview("split"), page.text_content("#problems")
        page.click("#apply")
        assert "将变动 2 个区域" in editor.confirm("split")
        split = latest_changeset(live)
        assert split.source == "edit:split" and split.summary["areas"]["created"] == 1

        # Revert the split from the history.
        page.wait_for_selector(f'#history li[data-changeset="{split.id}"] button')
        page.click(f'#history li[data-changeset="{split.id}"] button')
        assert "将变动 2 个区域" in editor.confirm("revert")
        reverting = latest_changeset(live)
        assert reverting.source == f"revert:{split.id}"
        assert shapes(live, M1)[M1].equals_exact(m[M1], tolerance=1e-9)
        page.wait_for_selector(f'#history li[data-changeset="{reverting.id}"]')
        assert f"已被 #{reverting.id} 撤销" in page.text_content(
            f'#history li[data-changeset="{split.id}"]'
        )

        # Schedule a redraw of M2 for next month (a little smaller), then cancel it.
        m = shapes(live, M2)
        editor.frame(m[M2])
        # A few corners far apart: terra-draw closes a ring at a click near its first point.
        smaller = shapely.affinity.scale(m[M2], 0.85, 0.85, origin="centroid").convex_hull
        ring = list(smaller.simplify(smaller.length / 25).exterior.coords)[:-1]
        page.click('.op[data-op="redraw"]')
        editor.pick(m[M2])
        next_month = datetime.now() + timedelta(days=31)
        page.fill("#effective", next_month.strftime("%Y-%m-%dT%H:%M"))
        page.fill("#description", "下月起调整范围")
        editor.draw_line(ring, ring=True)
        assert "校验通过" in editor.preview("redraw-scheduled"), page.text_content("#problems")
        page.click("#apply")
        assert "将于" in editor.confirm("redraw-scheduled")
        scheduled = latest_changeset(live)
        assert (scheduled.status, scheduled.source) == ("pending", "edit:redraw")
        assert shapes(live, M2)[M2].equals_exact(m[M2], tolerance=0)  # not yet
        item = f'#history li[data-changeset="{scheduled.id}"]'
        page.wait_for_selector(item)
        assert page.text_content(f"{item} .badge") == "待生效"
        path = tmp_path / "history.png"
        page.screenshot(path=str(path))
        print(f"screenshot: {path}")
        page.click(f"{item} button")
        page.wait_for_selector("#confirm[open]")
        page.click("#confirm-ok")
        page.wait_for_function(
            "(s) => document.querySelector(s + ' .badge').textContent === '已取消'", arg=item
        )
        assert latest_changeset(live).status == "cancelled"
        assert errors == []
    finally:
        context.close()
