"""People and assignments: users, assignment rules, deactivation, who is on duty, handlers."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from gridgov.models import Area, Assignment, User
from gridgov.services import accounts as account_service
from gridgov.services import duty as duty_service
from tests.factories import make_assignment, make_user
from tests.helpers import bearer

DISTRICT = "330212"
TOWN = "330212001"  # town_supervisor's area
COMMUNITY = "330212001001"
HEAD_GRID = "330212001001001"  # grid_head's grid (three micro-grids)
WORKER_MICROGRID = "330212001001001001"  # grid_worker's micro-grid
SIBLING_MICROGRID = "330212001001001002"
EMPTY_GRID = "330212001001002"  # nobody assigned in the demo
EMPTY_MICROGRID = "330212001001002001"
OTHER_TOWN_GRID = "330212002001001"
PASSWORD = "correct-horse-battery"


def iso(moment: datetime) -> str:
    return moment.isoformat()


def create_user(client, auth, **body):
    body = {"role": "worker", "password": PASSWORD, **body}
    return client.post("/api/v1/users", json=body, headers=auth("admin"))


def assign(client, auth, user_id, area, duty, **extra):
    body = {"user": user_id, "area": area, "duty": duty, **extra}
    return client.post("/api/v1/assignments", json=body, headers=auth("admin"))


def assigned(client, auth, user_id, area, duty, **extra) -> dict:
    response = assign(client, auth, user_id, area, duty, **extra)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def error_of(response) -> str:
    return response.get_json()["error"]


def workers(client, headers, code) -> list[tuple[str, str, str]]:
    response = client.get(f"/api/v1/areas/{code}/workers", headers=headers)
    assert response.status_code == 200, response.get_json()
    return [(i["user"]["username"], i["duty"], i["area"]) for i in response.get_json()["items"]]


def usernames(response) -> set[str]:
    assert response.status_code == 200, response.get_json()
    return {item["username"] for item in response.get_json()["items"]}


def area_id(session, code: str) -> int:
    return session.scalar(select(Area.id).where(Area.code == code))


# --- the token gate -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, url",
    [
        ("get", "/api/v1/users"),
        ("post", "/api/v1/users"),
        ("get", "/api/v1/users/1"),
        ("patch", "/api/v1/users/1"),
        ("get", "/api/v1/assignments"),
        ("post", "/api/v1/assignments"),
        ("delete", "/api/v1/assignments/1"),
        ("get", f"/api/v1/areas/{HEAD_GRID}/workers"),
    ],
)
def test_no_token_is_401(client, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == 401
    assert error_of(response) == "token_missing"


# --- creating users -------------------------------------------------------------------------


def test_admin_creates_a_user_who_can_log_in(client, auth, caplog):
    caplog.set_level(logging.INFO, logger="gridgov.audit")
    response = create_user(client, auth, username="li.ming", display_name="李明")
    assert response.status_code == 201
    body = response.get_json()
    assert body["username"] == "li.ming"
    assert body["display_name"] == "李明"
    assert body["role"] == "worker"
    assert body["is_active"] is True
    assert body["areas"] == [] and body["assignments"] == []
    assert not {"password", "password_hash"} & set(body)
    assert "audit admin create_user" in caplog.text
    login = client.post("/api/v1/auth/login", json={"username": "LI.MING", "password": PASSWORD})
    assert login.status_code == 200


def test_duplicate_username_in_another_case_is_409(client, auth):
    assert create_user(client, auth, username="Wang_Fang").status_code == 201
    response = create_user(client, auth, username="wang_fang")
    assert response.status_code == 409
    assert error_of(response) == "username_taken"
    assert error_of(create_user(client, auth, username="GRID_WORKER")) == "username_taken"


def test_a_race_on_the_unique_index_is_still_409(client, auth, monkeypatch):
    # The service's check sees nothing (as when another request inserts first); the index does.
    monkeypatch.setattr(account_service, "_username_taken", lambda session, username: False)
    response = create_user(client, auth, username="Grid_Head")
    assert response.status_code == 409
    assert error_of(response) == "username_taken"
    # The savepoint kept the transaction usable.
    assert create_user(client, auth, username="after_the_race").status_code == 201


@pytest.mark.parametrize("password", ["short", "123456789", ""])
def test_weak_password_is_422(client, auth, password):
    response = create_user(client, auth, username="weakling", password=password)
    assert response.status_code == 422
    assert error_of(response) == "weak_password"
    assert "password" in response.get_json()["errors"]["json"]


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab"},
        {"username": "has space"},
        {"username": "x" * 65},
        {"username": "张三"},
        {"username": "fine_name", "role": "overlord"},
        {"username": "fine_name", "role": None},
    ],
)
def test_invalid_user_fields_are_422(client, auth, body):
    response = create_user(client, auth, **body)
    assert response.status_code == 422
    assert error_of(response) == "validation_failed"


@pytest.mark.parametrize("username", ["town_supervisor", "grid_worker"])
def test_only_admins_create_users(client, auth, username):
    response = client.post(
        "/api/v1/users",
        json={"username": "sneaky", "role": "admin", "password": PASSWORD},
        headers=auth(username),
    )
    assert response.status_code == 403
    assert error_of(response) == "forbidden"


# --- listing and reading users --------------------------------------------------------------


def test_worker_cannot_list_users_or_assignments(client, auth):
    for url in ("/api/v1/users", "/api/v1/assignments"):
        response = client.get(url, headers=auth("grid_worker"))
        assert response.status_code == 403
        assert error_of(response) == "forbidden"


def test_admin_lists_everyone_with_their_current_areas(client, auth):
    response = client.get("/api/v1/users", headers=auth("admin"))
    items = {item["username"]: item for item in response.get_json()["items"]}
    assert set(items) >= {"admin", "district_supervisor", "town_supervisor", "grid_head"}
    assert items["grid_worker"]["areas"] == [WORKER_MICROGRID]
    assert items["admin"]["areas"] == []
    assert items["grid_head"]["role"] == "worker"
    assert response.get_json()["next_cursor"] is None


def test_supervisor_sees_only_their_subtree(client, db_session, auth):
    make_user(db_session, username="other_town_worker", area_code=OTHER_TOWN_GRID)
    make_user(db_session, username="unassigned_worker")
    town = usernames(client.get("/api/v1/users", headers=auth("town_supervisor")))
    assert town == {"town_supervisor", "grid_head", "grid_worker"}
    district = usernames(client.get("/api/v1/users", headers=auth("district_supervisor")))
    assert district >= {
        "district_supervisor",
        "town_supervisor",
        "grid_worker",
        "other_town_worker",
    }
    assert not {"admin", "unassigned_worker"} & district


def test_supervisor_no_longer_sees_a_worker_whose_assignment_ended(client, db_session, auth):
    worker = make_user(db_session, username="moved_on")
    make_assignment(
        db_session,
        user=worker,
        area_code=EMPTY_GRID,
        active_from=datetime.now(UTC) - timedelta(days=30),
        active_to=datetime.now(UTC) - timedelta(days=1),
    )
    assert "moved_on" not in usernames(client.get("/api/v1/users", headers=auth("town_supervisor")))
    response = client.get(f"/api/v1/users/{worker.id}", headers=auth("town_supervisor"))
    assert response.status_code == 404


@pytest.mark.parametrize(
    "query, expected",
    [
        ("role=supervisor", {"district_supervisor", "town_supervisor"}),
        (f"area={HEAD_GRID}", {"grid_head", "grid_worker"}),
        (f"area={WORKER_MICROGRID}", {"grid_worker"}),
        ("q=GRID_", {"grid_head", "grid_worker"}),
        ("q=网格", {"grid_head", "grid_worker"}),  # display names 网格长, 专职网格员
        ("q=%25", set()),  # a literal %, not a wildcard
        ("active=false", set()),
    ],
)
def test_user_filters(client, auth, query, expected):
    assert usernames(client.get(f"/api/v1/users?{query}", headers=auth("admin"))) == expected


def test_user_list_pages_with_a_cursor(client, db_session, auth):
    for i in range(5):
        make_user(db_session, username=f"pager_{i}")
    seen, cursor, pages = [], None, 0
    while True:
        url = "/api/v1/users?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=auth("admin")).get_json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) >= 10
    assert pages == (len(seen) + 1) // 2
    bad = client.get("/api/v1/users?cursor=bm9wZQ", headers=auth("admin"))
    assert bad.status_code == 422 and error_of(bad) == "invalid_cursor"


def test_user_detail_for_self_supervisor_and_admin(client, demo_users, auth):
    worker_id = demo_users["grid_worker"].id
    for viewer in ("grid_worker", "town_supervisor", "district_supervisor", "admin"):
        response = client.get(f"/api/v1/users/{worker_id}", headers=auth(viewer))
        assert response.status_code == 200, viewer
        body = response.get_json()
        assert body["areas"] == [WORKER_MICROGRID]
        [assignment] = body["assignments"]
        assert assignment["area"] == WORKER_MICROGRID and assignment["duty"] == "full_time"
        assert assignment["active_to"] is None and assignment["active"] is True


@pytest.mark.parametrize(
    "viewer, target",
    [
        ("grid_worker", "grid_head"),
        ("grid_head", "town_supervisor"),
        ("town_supervisor", "district_supervisor"),
        ("town_supervisor", "admin"),
    ],
)
def test_user_outside_scope_is_404(client, demo_users, auth, viewer, target):
    response = client.get(f"/api/v1/users/{demo_users[target].id}", headers=auth(viewer))
    assert response.status_code == 404
    assert error_of(response) == "user_not_found"


def test_unknown_user_is_404(client, auth):
    response = client.get("/api/v1/users/999999", headers=auth("admin"))
    assert response.status_code == 404
    assert error_of(response) == "user_not_found"


# --- changing users -------------------------------------------------------------------------


def test_deactivation_ends_assignments_and_the_token_stops_working(
    client, app, db_session, auth, caplog
):
    caplog.set_level(logging.INFO, logger="gridgov.audit")
    worker = make_user(db_session, username="leaving", area_code=EMPTY_MICROGRID)
    future = make_assignment(
        db_session,
        user=worker,
        area_code=EMPTY_GRID,
        duty="part_time",
        active_from=datetime.now(UTC) + timedelta(days=3),
    )
    headers = bearer(app, worker)
    assert client.get("/api/v1/me", headers=headers).status_code == 200

    response = client.patch(
        f"/api/v1/users/{worker.id}", json={"is_active": False}, headers=auth("admin")
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["is_active"] is False and body["deactivated_at"]
    assert body["areas"] == []
    assert len(body["assignments"]) == 2  # history kept, both ended
    assert all(a["active_to"] and not a["active"] for a in body["assignments"])
    assert "audit admin deactivate_user" in caplog.text

    me = client.get("/api/v1/me", headers=headers)
    assert me.status_code == 401
    assert error_of(me) == "account_inactive"
    db_session.expire_all()
    assert db_session.get(User, worker.id) is not None  # never deleted
    ended_future = db_session.get(Assignment, future.id)
    assert ended_future.active_to <= ended_future.active_from + timedelta(microseconds=1)
    assert ("leaving", "full_time", EMPTY_MICROGRID) not in workers(
        client, auth("admin"), EMPTY_MICROGRID
    )


def test_deactivated_user_cannot_log_in_and_reactivation_restores_login(client, db_session, auth):
    user_id = create_user(client, auth, username="on_and_off").get_json()["id"]
    client.patch(f"/api/v1/users/{user_id}", json={"is_active": False}, headers=auth("admin"))
    credentials = {"username": "on_and_off", "password": PASSWORD}
    assert client.post("/api/v1/auth/login", json=credentials).status_code == 401
    response = client.patch(
        f"/api/v1/users/{user_id}", json={"is_active": True}, headers=auth("admin")
    )
    assert response.get_json()["is_active"] is True
    assert response.get_json()["deactivated_at"] is None
    assert client.post("/api/v1/auth/login", json=credentials).status_code == 200


def test_admin_cannot_deactivate_or_demote_themselves(client, demo_users, auth):
    url = f"/api/v1/users/{demo_users['admin'].id}"
    response = client.patch(url, json={"is_active": False}, headers=auth("admin"))
    assert response.status_code == 409
    assert error_of(response) == "cannot_deactivate_self"
    response = client.patch(url, json={"role": "worker"}, headers=auth("admin"))
    assert response.status_code == 409
    assert error_of(response) == "cannot_demote_self"


def test_patch_changes_name_password_and_role(client, auth):
    user_id = create_user(client, auth, username="changer").get_json()["id"]
    response = client.patch(
        f"/api/v1/users/{user_id}",
        json={"display_name": "新名字", "role": "supervisor", "password": "another-long-pass"},
        headers=auth("admin"),
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["display_name"], body["role"]) == ("新名字", "supervisor")
    login = {"username": "changer", "password": "another-long-pass"}
    assert client.post("/api/v1/auth/login", json=login).status_code == 200
    weak = client.patch(f"/api/v1/users/{user_id}", json={"password": "x"}, headers=auth("admin"))
    assert weak.status_code == 422 and error_of(weak) == "weak_password"


def test_role_change_refused_while_assignments_do_not_fit(client, demo_users, auth):
    url = f"/api/v1/users/{demo_users['grid_worker'].id}"
    response = client.patch(url, json={"role": "supervisor"}, headers=auth("admin"))
    assert response.status_code == 409
    assert error_of(response) == "role_conflicts_with_assignments"


def test_only_admins_patch_users(client, demo_users, auth):
    response = client.patch(
        f"/api/v1/users/{demo_users['grid_worker'].id}",
        json={"display_name": "me"},
        headers=auth("grid_worker"),
    )
    assert response.status_code == 403


def test_patch_unknown_user_is_404(client, auth):
    response = client.patch(
        "/api/v1/users/999999", json={"display_name": "x"}, headers=auth("admin")
    )
    assert response.status_code == 404
    assert error_of(response) == "user_not_found"


# --- assignment rules -----------------------------------------------------------------------


def test_assignment_is_created_and_puts_the_worker_on_duty(client, db_session, auth, caplog):
    caplog.set_level(logging.INFO, logger="gridgov.audit")
    worker = make_user(db_session, username="new_worker")
    body = assigned(client, auth, worker.id, EMPTY_MICROGRID, "full_time")
    assert body["user"] == worker.id and body["area"] == EMPTY_MICROGRID
    assert body["active"] is True and body["active_to"] is None
    assert datetime.fromisoformat(body["active_from"]).tzinfo is not None
    assert "audit admin create_assignment" in caplog.text
    assert ("new_worker", "full_time", EMPTY_MICROGRID) in workers(
        client, auth("admin"), EMPTY_MICROGRID
    )


@pytest.mark.parametrize(
    "role, area, duty, code",
    [
        ("supervisor", HEAD_GRID, "supervisor", "assignment_level_mismatch"),
        ("supervisor", WORKER_MICROGRID, "supervisor", "assignment_level_mismatch"),
        ("worker", COMMUNITY, "full_time", "assignment_level_mismatch"),
        ("worker", TOWN, "grid_head", "assignment_level_mismatch"),
        ("worker", DISTRICT, "part_time", "assignment_level_mismatch"),
        ("worker", TOWN, "supervisor", "assignment_role_mismatch"),
        ("supervisor", HEAD_GRID, "full_time", "assignment_role_mismatch"),
        ("admin", TOWN, "supervisor", "assignment_role_mismatch"),
    ],
)
def test_duty_must_fit_role_and_level(client, db_session, auth, role, area, duty, code):
    user = make_user(db_session, username="misfit", role=role)
    response = assign(client, auth, user.id, area, duty)
    assert response.status_code == 422
    assert error_of(response) == code


@pytest.mark.parametrize("area", [DISTRICT, TOWN, COMMUNITY])
def test_supervisor_duty_on_district_town_or_community(client, db_session, auth, area):
    user = make_user(db_session, username="new_supervisor", role="supervisor")
    assert assigned(client, auth, user.id, area, "supervisor")["area"] == area


def test_a_grid_has_one_grid_head_at_a_time(client, db_session, auth):
    second = make_user(db_session, username="second_head")
    response = assign(client, auth, second.id, HEAD_GRID, "grid_head")
    assert response.status_code == 409
    assert error_of(response) == "grid_head_taken"
    # ... also when the new period only starts later but the current head's is open.
    later = iso(datetime.now(UTC) + timedelta(days=30))
    response = assign(client, auth, second.id, HEAD_GRID, "grid_head", active_from=later)
    assert error_of(response) == "grid_head_taken"
    # As a full-time worker on the same grid, or as head of a micro-grid, they are welcome.
    assigned(client, auth, second.id, HEAD_GRID, "full_time")
    assigned(client, auth, second.id, SIBLING_MICROGRID, "grid_head")


def test_grid_head_after_the_previous_one_ended(client, db_session, auth):
    first = make_user(db_session, username="head_one")
    second = make_user(db_session, username="head_two")
    now = datetime.now(UTC)
    assigned(
        client, auth, first.id, EMPTY_GRID, "grid_head", active_to=iso(now + timedelta(days=10))
    )
    overlapping = assign(
        client, auth, second.id, EMPTY_GRID, "grid_head", active_from=iso(now + timedelta(days=9))
    )
    assert error_of(overlapping) == "grid_head_taken"
    assigned(
        client, auth, second.id, EMPTY_GRID, "grid_head", active_from=iso(now + timedelta(days=10))
    )


def test_overlapping_assignment_of_the_same_user_and_area_is_409(client, demo_users, auth):
    worker_id = demo_users["grid_worker"].id
    response = assign(client, auth, worker_id, WORKER_MICROGRID, "part_time")
    assert response.status_code == 409
    assert error_of(response) == "assignment_overlap"
    # The same worker on another micro-grid is fine.
    assigned(client, auth, worker_id, SIBLING_MICROGRID, "part_time")


def test_past_assignment_does_not_overlap_a_new_one(client, db_session, auth):
    worker = make_user(db_session, username="returning")
    now = datetime.now(UTC)
    past = assigned(
        client,
        auth,
        worker.id,
        EMPTY_MICROGRID,
        "full_time",
        active_from=iso(now - timedelta(days=60)),
        active_to=iso(now - timedelta(days=30)),
    )
    assert past["active"] is False
    assigned(client, auth, worker.id, EMPTY_MICROGRID, "full_time")


@pytest.mark.parametrize(
    "area, code, status",
    [("330212999999999", "area_not_found", 404), ("33021200100100", "area_not_found", 404)],
)
def test_unknown_area_is_404(client, db_session, auth, area, code, status):
    worker = make_user(db_session, username="nowhere")
    response = assign(client, auth, worker.id, area, "full_time")
    assert response.status_code == status
    assert error_of(response) == code


def test_retired_area_is_404(client, db_session, auth):
    area = db_session.scalar(select(Area).where(Area.code == EMPTY_MICROGRID))
    area.retired_at = datetime.now(UTC)
    worker = make_user(db_session, username="too_late")
    response = assign(client, auth, worker.id, EMPTY_MICROGRID, "full_time")
    assert response.status_code == 404
    assert error_of(response) == "area_not_found"


def test_unknown_or_inactive_user(client, db_session, auth):
    response = assign(client, auth, 999999, EMPTY_MICROGRID, "full_time")
    assert response.status_code == 404 and error_of(response) == "user_not_found"
    worker = make_user(db_session, username="inactive_one")
    worker.is_active = False
    db_session.flush()
    response = assign(client, auth, worker.id, EMPTY_MICROGRID, "full_time")
    assert response.status_code == 422 and error_of(response) == "user_inactive"


def test_period_must_be_positive_and_carry_an_offset(client, db_session, auth):
    worker = make_user(db_session, username="timeless")
    start = datetime.now(UTC)
    same = assign(
        client, auth, worker.id, EMPTY_MICROGRID, "full_time",
        active_from=iso(start), active_to=iso(start),
    )  # fmt: skip
    assert same.status_code == 422 and error_of(same) == "invalid_period"
    naive = assign(
        client, auth, worker.id, EMPTY_MICROGRID, "full_time", active_from="2025-01-01T08:00:00"
    )
    assert naive.status_code == 422 and error_of(naive) == "validation_failed"
    bad_duty = assign(client, auth, worker.id, EMPTY_MICROGRID, "volunteer")
    assert bad_duty.status_code == 422


@pytest.mark.parametrize("username", ["town_supervisor", "grid_head"])
def test_only_admins_assign(client, db_session, auth, username):
    worker = make_user(db_session, username="hopeful")
    response = client.post(
        "/api/v1/assignments",
        json={"user": worker.id, "area": EMPTY_MICROGRID, "duty": "full_time"},
        headers=auth(username),
    )
    assert response.status_code == 403


# --- ending assignments ---------------------------------------------------------------------


def test_ended_assignment_is_kept_and_no_longer_on_duty(client, demo_users, auth):
    head_id = demo_users["grid_head"].id
    [current] = client.get(f"/api/v1/users/{head_id}", headers=auth("admin")).get_json()[
        "assignments"
    ]
    response = client.delete(f"/api/v1/assignments/{current['id']}", headers=auth("admin"))
    assert response.status_code == 200
    ended = response.get_json()
    assert ended["active_to"] and ended["active"] is False
    assert ("grid_head", "grid_head", HEAD_GRID) not in workers(client, auth("admin"), HEAD_GRID)
    # Ending it again changes nothing.
    again = client.delete(f"/api/v1/assignments/{current['id']}", headers=auth("admin"))
    assert again.status_code == 200 and again.get_json()["active_to"] == ended["active_to"]
    history = client.get(f"/api/v1/users/{head_id}", headers=auth("admin")).get_json()
    assert [a["id"] for a in history["assignments"]] == [current["id"]]
    assert history["areas"] == []
    # The grid may now have a new head.
    newcomer = create_user(client, auth, username="new_head").get_json()["id"]
    assigned(client, auth, newcomer, HEAD_GRID, "grid_head")


def test_ending_a_future_assignment(client, db_session, auth):
    worker = make_user(db_session, username="planned")
    start = datetime.now(UTC) + timedelta(days=7)
    planned = assigned(client, auth, worker.id, EMPTY_GRID, "full_time", active_from=iso(start))
    response = client.delete(f"/api/v1/assignments/{planned['id']}", headers=auth("admin"))
    assert response.status_code == 200
    assert datetime.fromisoformat(response.get_json()["active_to"]) > start
    # It no longer blocks a new assignment for that time.
    assigned(client, auth, worker.id, EMPTY_GRID, "full_time", active_from=iso(start))


def test_end_unknown_assignment_is_404_and_admin_only(client, demo_users, auth):
    response = client.delete("/api/v1/assignments/999999", headers=auth("admin"))
    assert response.status_code == 404 and error_of(response) == "assignment_not_found"
    response = client.delete("/api/v1/assignments/1", headers=auth("town_supervisor"))
    assert response.status_code == 403


# --- listing assignments --------------------------------------------------------------------


def test_assignment_list_filters_and_scope(client, db_session, demo_users, auth):
    other = make_user(db_session, username="elsewhere", area_code=OTHER_TOWN_GRID)
    ended_worker = make_user(db_session, username="ended_worker")
    now = datetime.now(UTC)
    make_assignment(
        db_session,
        user=ended_worker,
        area_code=EMPTY_MICROGRID,
        active_from=now - timedelta(days=9),
        active_to=now - timedelta(days=2),
    )

    def listed(query, viewer="admin"):
        response = client.get(f"/api/v1/assignments?{query}", headers=auth(viewer))
        assert response.status_code == 200, response.get_json()
        return {(item["user"], item["area"]) for item in response.get_json()["items"]}

    everything = listed("")
    assert (other.id, OTHER_TOWN_GRID) in everything
    assert (ended_worker.id, EMPTY_MICROGRID) in everything
    assert listed(f"user={demo_users['grid_worker'].id}") == {
        (demo_users["grid_worker"].id, WORKER_MICROGRID)
    }
    assert listed(f"area={HEAD_GRID}") == {
        (demo_users["grid_head"].id, HEAD_GRID),
        (demo_users["grid_worker"].id, WORKER_MICROGRID),
    }
    assert (ended_worker.id, EMPTY_MICROGRID) not in listed("active=true")
    assert (ended_worker.id, EMPTY_MICROGRID) in listed("active=false")
    town = listed("", viewer="town_supervisor")
    assert (ended_worker.id, EMPTY_MICROGRID) in town  # history of the subtree
    assert (other.id, OTHER_TOWN_GRID) not in town
    assert all(area.startswith(TOWN) for _, area in town)


def test_assignment_list_pages(client, db_session, auth):
    for i in range(3):
        make_user(db_session, username=f"paged_{i}", area_code=EMPTY_MICROGRID)
    first = client.get("/api/v1/assignments?limit=2", headers=auth("admin")).get_json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = client.get(
        f"/api/v1/assignments?limit=2&cursor={first['next_cursor']}", headers=auth("admin")
    ).get_json()
    assert second["items"][0]["id"] > first["items"][-1]["id"]


# --- who is on duty -------------------------------------------------------------------------


def test_workers_on_duty_for_a_grid_and_its_micro_grids(client, db_session, auth):
    make_user(db_session, username="part_timer", area_code=SIBLING_MICROGRID, duty="part_time")
    grid = workers(client, auth("admin"), HEAD_GRID)
    assert grid == [
        ("grid_head", "grid_head", HEAD_GRID),
        ("grid_worker", "full_time", WORKER_MICROGRID),
        ("part_timer", "part_time", SIBLING_MICROGRID),
    ]
    # A micro-grid: its own people and its grid's, not those of a sibling micro-grid.
    assert workers(client, auth("admin"), WORKER_MICROGRID) == [
        ("grid_head", "grid_head", HEAD_GRID),
        ("grid_worker", "full_time", WORKER_MICROGRID),
    ]
    assert workers(client, auth("admin"), SIBLING_MICROGRID) == [
        ("grid_head", "grid_head", HEAD_GRID),
        ("part_timer", "part_time", SIBLING_MICROGRID),
    ]
    assert workers(client, auth("admin"), EMPTY_GRID) == []
    assert workers(client, auth("admin"), TOWN) == [("town_supervisor", "supervisor", TOWN)]


def test_on_duty_item_shape(client, auth, demo_users):
    response = client.get(f"/api/v1/areas/{WORKER_MICROGRID}/workers", headers=auth("grid_worker"))
    first = response.get_json()["items"][0]
    assert first["user"] == {
        "id": demo_users["grid_head"].id,
        "username": "grid_head",
        "display_name": "网格长",
        "role": "worker",
    }
    assert datetime.fromisoformat(first["active_from"]).tzinfo is not None
    assert response.get_json()["next_cursor"] is None


def test_future_and_ended_assignments_are_not_on_duty(client, db_session, auth):
    now = datetime.now(UTC)
    future = make_user(db_session, username="not_yet")
    make_assignment(
        db_session, user=future, area_code=EMPTY_GRID, active_from=now + timedelta(hours=1)
    )
    past = make_user(db_session, username="gone")
    make_assignment(
        db_session,
        user=past,
        area_code=EMPTY_GRID,
        active_from=now - timedelta(days=5),
        active_to=now - timedelta(minutes=1),
    )
    inactive = make_user(db_session, username="switched_off", area_code=EMPTY_GRID)
    inactive.is_active = False
    db_session.flush()
    assert workers(client, auth("admin"), EMPTY_GRID) == []
    detail = client.get(f"/api/v1/users/{future.id}", headers=auth("admin")).get_json()
    assert detail["areas"] == [] and detail["assignments"][0]["active"] is False


def test_workers_list_pages(client, db_session, auth):
    for i in range(3):
        make_user(db_session, username=f"crowd_{i}", area_code=EMPTY_GRID)
    url = f"/api/v1/areas/{EMPTY_GRID}/workers?limit=2"
    first = client.get(url, headers=auth("admin")).get_json()
    second = client.get(f"{url}&cursor={first['next_cursor']}", headers=auth("admin")).get_json()
    names = [i["user"]["username"] for i in first["items"] + second["items"]]
    assert names == ["crowd_0", "crowd_1", "crowd_2"]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    "viewer, code, status",
    [
        ("town_supervisor", HEAD_GRID, 200),
        ("town_supervisor", TOWN, 200),
        ("town_supervisor", DISTRICT, 403),  # above their area
        ("town_supervisor", OTHER_TOWN_GRID, 403),
        ("district_supervisor", OTHER_TOWN_GRID, 200),
        ("grid_worker", WORKER_MICROGRID, 200),
        ("grid_worker", HEAD_GRID, 200),  # above
        ("grid_worker", COMMUNITY, 200),
        ("grid_worker", SIBLING_MICROGRID, 403),
        ("grid_head", SIBLING_MICROGRID, 200),  # under
        ("grid_head", OTHER_TOWN_GRID, 403),
        ("admin", OTHER_TOWN_GRID, 200),
        ("admin", "330212999", 404),
    ],
)
def test_workers_scope(client, auth, viewer, code, status):
    response = client.get(f"/api/v1/areas/{code}/workers", headers=auth(viewer))
    assert response.status_code == status, response.get_json()
    if status == 403:
        assert error_of(response) == "forbidden"
    if status == 404:
        assert error_of(response) == "area_not_found"


# --- the proposed handler -------------------------------------------------------------------


def test_proposed_handler_is_the_grid_head_first(db_session, demo_users):
    micro, grid = area_id(db_session, WORKER_MICROGRID), area_id(db_session, HEAD_GRID)
    handler = duty_service.proposed_handler(db_session, microgrid_id=micro, grid_id=grid)
    assert handler.id == demo_users["grid_head"].id
    # Only the grid given: still its head; only the micro-grid: its grid is found.
    assert duty_service.proposed_handler(db_session, microgrid_id=None, grid_id=grid).id == (
        demo_users["grid_head"].id
    )
    assert duty_service.proposed_handler(db_session, microgrid_id=micro, grid_id=None).id == (
        demo_users["grid_head"].id
    )


def test_proposed_handler_fallback_order(db_session):
    micro, grid = area_id(db_session, EMPTY_MICROGRID), area_id(db_session, EMPTY_GRID)

    def handler(**kwargs):
        found = duty_service.proposed_handler(
            db_session, microgrid_id=micro, grid_id=grid, **kwargs
        )
        return found.username if found else None

    assert handler() is None
    make_user(db_session, username="grid_part", area_code=EMPTY_GRID, duty="part_time")
    make_user(db_session, username="micro_part", area_code=EMPTY_MICROGRID, duty="part_time")
    assert handler() == "micro_part"
    make_user(db_session, username="grid_full", area_code=EMPTY_GRID, duty="full_time")
    assert handler() == "grid_full"
    make_user(db_session, username="micro_full_b", area_code=EMPTY_MICROGRID)
    make_user(db_session, username="micro_full_c", area_code=EMPTY_MICROGRID)
    assert handler() == "micro_full_b"  # lowest user id wins a tie
    head = make_user(db_session, username="micro_head", area_code=EMPTY_MICROGRID, duty="grid_head")
    assert handler() == "micro_head"
    # At a time before anyone was assigned: nobody.
    assert handler(at=datetime.now(UTC) - timedelta(days=2)) is None
    # An inactive head is skipped.
    head.is_active = False
    db_session.flush()
    assert handler() == "micro_full_b"


def test_proposed_handler_ignores_other_micro_grids_and_ended_assignments(db_session):
    micro, grid = area_id(db_session, EMPTY_MICROGRID), area_id(db_session, EMPTY_GRID)
    make_user(db_session, username="sibling_full", area_code="330212001001002002")
    ended = make_user(db_session, username="ended_head")
    make_assignment(
        db_session,
        user=ended,
        area_code=EMPTY_GRID,
        duty="grid_head",
        active_from=datetime.now(UTC) - timedelta(days=3),
        active_to=datetime.now(UTC) - timedelta(hours=1),
    )
    assert duty_service.proposed_handler(db_session, microgrid_id=micro, grid_id=grid) is None
    assert duty_service.proposed_handler(db_session, microgrid_id=None, grid_id=None) is None
