"""GET /workbench in headless Chromium: a town supervisor's day, a stale second supervisor, scope.

Screenshots go to test-artifacts/workbench/ (GRIDGOV_TEST_ARTIFACTS overrides the folder).
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from gridgov.extensions import db
from gridgov.services.demo import DEMO_PASSWORD
from tests.factories import make_user
from tests.web.conftest import login

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("GRIDGOV_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "workbench"
TIMEOUT_MS = 30_000
OUTSIDER = "wb_outsider"  # a worker on duty in another town's grid


@dataclass
class Cases:
    target: int  # the case the supervisor works, in the first grid
    overdue: int  # an older case of the same grid, past its deadline
    elsewhere: int  # a case in another town
    outsider_id: int
    earlier: int  # reported just before the target, same category and place: a possible duplicate


def _report(client, headers, name, category, point) -> int:
    response = client.post(
        "/api/v1/incidents",
        headers=headers,
        json={
            "client_id": f"workbench-{name}",
            "category": category,
            "description": f"工作台测试：{name}",
            "location": {"lon": point[0], "lat": point[1], "crs": "wgs84"},
        },
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


@pytest.fixture(scope="module")
def cases(live_server) -> Iterator[Cases]:
    """Committed cases and an outside worker; deleted again when the module is done."""
    live = live_server.app
    client = live.test_client()
    worker = login(client, "grid_worker")
    with live.app_context():
        first, other = db.session.execute(
            text(
                "SELECT DISTINCT ON (substr(code, 1, 9)) code,"
                " ST_X(ST_PointOnSurface(boundary)), ST_Y(ST_PointOnSurface(boundary))"
                " FROM area WHERE level = 'microgrid' AND code LIKE '33021200%'"
                " ORDER BY substr(code, 1, 9), code LIMIT 2"
            )
        ).all()
        outsider = make_user(db.session, username=OUTSIDER, area_code=other[0][:15])
        outsider_id = outsider.id
        db.session.commit()
    ids = []
    try:
        ids.append(_report(client, worker, "overdue", "fire_corridor", first[1:]))
        ids.append(_report(client, worker, "earlier", "env_garbage", first[1:]))
        ids.append(_report(client, worker, "target", "env_garbage", first[1:]))
        ids.append(_report(client, worker, "elsewhere", "env_garbage", other[1:]))
        with live.app_context():
            db.session.execute(
                text("UPDATE incident SET deadline = now() - interval '3 hours' WHERE id = :id"),
                {"id": ids[0]},
            )
            db.session.commit()
        yield Cases(
            target=ids[2],
            overdue=ids[0],
            elsewhere=ids[3],
            outsider_id=outsider_id,
            earlier=ids[1],
        )
    finally:
        with live.app_context():
            # What the cases and the outsider were notified of goes with them (deliveries
            # cascade).
            db.session.execute(
                text("DELETE FROM notification WHERE incident_id = ANY(:ids) OR user_id = :user"),
                {"ids": ids, "user": outsider_id},
            )
            db.session.execute(
                text("DELETE FROM incident_event WHERE incident_id = ANY(:ids)"), {"ids": ids}
            )
            db.session.execute(text("DELETE FROM incident WHERE id = ANY(:ids)"), {"ids": ids})
            db.session.execute(
                text("DELETE FROM assignment WHERE user_id = :id"), {"id": outsider_id}
            )
            db.session.execute(text("DELETE FROM app_user WHERE id = :id"), {"id": outsider_id})
            db.session.commit()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _state(page) -> dict:
    return page.evaluate(
        """() => { const s = window.gridgovWorkbench;
          return JSON.parse(JSON.stringify({...s, people: [...s.people.keys()]})); }"""
    )


def _open(browser, live_server, username):
    context = browser.new_context(viewport={"width": 1500, "height": 950}, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server.url}/workbench")
    page.fill("#login-username", username)
    page.fill("#login-password", DEMO_PASSWORD)
    page.click("#login-submit")
    page.wait_for_function("() => window.gridgovWorkbench.ready", timeout=TIMEOUT_MS)
    return context, page, errors


def _queue_ids(page) -> list[int]:
    return [item["id"] for item in _state(page)["queue"]]


def _wait_loads(page, before: int) -> None:
    page.wait_for_function(
        "(n) => window.gridgovWorkbench.loads > n", arg=before, timeout=TIMEOUT_MS
    )


def _open_case(page, incident_id: int, status: str) -> None:
    page.click(f'#queue-rows tr[data-id="{incident_id}"]')
    page.wait_for_function(
        "([id, status]) => { const c = window.gridgovWorkbench.selected;"
        " return c && c.id === id && c.status === status; }",
        arg=[incident_id, status],
        timeout=TIMEOUT_MS,
    )


def _buttons(page) -> list[str]:
    return page.eval_on_selector_all("#case-actions button", "bs => bs.map(b => b.dataset.action)")


def _act(page, action: str, note: str = "", status: str | None = None, **choose) -> None:
    loads = _state(page)["loads"]
    page.click(f'#case-actions button[data-action="{action}"]')
    page.wait_for_selector("#action-form", state="visible")
    if "assignee" in choose:
        page.wait_for_selector(
            f'#a-assignee option[value="{choose["assignee"]}"]', state="attached"
        )
        page.select_option("#a-assignee", str(choose["assignee"]))
    if note:
        page.fill("#a-note", note)
    page.click("#action-submit")
    if status:
        page.wait_for_function(
            "(s) => window.gridgovWorkbench.selected.status === s", arg=status, timeout=TIMEOUT_MS
        )
        _wait_loads(page, loads)


def test_a_town_supervisors_day_in_the_workbench(browser, live_server, cases, demo_users):
    api = live_server.app.test_client()
    worker_headers = login(api, "grid_worker")
    context, page, errors = _open(browser, live_server, "town_supervisor")
    second = None
    try:
        # The queue: open cases of the town, overdue first; nothing from another town.
        queue = _queue_ids(page)
        assert cases.overdue in queue and cases.target in queue
        assert cases.elsewhere not in queue
        assert queue.index(cases.overdue) < queue.index(cases.target)
        assert _state(page)["queue"][0]["overdue"] is True
        counts = _state(page)["counts"]
        assert counts["by_status"]["reported"] >= 2 and counts["overdue"] >= 1
        # Pickers hold only the caller's subtree: its own areas, its own people.
        areas = page.eval_on_selector_all("#f-area option", "os => os.map(o => o.value)")
        assert areas[1:] and all(code.startswith("330212001") for code in areas[1:])
        assert cases.outsider_id not in _state(page)["people"]
        assert demo_users["grid_worker"].id in _state(page)["people"]

        # The indicators before: this month's closed cases in the town.
        page.click("#tab-stats")
        page.wait_for_function("() => window.gridgovWorkbench.stats.ranking", timeout=TIMEOUT_MS)
        closed_before = _state(page)["stats"]["indicators"]["counts"]["closed"]
        _shot(page, "4-indicators-before")
        page.click("#tab-queue")

        # Filter by category: the rubbish case only.
        loads = _state(page)["loads"]
        page.select_option("#f-category", "env_garbage")
        _wait_loads(page, loads)
        assert cases.target in _queue_ids(page) and cases.overdue not in _queue_ids(page)
        assert {i["category"] for i in _state(page)["queue"]} == {"env_garbage"}

        _open_case(page, cases.target, "reported")
        assert _buttons(page) == ["accept", "reject", "duplicate", "escalate", "comment"]
        page.wait_for_function("(id) => window.gridgovWorkbench.mapShown === id", arg=cases.target)
        # The earlier report at the same place is offered as a possible duplicate.
        page.wait_for_selector(f"#case-duplicates a[data-incident='{cases.earlier}']")
        _shot(page, "1-queue-and-case")
        _act(page, "accept", status="accepted")
        assert "dispatch" in _buttons(page)

        # Dispatch: the picker lists who is on duty in the grid, grid head first, nobody else.
        grid_worker, grid_head = demo_users["grid_worker"].id, demo_users["grid_head"].id
        page.click('#case-actions button[data-action="dispatch"]')
        page.wait_for_selector(f'#a-assignee option[value="{grid_worker}"]', state="attached")
        options = page.eval_on_selector_all("#a-assignee option", "os => os.map(o => o.value)")
        assert options == ["", str(grid_head), str(grid_worker)]
        _shot(page, "2-dispatch-picker")
        page.click("#action-cancel")
        _act(page, "dispatch", status="dispatched", assignee=grid_worker)
        assert _state(page)["selected"]["handler_id"] == grid_worker

        # The worker resolves it from the phone (the API).
        for action, note in (("start", ""), ("resolve", "已清理")):
            response = api.post(
                f"/api/v1/incidents/{cases.target}/actions",
                headers=worker_headers,
                json={"action": action, "note": note},
            )
            assert response.status_code == 200, response.get_json()

        # A second supervisor (the district's) opens the resolved case too.
        second_context, second, second_errors = _open(browser, live_server, "district_supervisor")
        second.select_option("#f-category", "env_garbage")
        second.wait_for_selector(f'#queue-rows tr[data-id="{cases.target}"]')
        _open_case(second, cases.target, "resolved")

        # The town supervisor reloads the case, verifies and closes it.
        page.select_option("#f-category", "")
        page.wait_for_selector(f'#queue-rows tr[data-id="{cases.target}"]')
        _open_case(page, cases.target, "resolved")
        assert set(_buttons(page)) == {"verify", "return", "comment"}
        _act(page, "verify", status="verified")
        _act(page, "close", status="closed")
        assert _buttons(page) == ["comment"]
        timeline = page.eval_on_selector_all(
            "#case-timeline li", "items => items.map(i => i.dataset.action)"
        )
        assert timeline == ["report", "accept", "dispatch", "start", "resolve", "verify", "close"]
        assert cases.target not in _queue_ids(page)  # closed: out of the open queue

        # The second supervisor's page is stale: sending it back is refused with a clear message.
        _act(second, "return", note="复核未到位")
        second.wait_for_selector("#case-error", state="visible")
        assert _state(second)["lastActionResult"]["status"] == 412
        message = second.text_content("#case-error")
        assert "已被他人更新" in message and "刷新案件" in message
        _shot(second, "3-stale-412")
        second.click("#case-reload")
        second.wait_for_function(
            "() => window.gridgovWorkbench.selected.status === 'closed'", timeout=TIMEOUT_MS
        )
        assert second_errors == []
        second_context.close()

        # The indicators after: one more closed case this month.
        page.click("#tab-stats")
        page.wait_for_function(
            "(n) => window.gridgovWorkbench.stats.indicators.counts.closed > n",
            arg=closed_before,
            timeout=TIMEOUT_MS,
        )
        assert _state(page)["stats"]["indicators"]["counts"]["closed"] == closed_before + 1
        assert page.eval_on_selector_all("#s-trend canvas", "cs => cs.length") == 1
        _shot(page, "4-indicators-after")
        with page.expect_download() as download:
            page.click("#s-csv-indicators")
        assert download.value.suggested_filename.startswith("indicators-330212001-")
        csv_text = Path(download.value.path()).read_text(encoding="utf-8-sig")
        assert csv_text.startswith("area_code,") and "closure_rate" in csv_text
        assert errors == [] and _state(page)["errors"] == []
    finally:
        context.close()


def test_the_dispatch_picker_and_lists_stay_inside_the_callers_subtree(browser, live_server, cases):
    """The district sees the other town's case; the town supervisor never gets its workers."""
    context, page, errors = _open(browser, live_server, "district_supervisor")
    try:
        assert cases.elsewhere in _queue_ids(page)
        assert cases.outsider_id in _state(page)["people"]
        assert errors == []
    finally:
        context.close()
    client = live_server.app.test_client()
    town = login(client, "town_supervisor")
    other_grid = client.get(f"/api/v1/incidents/{cases.elsewhere}", headers=town)
    assert other_grid.status_code == 404
    listed = client.get("/api/v1/users?limit=500", headers=town).get_json()["items"]
    assert cases.outsider_id not in {u["id"] for u in listed}
    grid = client.get(f"/api/v1/incidents/{cases.elsewhere}", headers=login(client, "admin"))
    grid_code = grid.get_json()["routing"]["grid"]["code"]
    assert client.get(f"/api/v1/areas/{grid_code}/workers", headers=town).status_code == 403


