"""``flask calendar …``: which years have a holiday schedule, and the admins' entries."""
from __future__ import annotations

from datetime import date, datetime

import click
from flask.cli import AppGroup

from server.domain.permissions import SYSTEM
from server.errors import DomainError
from server.services import calendar as service

calendar_cli = AppGroup("calendar", help="The working-time calendar (工作日历): status, set and clear days.")


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@calendar_cli.command("status")
@click.option("--from-year", type=int, help="First year (default: last year)")
@click.option("--to-year", type=int, help="Last year (default: next year)")
def status_command(from_year, to_year):
    """On whose word each year's work days stand; warns about years counted by weekdays only."""
    this_year = datetime.now().year
    years = range(from_year or this_year - 1, (to_year or this_year + 1) + 1)
    missing = []
    for row in service.coverage(years):
        zh, en = service.SOURCE_LABELS[row.source]
        click.echo(f"{row.year}  {zh} / {en}  ({row.entries} administrator entries)")
        if row.source == "weekdays":
            missing.append(row.year)
    if missing:
        click.echo(f"No holiday schedule for {', '.join(map(str, missing))}: enter the State Council's "
                   "schedule with `flask calendar set` (public holidays off, make-up days on).", err=True)


@calendar_cli.command("set")
@click.argument("day")
@click.argument("kind", type=click.Choice(["workday", "dayoff"]))
@click.option("--name", help="e.g. 春节 / Spring Festival")
def set_command(day, kind, name):
    """Make DAY a work day or a day off, whatever the schedule says."""
    info = service.set_day(SYSTEM, _day(day), kind == "workday", name)
    click.echo(f"{info.day}: {'work day' if info.is_workday else 'day off'} (administrator)")


@calendar_cli.command("clear")
@click.argument("day")
def clear_command(day):
    """Drop the administrators' entry for DAY: the schedule decides again."""
    try:
        info = service.clear_day(SYSTEM, _day(day))
    except DomainError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    click.echo(f"{info.day}: {'work day' if info.is_workday else 'day off'} ({info.source})")
