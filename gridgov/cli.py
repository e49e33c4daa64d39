"""Flask CLI commands (`flask --app wsgi …`): parse, call a service, commit once."""

import json
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup
from marshmallow import ValidationError

from geo.demo_district import generate_district
from geo.topology import BOUNDARY_CRS
from gridgov.errors import DomainError
from gridgov.extensions import db
from gridgov.schemas.boundary_edits import (
    CreateBodySchema,
    MergeBodySchema,
    MoveEdgeBodySchema,
    RedrawBodySchema,
    RetireBodySchema,
    SplitBodySchema,
)
from gridgov.services import boundaries as boundary_service
from gridgov.services import boundary_edits as edit_service
from gridgov.services import changesets as changeset_service
from gridgov.services import delivery, demo_activity, open311_clients, workflow
from gridgov.services import demo as demo_service
from gridgov.services import photos as photo_service
from gridgov.settings import settings

demo_cli = AppGroup("demo", help="The demo district.")
incidents_cli = AppGroup("incidents", help="Case handling jobs.")
boundaries_cli = AppGroup("boundaries", help="Boundary administration.")


@demo_cli.command("load")
@click.option(
    "--size",
    type=click.Choice(["small", "district"]),
    default="small",
    show_default=True,
    help="small loads in seconds; district is ~2,000 grids and ~20,000 micro-grids.",
)
@click.option("--seed", type=int, default=2024, show_default=True)
@click.option("--if-empty", is_flag=True, help="Do nothing (exit 0) when areas already exist.")
@click.option(
    "--cases",
    type=click.IntRange(min=0),
    default=300,
    show_default=True,
    help="Demo cases over the last months (0: areas, users and categories only).",
)
def load_demo(size: str, seed: int, if_empty: bool, cases: int) -> None:
    """Generate the demo 鄞州区 and load it with its users, categories, cases and patrols."""
    config = settings()
    if config.env_name == "production":
        raise click.ClickException("demo data is never loaded into a production database")
    if if_empty and demo_service.has_areas(db.session):
        click.echo("demo: areas already loaded, nothing to do")
        return
    started = time.monotonic()

    def progress(level: str, count: int) -> None:
        click.echo(f"demo: {count:>6} {level} areas ({time.monotonic() - started:5.1f} s)")

    try:
        result = demo_service.load_demo(
            db.session, areas=generate_district(seed=seed, size=size), progress=progress
        )
        activity = demo_activity.ActivityResult()
        if cases:
            activity = demo_activity.load_demo_activity(
                db.session,
                intake=config.intake,
                patrol_max_backdate=config.patrol_max_backdate,
                seed=seed,
                cases=cases,
            )
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from error
    db.session.commit()
    click.echo(
        f"demo: loaded {sum(result.areas_by_level.values())} areas, {result.categories} categories,"
        f" {len(result.users)} users, {activity.cases} cases and {activity.patrols} patrols"
        f" in {time.monotonic() - started:.1f} s (`flask demo logins` lists the users)"
    )


@demo_cli.command("logins")
def show_logins() -> None:
    """Print the demo users, their roles and areas, and the demo password."""
    for username, role, area in demo_service.demo_logins(db.session):
        click.echo(
            f"demo login: {username:<20} role {role:<10} area {area:<18}"
            f" password {demo_service.DEMO_PASSWORD}"
        )


@incidents_cli.command("escalate-overdue")
@click.option("--limit", type=int, default=1000, show_default=True, help="Cases per run.")
def escalate_overdue(limit: int) -> None:
    """Escalate overdue open cases one level; safe to run every minute from cron."""
    config = settings()
    coverage = config.calendar_coverage()
    for warning in coverage.warnings:
        click.echo(f"escalate-overdue: WARNING: {warning}", err=True)
    # Escalation still runs on a calendar gap (stopping it would leave overdue cases where they
    # are), but the run fails so that cron reports it.
    if coverage.error:
        click.echo(f"escalate-overdue: ERROR: {coverage.error}", err=True)
    report = workflow.escalate_overdue(db.session, calendar=config.calendar, limit=limit)
    db.session.commit()
    for incident_id, from_level, to_level in report.escalated:
        click.echo(f"escalated incident {incident_id}: {from_level} -> {to_level}")
    click.echo(
        f"escalate-overdue: {len(report.escalated)} escalated,"
        f" {report.overdue_at_top} overdue at district level (cannot go higher)"
    )
    if coverage.error:
        raise SystemExit(1)


