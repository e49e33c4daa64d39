"""The living demo: months of cases through the real services, and today's patrols."""

import dataclasses
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from gridgov.errors import Conflict
from gridgov.models import Incident, IncidentEvent, Patrol, User
from gridgov.services import demo_activity
from gridgov.services.patrol_map import patrol_map
from gridgov.settings import settings

NOW = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


def _load(db_session, seed=2024, cases=300):
    config = settings()
    return demo_activity.load_demo_activity(
        db_session,
        intake=config.intake,
        patrol_max_backdate=config.patrol_max_backdate,
        seed=seed,
        cases=cases,
        now=NOW,
    )


def _snapshot(db_session):
    return db_session.execute(
        select(
            Incident.client_id,
            Incident.status,
            Incident.created_at,
            Incident.deadline,
            Incident.rework_count,
            Incident.handling_level,
        ).order_by(Incident.client_id)
    ).all()


def test_cases_in_every_state_some_overdue_escalated_and_reworked(app, db_session):
    result = _load(db_session)
    assert result.cases == 300
    assert result.patrols == 3
    statuses = Counter(
        dict(
            db_session.execute(
                select(Incident.status, func.count()).group_by(Incident.status)
            ).all()
        )
    )
    assert statuses == Counter(result.cases_by_status)
    assert set(statuses) == set(demo_activity.FATES)
    open_ = ~Incident.status.in_(("closed", "rejected", "duplicate"))
    overdue = db_session.scalar(
        select(func.count()).where(open_, Incident.deadline < NOW).select_from(Incident)
    )
    assert 0 < overdue < sum(statuses.values()) - statuses["closed"]
    assert db_session.scalar(select(func.count()).where(Incident.escalation_count > 0)) > 5
    assert db_session.scalar(select(func.count()).where(Incident.rework_count > 0)) > 5
    reported = db_session.execute(
        select(func.min(Incident.created_at), func.max(Incident.created_at))
    ).one()
    assert reported[0] < NOW - timedelta(days=60) and reported[1] < NOW
    # Every timeline runs forwards in time and ends in the case's status, before now.
    events = db_session.execute(
        select(
            IncidentEvent.incident_id, IncidentEvent.created_at, IncidentEvent.to_status
        ).order_by(IncidentEvent.incident_id, IncidentEvent.id)
    ).all()
    last: dict[int, tuple] = {}
    for incident_id, at, to_status in events:
        if incident_id in last:
            assert at > last[incident_id][0]
        last[incident_id] = (at, to_status)
    status_of = dict(db_session.execute(select(Incident.id, Incident.status)).all())
    assert all(last[i][1] == status_of[i] and last[i][0] < NOW for i in status_of)
    patrols = db_session.scalars(select(Patrol)).all()
    assert all(p.finished_at and p.microgrids_visited >= 1 for p in patrols)
    # The town supervisor sees that day's patrols of the town on the patrol map.
    supervisor = db_session.scalar(select(User).where(User.username == "town_supervisor"))
    seen = patrol_map(
        db_session,
        viewer=supervisor,
        area_code="330212001",
        day=date(2026, 11, 20),
        max_backdate=timedelta(days=365),
    )
    assert len(seen.tracks) == 2 and seen.microgrids == 18 and len(seen.unpatrolled) < 18


def test_the_same_seed_gives_the_same_cases_and_a_second_load_is_refused(app, db_session):
    with db_session.begin_nested() as first:
        _load(db_session, cases=60)
        once = _snapshot(db_session)
        first.rollback()
    _load(db_session, cases=60)
    assert _snapshot(db_session) == once
    with pytest.raises(Conflict):
        _load(db_session, cases=60)


def test_flask_demo_load_refuses_a_database_with_areas_and_production(app, monkeypatch):
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["demo", "load"])
    assert refused.exit_code == 1
    assert "already holds areas" in refused.output
    skipped = runner.invoke(args=["demo", "load", "--if-empty"])
    assert skipped.exit_code == 0 and "nothing to do" in skipped.output
    with app.app_context():
        production = dataclasses.replace(settings(), env_name="production")
    monkeypatch.setattr("gridgov.cli.settings", lambda: production)
    never = runner.invoke(args=["demo", "load", "--if-empty"])
    assert never.exit_code == 1 and "never loaded into a production" in never.output
