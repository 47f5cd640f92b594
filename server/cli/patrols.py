"""``flask patrols coverage``: compute and store the patrol coverage of past days by hand."""
from __future__ import annotations

from datetime import timedelta

import click
from flask.cli import AppGroup

from server.errors import DomainError
from server.services import coverage as service

from .progress import progress_bar

patrols_cli = AppGroup("patrols", help="Patrols (巡查): the daily coverage of the grid cells.")


@patrols_cli.command("coverage")
@click.option("--day", "first", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="The local day (FENGQIAO_TIMEZONE) to compute, YYYY-MM-DD")
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]),
              help="Compute every day from --day to this one (inclusive)")
def coverage_command(first, last):
    """Compute and store the coverage of every grid cell on a past day (again: the same rows).

    The worker does this on its own after midnight, and again for a day whose points changed
    since; this is for a backfill or a check. Today is never stored: it is computed when read.
    """
    first = first.date()
    last = last.date() if last else first
    if last < first:
        raise click.BadParameter("--to is before --day", param_hint="--to")
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    try:
        with progress_bar("days") as progress:
            done = service.compute_days(days, progress)
    except DomainError as exc:
        raise click.ClickException(f"{exc.message} ({exc.code})") from None
    for day, cells in done.items():
        click.echo(f"{day}: {cells} cells walked near")