@boundaries_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--apply", "apply_", is_flag=True, help="Apply when valid (default: dry run).")
@click.option("--crs", type=click.Choice(BOUNDARY_CRS), default="wgs84", show_default=True)
@click.option("--repair", is_flag=True, help="Repair invalid geometries and report it.")
@click.option("--ids", is_flag=True, help="List the re-routed incident ids.")
@click.option("--description", default="", help="Why: stored with the change set.")
def import_boundaries(path: Path, apply_: bool, crs: str, repair: bool, ids: bool, description):
    """Validate a GeoJSON FeatureCollection of area changes; with --apply, apply it."""
    started = time.monotonic()
    click.echo(f"boundaries: reading {path} ({path.stat().st_size / 1e6:.1f} MB)")
    collection = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise click.ClickException("the file is not a GeoJSON FeatureCollection")
    options = boundary_service.ChangeSetOptions(
        dry_run=not apply_,
        repair=repair,
        crs=crs,
        include_ids=ids,
        effective_from=_effective_from(collection.get("effective_from")),
        source=f"cli:{path.name}"[:40],
        description=description or collection.get("description", ""),
        tolerances=settings().tolerances,
        max_nearest_m=settings().routing_nearest_max_m,
    )

    def progress(stage: str, done: int, total: int) -> None:
        click.echo(f"boundaries: {stage} {done}/{total} ({time.monotonic() - started:.1f} s)")

    result = boundary_service.submit_changeset(
        db.session,
        actor=None,
        features=collection.get("features") or [],
        options=options,
        progress=progress,
    )
    db.session.commit()
    _echo_result(result.as_dict(), time.monotonic() - started)
    if not result.valid:
        raise SystemExit(1)


