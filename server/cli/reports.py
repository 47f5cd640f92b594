"""``flask reports quarterly``: a region's quarterly risk report (风险研判报告) as PDF or HTML."""
from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select

from server.domain.permissions import SYSTEM
from server.errors import DomainError
from server.extensions import db
from server.models import Region
from server.services import reports

from .progress import progress_bar

reports_cli = AppGroup("reports", help="Reports (风险研判报告).")
STEPS = ("figures", "hotspots", "map", "charts", "cases", "html")


@reports_cli.command("quarterly")
@click.argument("region_code")
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--quarter", type=click.IntRange(1, 4), required=True)
@click.option("--format", "kind", type=click.Choice(["pdf", "html"]), default="pdf", show_default=True)
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="The file to write (default: 风险研判报告-<code>-<year>Q<quarter>.<format> here)")
def quarterly_command(region_code, year, quarter, kind, lang, out):
    """Write the quarterly risk report of the region REGION_CODE (a community or above):
    key figures against last quarter, the ranking below it, the hotspot map, charts, overdue
    and escalated cases, disputes and mediation."""
    region = db.session.scalars(select(Region).where(Region.code == region_code)).one_or_none()
    if region is None:
        raise click.ClickException(f"No region with the code {region_code!r}.")
    steps = STEPS + (("pdf",) if kind == "pdf" else ())
    with progress_bar("step") as update:
        done = [0]

        def step(what: str) -> None:
            update(done[0], len(steps), what)
            done[0] += 1

        try:
            region, html = reports.quarterly(SYSTEM, region.id, reports.Quarter(year, quarter), lang, step=step)
        except DomainError as exc:
            raise click.ClickException(exc.message) from None
        if kind == "pdf":
            step("pdf")
            body = reports.to_pdf(html)
        else:
            body = html.encode()
        update(len(steps), len(steps), "done")
    out = out or Path(reports.file_name(region, reports.Quarter(year, quarter), kind))
    out.write_bytes(body)
    click.echo(f"{out} ({len(body):,} bytes)")
