"""Loading the demo district: areas from geo.demo_district, demo users and categories."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from geo.demo_district import DemoArea
from geo.levels import LEVELS
from gridgov.errors import Conflict
from gridgov.models import Area, AreaRevision, Assignment, BoundaryChangeset, Category, User
from gridgov.services.passwords import hash_password
from gridgov.spatial import to_db

DEMO_PASSWORD = "demo-pass-2024"
BATCH_SIZE = 1000

# (code, name, group, default priority, accept, handle, verify); limits as (amount, unit).
WH, WD = "working_hours", "working_days"
DEMO_CATEGORIES = [
    ("dispute_neighbour", "邻里纠纷", "矛盾纠纷", "normal", (1, WH), (5, WD), (1, WD)),
    ("dispute_labour", "劳资纠纷", "矛盾纠纷", "high", (1, WH), (3, WD), (1, WD)),
    ("dispute_family", "婚姻家庭纠纷", "矛盾纠纷", "normal", (2, WH), (5, WD), (2, WD)),
    ("hazard_building", "房屋安全隐患", "安全隐患", "high", (1, WH), (2, WD), (1, WD)),
    ("hazard_gas", "燃气安全隐患", "安全隐患", "urgent", (1, WH), (4, WH), (1, WD)),
    ("fire_corridor", "楼道堆物", "消防隐患", "normal", (2, WH), (2, WD), (1, WD)),
    ("fire_ebike", "电动车违规充电", "消防隐患", "high", (1, WH), (1, WD), (1, WD)),
    ("env_garbage", "暴露垃圾", "环境卫生", "normal", (1, WH), (4, WH), (1, WD)),
    ("env_green", "绿化养护", "环境卫生", "low", (4, WH), (5, WD), (2, WD)),
    ("env_river", "河道污染", "生态环境", "high", (1, WH), (3, WD), (1, WD)),
    ("fraud_warning", "电信诈骗预警", "反诈预警", "urgent", (1, WH), (4, WH), (1, WD)),
    ("facility_streetlight", "路灯损坏", "公共设施", "normal", (2, WH), (3, WD), (1, WD)),
    ("facility_manhole", "井盖缺失破损", "公共设施", "urgent", (1, WH), (4, WH), (1, WD)),
    ("order_parking", "违章停车", "市容秩序", "low", (2, WH), (1, WD), (1, WD)),
    ("care_elderly", "独居老人关爱", "民生服务", "normal", (4, WH), (3, WD), (2, WD)),
]


@dataclass
class DemoLoadResult:
    areas_by_level: dict[str, int] = field(default_factory=dict)
    users: list[tuple[str, str, str]] = field(default_factory=list)  # username, role, area
    categories: int = 0


# (username, display name, role, which demo area they are assigned to, duty)
DEMO_PEOPLE = [
    ("admin", "系统管理员", "admin", None, None),
    ("district_supervisor", "区社会治理中心", "supervisor", "district", "supervisor"),
    ("town_supervisor", "街道综治中心", "supervisor", "town", "supervisor"),
    ("grid_head", "网格长", "worker", "grid", "grid_head"),
    ("grid_worker", "专职网格员", "worker", "microgrid", "full_time"),
]
DEMO_USERNAMES = tuple(person[0] for person in DEMO_PEOPLE)


def demo_logins(session: Session) -> list[tuple[str, str, str]]:
    """(username, role, assigned area codes) of the demo users present in the database."""
    rows = session.execute(
        select(User.username, User.role, func.string_agg(Area.code, ","))
        .outerjoin(Assignment, (Assignment.user_id == User.id) & Assignment.active_to.is_(None))
        .outerjoin(Area, Area.id == Assignment.area_id)
        .where(User.username.in_(DEMO_USERNAMES))
        .group_by(User.id)
        .order_by(User.id)
    ).all()
    return [(username, role, areas or "all") for username, role, areas in rows]


def has_areas(session: Session) -> bool:
    """True when any area exists."""
    return session.scalar(select(func.count()).select_from(Area)) > 0


def load_demo(
    session: Session,
    *,
    areas: Iterable[DemoArea],
    progress: Callable[[str, int], None] | None = None,
) -> DemoLoadResult:
    """Insert the demo areas (one changeset), categories and users into an empty database."""
    if has_areas(session):
        raise Conflict("The database already holds areas; demo data loads only into an empty one.")
    now = datetime.now(UTC)
    changeset = BoundaryChangeset(source="demo", description="demo district", effective_from=now)
    session.add(changeset)
    session.flush()
    result = DemoLoadResult()
    ids_by_code = _insert_areas(session, areas, changeset.id, now, result, progress)
    result.categories = _insert_categories(session)
    result.users = _insert_users(session, ids_by_code, now)
    changeset.summary = {"areas": result.areas_by_level}
    session.flush()
    return result


def _insert_areas(session, areas, changeset_id, now, result, progress) -> dict[str, int]:
    ids_by_code: dict[str, int] = {}
    batch: list[DemoArea] = []
    for area in areas:
        # A batch holds one level only, so every parent is inserted before its children.
        if batch and (len(batch) >= BATCH_SIZE or batch[0].level != area.level):
            _flush_batch(session, batch, ids_by_code, changeset_id, now, result, progress)
            batch = []
        batch.append(area)
    if batch:
        _flush_batch(session, batch, ids_by_code, changeset_id, now, result, progress)
    return ids_by_code


def _flush_batch(session, batch, ids_by_code, changeset_id, now, result, progress) -> None:
    rows = [
        {
            "code": a.code,
            "name": a.name,
            "level": a.level,
            "parent_id": ids_by_code[a.parent_code] if a.parent_code else None,
            "boundary": to_db(a.boundary),
        }
        for a in batch
    ]
    inserted = session.execute(insert(Area).returning(Area.id, Area.code), rows).all()
    ids_by_code.update({code: area_id for area_id, code in inserted})
    revisions = [{**row, "area_id": ids_by_code[row["code"]], "valid_from": now} for row in rows]
    for revision in revisions:
        del revision["code"], revision["level"]
        revision["changeset_id"] = changeset_id
    session.execute(insert(AreaRevision), revisions)
    level = batch[0].level
    result.areas_by_level[level] = result.areas_by_level.get(level, 0) + len(batch)
    if progress:
        progress(level, result.areas_by_level[level])


def _insert_categories(session: Session) -> int:
    for code, name, group, priority, accept, handle, verify in DEMO_CATEGORIES:
        limits = {
            stage: {"amount": amount, "unit": unit}
            for stage, (amount, unit) in (
                ("accept", accept),
                ("handle", handle),
                ("verify", verify),
            )
        }
        session.add(
            Category(
                code=code,
                name=name,
                group_name=group,
                default_priority=priority,
                time_limits=limits,
            )
        )
    session.flush()
    return len(DEMO_CATEGORIES)


def _first_code(ids_by_code: dict[str, int], length: int, prefix: str = "") -> str:
    return min(c for c in ids_by_code if len(c) == length and c.startswith(prefix))


def _insert_users(session: Session, ids_by_code: dict[str, int], now: datetime) -> list:
    """Demo people, assigned in the first town: its grid head and a worker of its first grid."""
    # The first area of each level inside the first one of the level above.
    first: dict[str, str] = {}
    prefix = ""
    for level in LEVELS:
        prefix = first[level.name] = _first_code(ids_by_code, level.code_length, prefix)
    password_hash = hash_password(DEMO_PASSWORD)
    created = []
    for username, display, role, area_key, duty in DEMO_PEOPLE:
        user = User(username=username, display_name=display, role=role, password_hash=password_hash)
        session.add(user)
        session.flush()
        if area_key:
            area_id = ids_by_code[first[area_key]]
            session.add(Assignment(user_id=user.id, area_id=area_id, duty=duty, active_from=now))
        created.append((username, role, first.get(area_key, "all")))
    session.flush()
    return created
