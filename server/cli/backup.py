"""``flask backup create|verify|restore|check``: backups of the database and the photo store,
and their restore (docs/OPERATIONS.md, "Backup and restore")."""
from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from server import backup as service

from .progress import progress_bar

backup_cli = AppGroup("backup", help="Backups (备份): the database and the photos and export files its rows "
                                     "refer to, checked by a manifest; their restore and checks.")

PG_BIN = click.option("--pg-bin", type=click.Path(exists=True, file_okay=False),
                      help="The directory of pg_dump and pg_restore (default: PATH, then the newest "
                           "/usr/lib/postgresql/*/bin)")


def _say(message: str) -> None:
    click.echo(message, err=True)


def _failed(exc: service.BackupError) -> click.ClickException:
    return click.ClickException(str(exc))


@backup_cli.command("create")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-blobs", is_flag=True, help="The database only: for a photo store backed up on its own "
              "(an S3 bucket with versioning and replication)")
@PG_BIN
def create_command(directory: Path, no_blobs: bool, pg_bin: str | None):
    """Back up the database (pg_dump, one snapshot) and the photos and export files its rows refer
    to into a new directory fengqiao-<UTC time> under DIRECTORY; print its path.

    Run it against the primary itself, not through PgBouncer. Exit status 1 when the database
    refers to photos the store does not have (the backup is written, and names them).
    """
    try:
        path, manifest = service.create(directory, with_blobs=not no_blobs, bin_dir=pg_bin, say=_say,
                                        bars=progress_bar)
    except service.BackupError as exc:
        raise _failed(exc) from None
    blobs = manifest["blobs"]
    dump = manifest["parts"][service.DUMP]["bytes"]
    _say(f"Backed up migration {manifest['revision']}: {sum(manifest['counts'].values()):,} rows "
         f"({dump:,} bytes dumped)"
         + (f", {blobs['files']:,} blobs ({blobs['bytes']:,} bytes)" if blobs else ", no blobs (--no-blobs)"))
    if blobs and blobs["exports_expired"]:
        _say(f"{len(blobs['exports_expired'])} export files were deleted (expired) while the backup ran: their "
             "jobs will answer 410 export.expired")
    click.echo(str(path))
    if blobs and blobs["missing"]:
        raise click.ClickException(
            f"{len(blobs['missing'])} photos the database refers to are missing from the photo store (lost before "
            f"this backup; listed in {path / service.MANIFEST}), e.g. {blobs['missing'][0]}")


@backup_cli.command("verify")
@click.argument("backup", type=click.Path(exists=True, file_okay=False, path_type=Path))
def verify_command(backup: Path):
    """Check a backup's parts against its manifest (sizes and SHA-256). Touches nothing."""
    try:
        manifest = service.verify(backup, bars=progress_bar)
    except service.BackupError as exc:
        raise _failed(exc) from None
    click.echo(f"{backup}: complete and intact (made {manifest['created_at']}, migration {manifest['revision']}, "
               f"{sum(manifest['counts'].values()):,} rows, parts {', '.join(manifest['parts'])})")


@backup_cli.command("restore")
@click.argument("backup", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--clean", is_flag=True, help="Restore into a database that is not empty: the backup's objects "
              "are dropped from it first, in the same transaction (what is not in the backup stays)")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="pg_restore's parallel jobs; above 1 the restore is no longer one transaction")
@PG_BIN
def restore_command(backup: Path, clean: bool, jobs: int, pg_bin: str | None):
    """Restore BACKUP into the database of DATABASE_URL (new and empty: created with createdb, with or
    without PostGIS) and its blobs into the configured photo store, then check them.

    The backup is verified first; a damaged one, an unknown migration or a database that is not
    empty change nothing. Stop the web processes and the worker of the target first.
    """
    try:
        report = service.restore(backup, clean=clean, jobs=jobs, bin_dir=pg_bin, say=_say, bars=progress_bar)
    except service.BackupError as exc:
        raise _failed(exc) from None
    _report(report)


@backup_cli.command("check")
def check_command():
    """Check the configured database and photo store: the schema's migration, and every photo and
    export file the rows refer to present with the right bytes (SHA-256)."""
    _report(service.check(bars=progress_bar))


def _report(report: service.CheckReport) -> None:
    click.echo(f"migration {report.revision} (this version's newest: {report.head}); "
               f"{sum(report.counts.values()):,} rows in {len(report.counts)} tables; "
               f"{report.blobs_checked:,} blobs checked in the {current_app.config['PHOTO_STORE']} store")
    for line in report.count_differences:
        click.echo(f"rows differ: {line}")
    for key in report.missing:
        click.echo(f"missing: {key}")
    for key in report.damaged:
        click.echo(f"damaged: {key}")
    if report.exports_missing:
        click.echo(f"{len(report.exports_missing)} export files missing (their jobs answer 410 export.expired)")
    if not report.ok:
        raise click.ClickException(f"{len(report.count_differences)} tables differ, {len(report.missing)} photos "
                                   f"missing, {len(report.damaged)} blobs damaged")
    if report.revision != report.head:
        click.echo(f"The schema is at {report.revision}: run `flask --app wsgi db upgrade` before starting the "
                   f"web processes (/readyz answers 503 until it is at {report.head})")
    else:
        click.echo("OK")