def test_the_workbench_page_is_public_under_the_strict_csp(client):
    response = client.get("/workbench")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
    html = response.get_data(as_text=True)
    assert "<script>" not in html and " style=" not in html and "http" not in html.split("<body")[0]


@pytest.fixture
def todays_patrol(live_server) -> Iterator[int]:
    """A finished patrol of the demo worker through two micro-grids of their grid, committed."""
    live = live_server.app
    client = live.test_client()
    worker = login(client, "grid_worker")
    with live.app_context():
        stops = db.session.execute(
            text(
                "SELECT ST_X(ST_PointOnSurface(boundary)), ST_Y(ST_PointOnSurface(boundary))"
                " FROM area WHERE level = 'microgrid' AND code LIKE '330212001001001%'"
                " ORDER BY code LIMIT 2"
            )
        ).all()
    begun = datetime.now(UTC)
    started = client.post(
        "/api/v1/patrols",
        headers=worker,
        json={"client_id": "workbench-patrol", "started_at": begun.isoformat()},
    ).get_json()
    points = [
        {"lon": lon, "lat": lat, "t": (begun + timedelta(seconds=1 + 10 * i)).isoformat()}
        for i, (lon, lat) in enumerate(stops)
    ]
    assert (
        client.post(
            f"/api/v1/patrols/{started['id']}/track", headers=worker, json={"points": points}
        ).status_code
        == 200
    )
    assert client.post(f"/api/v1/patrols/{started['id']}/finish", headers=worker).status_code == 200
    try:
        yield started["id"]
    finally:
        with live.app_context():
            db.session.execute(text("DELETE FROM patrol WHERE id = :id"), {"id": started["id"]})
            db.session.commit()


def test_the_patrol_tab_shows_todays_track_and_the_unpatrolled_microgrids(
    browser, live_server, todays_patrol
):
    context, page, errors = _open(browser, live_server, "town_supervisor")
    try:
        page.click("#tab-patrols")
        page.wait_for_function(
            "() => window.gridgovWorkbench.patrolsShown >= 1", timeout=TIMEOUT_MS
        )
        patrols = _state(page)["patrols"]
        assert todays_patrol in [t["patrol_id"] for t in patrols["tracks"]]
        assert patrols["microgrids"] == 18
        assert "330212001001001001" not in patrols["unpatrolled"]
        assert len(patrols["unpatrolled"]) <= 16
        assert "未巡查" in page.text_content("#p-summary")
        _shot(page, "5-patrols")
        assert errors == [] and _state(page)["errors"] == []
    finally:
        context.close()
