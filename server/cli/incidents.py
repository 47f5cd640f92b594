"""``flask incidents replay``: post a 311-style CSV through the HTTP API as grid workers."""
from __future__ import annotations

import json
import sys
from datetime import timedelta

import click
from flask.cli import AppGroup

from server.services import replay as service

from .progress import progress_bar

incidents_cli = AppGroup("incidents", help="Incidents (事件): replay a 311-style CSV through the API.")


@incidents_cli.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--mapping", "mapping_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Columns, time format and zone, description template, request type → category "
                   "(e.g. server/seed/la311-mapping.json)")
@click.option("--base-url", default="http://127.0.0.1:5000", show_default=True,
              help="The API server (same database and secret key as this command)")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Reports in flight at once")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N rows")
@click.option("--shift-days", default=0, show_default=True, type=int,
              help="Move every time N days later (the API refuses reports over 90 days old)")
@click.option("--report", "report_file", type=click.File("w"), help="Write the counts here as JSON")
def replay_command(file, mapping_path, base_url, concurrency, limit, shift_days, report_file):
    """Post each row of FILE as a report (上报) by the grid worker of its cell.

    A row's cell is located in the database; its reporter is the cell's primary worker,
    else another active grid worker whose scope holds the cell, signed in with a token
    this command mints. The report's client_uuid derives from the row's id, so a re-run
    creates nothing twice: it is answered with replays. Exit status 1 when the server
    could not be reached or answered 5xx.
    """
    try:
        mapping = service.Mapping.load(mapping_path)
    except service.MappingError as exc:
        raise click.ClickException(str(exc)) from None
    unknown = service.unknown_categories(mapping)
    if unknown:
        raise click.ClickException(f"{mapping_path}: no live leaf category {', '.join(unknown)} here "
                                   "(flask categories seed?)")
    click.echo(f"Replaying {file} to {base_url} ({concurrency} at a time) …", err=True)
    try:
        with progress_bar("rows") as progress:
            report = service.replay_csv(file, mapping, base_url, concurrency=concurrency, limit=limit,
                                        shift=timedelta(days=shift_days), progress=progress)
    except service.MappingError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    click.echo(summary(report))
    if report_file:
        json.dump(report.as_dict(), report_file, ensure_ascii=False, indent=1)
        report_file.write("\n")
    if report.failed:
        click.echo("The server was unreachable or answered 5xx: see the counts above.", err=True)
        sys.exit(1)


def summary(report: service.ReplayReport) -> str:
    """The counts as a small table: rows, refused by reason, posted by outcome."""
    lines = [("rows", report.rows), ("refused before posting", sum(report.refused.values()))]
    lines += [(f"  {reason}", report.refused[reason]) for reason in service.REFUSALS]
    lines += [("posted", report.created + report.replayed + sum(report.errors.values())),
              ("  created", report.created), ("  replayed", report.replayed),
              ("  errors", sum(report.errors.values()))]
    lines += [(f"    {code}", n) for code, n in sorted(report.errors.items(), key=lambda item: (-item[1], item[0]))]
    if report.unreachable or report.unsent:
        lines += [("server unreachable", report.unreachable), ("not sent (stopped)", report.unsent)]
    width = max(len(label) for label, _ in lines) + 2
    rate = f" in {report.seconds:.1f} s" if report.seconds else ""
    return "\n".join([f"{label:<{width}}{count:>8,}" for label, count in lines] + [f"({report.file}{rate})"])
