"""Flask CLI commands (`flask --app wsgi …`): parse, call a service, commit once."""

import time

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from geo.demo_district import generate_district
from gridgov.extensions import db
from gridgov.services import demo as demo_service
from gridgov.services import workflow
from gridgov.services.calendar import load_calendar

demo_cli = AppGroup("demo", help="The demo district.")
incidents_cli = AppGroup("incidents", help="Case handling jobs.")


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
def load_demo(size: str, seed: int, if_empty: bool) -> None:
    """Generate the demo 鄞州区 and load it with its users and categories."""
    if if_empty and demo_service.has_areas(db.session):
        click.echo("demo: areas already loaded, nothing to do")
        return
    started = time.monotonic()

    def progress(level: str, count: int) -> None:
        click.echo(f"demo: {count:>6} {level} areas ({time.monotonic() - started:5.1f} s)")

    result = demo_service.load_demo(
        db.session, areas=generate_district(seed=seed, size=size), progress=progress
    )
    db.session.commit()
    click.echo(
        f"demo: loaded {sum(result.areas_by_level.values())} areas, {result.categories} categories"
        f" and {len(result.users)} users in {time.monotonic() - started:.1f} s"
        " (`flask demo logins` lists the users)"
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
    calendar = load_calendar(current_app.config["WORK_CALENDAR_FILE"])
    report = workflow.escalate_overdue(db.session, calendar=calendar, limit=limit)
    db.session.commit()
    for incident_id, from_level, to_level in report.escalated:
        click.echo(f"escalated incident {incident_id}: {from_level} -> {to_level}")
    click.echo(
        f"escalate-overdue: {len(report.escalated)} escalated,"
        f" {report.overdue_at_top} overdue at district level (cannot go higher)"
    )


def register_cli(app: Flask) -> None:
    """Attach the command groups to the app."""
    app.cli.add_command(demo_cli)
    app.cli.add_command(incidents_cli)