def _effective_from(value: object) -> datetime | None:
    """The file's effective_from: an ISO 8601 date-time with its UTC offset, as the API takes."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() is None:
        raise click.ClickException(
            f"effective_from {value!r} is not an ISO 8601 date-time with a UTC offset"
            " (e.g. 2026-12-01T00:00:00+08:00)"
        )
    return parsed


def _echo_result(body: dict, seconds: float) -> None:
    for problem in body["problems"][:50]:
        where = problem.get("location")
        at = f" at {where['lon']:.6f},{where['lat']:.6f}" if where else ""
        click.echo(
            f"  {problem.get('severity', 'error')}: {problem['code']} {problem['kind']}{at}:"
            f" {problem['detail']}"
        )
    if len(body["problems"]) > 50:
        click.echo(f"  … and {len(body['problems']) - 50} more problems")
    impact = body["impact"]
    click.echo(
        f"boundaries: areas {impact['areas']}, {impact['moved_open_incidents']} open"
        f" incidents re-routed"
    )
    for move in impact["moves"][:50]:
        click.echo(f"  {move['from']} -> {move['to']}: {move['count']}")
    if body["applied"]:
        state = f"applied as changeset {body['changeset']}"
    elif body.get("status") == "pending":
        state = (
            f"scheduled as changeset {body['changeset']} (flask boundaries apply-due applies it)"
        )
    else:
        state = "valid (dry run: nothing changed; --apply to apply)" if body["valid"] else "INVALID"
    click.echo(f"boundaries: {state} in {seconds:.1f} s")


_EDIT_SCHEMAS = {
    "split": SplitBodySchema,
    "merge": MergeBodySchema,
    "move-edge": MoveEdgeBodySchema,
    "redraw": RedrawBodySchema,
    "create": CreateBodySchema,
    "retire": RetireBodySchema,
}


@boundaries_cli.command("edit")
@click.argument("operation", type=click.Choice(sorted(_EDIT_SCHEMAS)))
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--apply", "apply_", is_flag=True, help="Apply when valid (default: dry run).")
@click.option("--cases", is_flag=True, help="List every re-routed open case.")
def edit_boundaries(operation: str, path: Path, apply_: bool, cases: bool) -> None:
    """Split, merge, move an edge, redraw, create or retire: PATH holds the JSON body of
    POST /api/v1/boundaries/edits/OPERATION."""
    started = time.monotonic()
    try:
        body = _EDIT_SCHEMAS[operation]().load(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as error:
        raise click.ClickException(f"{path} is not a valid {operation} body: {error}") from error
    fields = {key: value for key, value in body.items() if key != "description"}
    options = _edit_options(apply_, cases, body.get("description", ""))
    _run_edit(
        lambda: edit_service.OPERATIONS[operation](
            db.session, actor=None, options=options, **fields
        ),
        started,
    )


@boundaries_cli.command("revert")
@click.argument("changeset", type=click.IntRange(min=1))
@click.option("--apply", "apply_", is_flag=True, help="Apply when valid (default: dry run).")
@click.option("--cases", is_flag=True, help="List every re-routed open case.")
def revert_boundaries(changeset: int, apply_: bool, cases: bool) -> None:
    """Restore what an applied change set replaced, as a new change set."""
    started = time.monotonic()
    options = _edit_options(apply_, cases, "")
    _run_edit(
        lambda: edit_service.revert(
            db.session, actor=None, changeset_id=changeset, options=options
        ),
        started,
    )


@boundaries_cli.command("apply-due")
def apply_due() -> None:
    """Apply the scheduled change sets that are due; safe to run every minute from cron."""
    config = settings()
    failed = 0
    due = changeset_service.due_changesets(db.session, now=datetime.now(UTC))
    for changeset_id in due:
        started = time.monotonic()
        result = changeset_service.apply_pending(
            db.session,
            changeset_id,
            tolerances=config.tolerances,
            max_nearest_m=config.routing_nearest_max_m,
        )
        db.session.commit()  # each set on its own: one that no longer fits stops no other
        seconds = time.monotonic() - started
        if result is None:
            click.echo(f"changeset {changeset_id}: no longer pending (applied or cancelled)")
        elif result.applied:
            click.echo(
                f"changeset {changeset_id}: applied in {seconds:.1f} s, areas"
                f" {result.impact.areas}, {result.impact.moved_open_incidents} open cases"
                " re-routed"
            )
        else:
            failed += 1
            kinds = ", ".join(sorted({p.kind for p in result.problems if p.severity == "error"}))
            click.echo(f"changeset {changeset_id}: FAILED, no longer fits the map: {kinds}")
    click.echo(f"apply-due: {len(due)} due, {failed} failed")
    if failed:
        raise SystemExit(1)  # so that cron reports it


def _edit_options(apply_: bool, cases: bool, description: str):
    return boundary_service.ChangeSetOptions(
        dry_run=not apply_,
        include_ids=cases,
        description=description,
        tolerances=settings().tolerances,
        max_nearest_m=settings().routing_nearest_max_m,
    )


def _run_edit(run, started: float) -> None:
    try:
        answer = run()
    except DomainError as error:
        db.session.rollback()
        where = error.details.get("location")
        at = f" at {where['lon']:.6f},{where['lat']:.6f}" if where else ""
        click.echo(f"boundaries: refused: {error.code}{at}: {error.message}")
        raise SystemExit(1) from error
    db.session.commit()
    body = answer.as_dict()
    for area in body["impact"]["area_changes"]:
        source = f" (from {area['from']})" if area["from"] else ""
        click.echo(f"  {area['action']} {area['code']} {area['name'] or ''}{source}".rstrip())
    for person in body["impact"]["assignments"]:
        click.echo(
            f"  assignment of {person['username']} ({person['duty']}) in {person['area']}:"
            f" area {person['change']}"
        )
    for case in body["impact"].get("cases") or []:
        click.echo(f"  case {case['id']}: {case['from']} -> {case['to']}")
    _echo_result(body, time.monotonic() - started)
    if not body["valid"]:
        raise SystemExit(1)


def register_cli(app: Flask) -> None:
    """Attach the command groups to the app."""
    app.cli.add_command(demo_cli)
    app.cli.add_command(incidents_cli)
    app.cli.add_command(boundaries_cli)
    app.cli.add_command(open311_cli)
    app.cli.add_command(photos_cli)
    app.cli.add_command(notifications_cli)


open311_cli = AppGroup("open311", help="Open311 GeoReport v2 integration clients.")


@open311_cli.command("add-client")
@click.argument("name")
@click.option(
    "--jurisdiction",
    default="",
    help="The jurisdiction_id this client must send (when it sends one); default: any.",
)
def add_open311_client(name: str, jurisdiction: str) -> None:
    """Create an Open311 client and its service user; print its api_key (shown only once)."""
    try:
        created = open311_clients.create_client(db.session, name=name, jurisdiction_id=jurisdiction)
    except DomainError as error:
        raise click.ClickException(error.message) from error
    db.session.commit()
    click.echo(
        f"open311: client {created.client.id} {created.client.name!r} created, reporting as"
        f" user {created.service_user.username} (id {created.service_user.id})"
    )
    click.echo(f"api_key: {created.api_key}")
    click.echo("Store it now: only its sha256 is kept, it cannot be shown again.")


photos_cli = AppGroup("photos", help="Stored photo files.")


@photos_cli.command("prune")
@click.option(
    "--older-than-hours",
    type=click.FloatRange(min=1),
    default=24,
    show_default=True,
    help="Grace period: younger files may belong to an upload still being saved.",
)
@click.option("--apply", "apply_", is_flag=True, help="Delete them (default: only list).")
def prune_photos(older_than_hours: float, apply_: bool) -> None:
    """Photo files no photo row refers to (an upload whose save failed), and interrupted writes."""
    upload_dir = settings().upload_dir
    older_than = datetime.now(UTC) - timedelta(hours=older_than_hours)
    found = photo_service.find_orphan_files(
        db.session, upload_dir=upload_dir, older_than=older_than
    )
    db.session.rollback()  # read only
    for path in found.paths:
        click.echo(f"  {path.relative_to(upload_dir)} ({path.stat().st_size} bytes)")
    size = sum(path.stat().st_size for path in found.paths)
    click.echo(
        f"photos: {len(found.unreferenced)} unreferenced files and {len(found.temporaries)}"
        f" interrupted writes older than {older_than_hours:g} h in {upload_dir}"
        f" ({size / 1e6:.1f} MB)"
    )
    if not apply_:
        click.echo("photos: dry run, nothing deleted (--apply deletes them)")
        return
    deleted = photo_service.delete_files(found.paths, older_than=older_than)
    click.echo(f"photos: deleted {deleted} files")


notifications_cli = AppGroup("notifications", help="Pushing notifications to devices.")


@notifications_cli.command("deliver")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit (cron, tests).")
@click.option("--batch", type=click.IntRange(min=1), default=100, show_default=True)
def deliver_notifications(once: bool, batch: int) -> None:
    """Push due notifications to their devices until SIGTERM (or once, with --once).

    Safe to run several at once, and to kill: see gridgov/services/delivery.py.
    """
    config = settings().delivery
    retry = delivery.Retry(config.backoff, config.backoff_max, config.max_attempts)
    webpush = (
        delivery.WebPush.from_key(config.vapid_private_key, config.vapid_subject)
        if config.vapid_private_key
        else None
    )
    stop = threading.Event()
    # SIGTERM (systemd, Docker) and Ctrl-C finish the delivery being sent, record it, then exit.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    totals = dict.fromkeys(("delivered", "gone", "failed"), 0)
    click.echo(
        "notifications: delivering what is due"
        if once
        else f"notifications: delivering, polling every {config.poll_seconds:g} s until SIGTERM"
    )
    while not stop.is_set():
        jobs = delivery.claim(db.session, now=datetime.now(UTC), lease=config.lease, limit=batch)
        db.session.commit()
        for job in jobs:
            if stop.is_set():
                break  # its lease runs out and the next run sends it
            outcome = delivery.send(job, timeout=config.timeout_seconds, webpush=webpush)
            delivery.record(db.session, job, outcome, now=datetime.now(UTC), retry=retry)
            db.session.commit()
            kind = "delivered" if outcome.delivered else "gone" if outcome.gone else "failed"
            totals[kind] += 1
            if not outcome.delivered:
                click.echo(f"delivery {job.delivery_id} to device {job.device_id}: {outcome.error}")
        if once and len(jobs) < batch:
            break
        if not jobs:
            stop.wait(config.poll_seconds)
    click.echo(
        f"notifications: {totals['delivered']} delivered, {totals['failed']} failed,"
        f" {totals['gone']} devices gone"
    )
