"""``flask categories …``: seed the standard set, list the taxonomy."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from server.domain.permissions import SYSTEM
from server.errors import DomainError
from server.services import categories as service

categories_cli = AppGroup("categories", help="Incident categories (事件/部件分类): seed, list.")


@categories_cli.command("seed")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False),
              help="A seed file of the same shape (default: server/seed/categories.json)")
def seed_command(path):
    """Upsert the standard categories by code (idempotent; never un-retires)."""
    try:
        report = service.seed_categories(path)
    except DomainError as exc:
        lines = [f"{exc.code}: {exc.message}"]
        for code, messages in (exc.errors or {}).items():
            lines.extend(f"  {code}: {message}" for message in messages)
        raise click.ClickException("\n".join(lines)) from None
    click.echo(f"{report['groups']} groups, {report['leaves']} leaves: {report['created']} created, "
               f"{report['updated']} updated, {report['unchanged']} unchanged")


@categories_cli.command("list")
@click.option("--all", "include_retired", is_flag=True, help="Include retired categories")
def list_command(include_retired):
    """Print the taxonomy: each group, then its leaves."""
    f = service.CategoryFilter(include_retired=include_retired)
    page_number = 1
    while True:
        page = service.list_categories(SYSTEM, f, page_number, 500)
        for c in page.items:
            indent = "  " if c.is_leaf else ""
            retired = "  (retired)" if c.is_retired else ""
            click.echo(f"{indent}{c.code:<{10 - len(indent)}} {c.name}  {c.name_en}  [{c.kind}, {c.default_priority}, "
                       f"{c.start_level}, {c.department_kind or '-'}]{retired}")
        if page_number * page.page_size >= page.total:
            break
        page_number += 1
