"""``flask regions …``: import, generate grids, check coverage, locate."""
from __future__ import annotations

import json
import sys

import click
from flask.cli import AppGroup

from server.domain.permissions import SYSTEM
from server.errors import DomainError
from server.services import regions as service
from server.services import territory_bulk as bulk

from .progress import progress_bar

regions_cli = AppGroup("regions", help="The territory tree: import, grids, coverage, locate.")


def _region_id(code: str) -> int:
    page = service.list_regions(SYSTEM, service.RegionFilter(code=code), 1, 1)
    if not page.items:
        raise click.ClickException(f"No live region with code {code}.")
    return page.items[0].id


def _fail(exc: DomainError):
    raise click.ClickException(f"{exc.code}: {exc.message}")


@regions_cli.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--level", required=True, type=click.Choice(["city", "district", "street", "community", "grid"]))
@click.option("--code-field", required=True, help="Feature property holding the region code")
@click.option("--name-field", required=True, help="Feature property holding the (Chinese) name")
@click.option("--name-en-field", help="Feature property holding the English name")
@click.option("--parent-code-field", help="Feature property naming the parent's code (else: largest overlap)")
@click.option("--report", "report_file", type=click.File("w"), help="Write the full JSON report here")
def import_command(file, level, code_field, name_field, name_en_field, parent_code_field, report_file):
    """Import a GeoJSON FeatureCollection FILE as one level of the tree."""
    click.echo(f"Reading {file.name} …", err=True)
    try:
        collection = json.load(file)
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{file.name} is not JSON: {exc}") from None
    opts = bulk.ImportOptions(level=level, code_field=code_field, name_field=name_field,
                                 name_en_field=name_en_field, parent_code_field=parent_code_field)
    try:
        with progress_bar("features") as progress:
            report = bulk.import_regions(SYSTEM, collection, opts, progress)
    except DomainError as exc:
        _fail(exc)
    click.echo(
        f"{report['features']} features as {level}: {report['created']} created, {report['updated']} updated, "
        f"{report['unchanged']} unchanged, {len(report['refused'])} refused, {len(report['repaired'])} repaired, "
        f"{len(report['unassigned'])} without parent, {len(report['partly_outside_parent'])} partly outside "
        f"their parent, {len(report['overlapping_siblings'])} overlapping sibling pairs (parent rule: "
        f"{report['parent_rule']})")
    for item in report["refused"][:20]:
        click.echo(f"  refused #{item['index']} {item['code'] or ''}: {item['reason']}")
    if report_file:
        json.dump(report, report_file, ensure_ascii=False, indent=1)


@regions_cli.command("grids")
@click.argument("code")
@click.option("--target-area", default=10_000.0, show_default=True, help="Target cell area in m²")
@click.option("--sliver-ratio", default=0.3, show_default=True, help="Pieces below this share of the target merge")
@click.option("--replace", is_flag=True, help="Regenerate communities that already have cells")
def grids_command(code, target_area, sliver_ratio, replace):
    """Generate unit grid cells for community CODE, or every community under region CODE."""
    opts = bulk.GridOptions(target_area_m2=target_area, sliver_ratio=sliver_ratio, replace=replace)
    try:
        with progress_bar("communities") as progress:
            report = bulk.generate_grids(SYSTEM, _region_id(code), opts, progress)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"{report['communities']} communities: {report['created']} cells created, {report['updated']} "
               f"updated, {report['unchanged']} unchanged, {report['retired']} retired; "
               f"{len(report['skipped'])} communities skipped (already have cells; --replace to regenerate)")


@regions_cli.command("coverage")
@click.argument("code")
@click.option("--min-area", default=1.0, show_default=True, help="Ignore pieces smaller than this (m²)")
@click.option("--output", type=click.File("w"), help="Write the GeoJSON report here")
def coverage_command(code, min_area, output):
    """Check that the children of region CODE cover it: outside parts, overlaps, gaps."""
    report = service.coverage(SYSTEM, _region_id(code), min_area)
    s = report["summary"]
    click.echo(f"{code}: {report['region']['children']} children; {s['outside']} outside, {s['overlap']} overlaps, "
               f"{s['gap']} gaps (≥ {min_area} m²)" + (" — OK" if s["ok"] else ""))
    if output:
        json.dump(report, output, ensure_ascii=False)
    sys.exit(0 if s["ok"] else 1)


@regions_cli.command("locate")
@click.argument("lon", type=float)
@click.argument("lat", type=float)
@click.option("--crs", default="wgs84", type=click.Choice(["wgs84", "gcj02", "bd09"]))
def locate_command(lon, lat, crs):
    """Print the grid cell at LON LAT and its chain up to the city."""
    try:
        location = service.locate(SYSTEM, lon, lat, crs)
    except DomainError as exc:
        _fail(exc)
    for region in location.chain:
        click.echo(f"{region['level']:<10} {region['code']:<16} {region['name']}")
