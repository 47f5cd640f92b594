"""Backups (备份) of a deployment and their restore (恢复): the database and the blobs its
rows refer to, with a manifest to check them by (docs/OPERATIONS.md, "Backup and restore").

A backup is a directory ``fengqiao-<UTC time>/`` of four parts:

- ``database.dump``: ``pg_dump --format=custom`` of the database, in a snapshot this process
  exports (``pg_export_snapshot``) and reads too;
- ``blobs.tar``: every blob the rows of that snapshot refer to — each photo's original and its
  copy without metadata, each finished export's file — read through the configured store (a
  local directory or S3), and ``blobs.sha256``, their ``sha256sum`` lines;
- ``manifest.json``, written last: the format, times, migration revision, the row count of
  every table, the SHA-256 and size of each part, the PostgreSQL and pg_dump versions.

It is written under ``<name>.partial`` and renamed when complete, so a directory with a
manifest is a finished backup.

Consistency: a photo is put in the store before the row naming it commits
(``services.photos.prepare``), and photos are never deleted, so every photo row in the snapshot
has its blob in the store when the blobs are copied, after the snapshot. Blobs without a row in
the snapshot (a report still in flight, one that failed) are not copied: orphans, harmless, as
keys are content addresses. An export file the worker deletes between the snapshot and the
copy (expired) is left out and named in the manifest: its restored job answers 410
``export.expired``, as it would have a little later anyway.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from flask import current_app
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL

from server.config import child_environment
from server.extensions import db
from server.services.photos import blob_store
from server.storage import CHUNK, PHOTO_VARIANTS, BlobNotFound, photo_key

FORMAT = "fengqiao-backup/1"
DUMP, BLOBS, SUMS, MANIFEST = "database.dump", "blobs.tar", "blobs.sha256", "manifest.json"
PARTS = (DUMP, BLOBS, SUMS)

Progress = Callable[[int, int | None, str], None]  # (done, total or None, what)
Bars = Callable[[str], AbstractContextManager[Progress]]  # a progress bar counting a unit ("B", "files")
Say = Callable[[str], None]


def _no_bars(unit: str) -> AbstractContextManager[Progress]:
    return nullcontext(lambda done, total, what: None)


def _quiet(message: str) -> None:
    pass


class BackupError(Exception):
    """A backup, verification or restore that cannot go on; the message says why and what to do."""


# ---------------------------------------------------------------- PostgreSQL's client programs

def pg_tool(name: str, bin_dir: str | None = None) -> str:
    """The path of a PostgreSQL client program (``pg_dump``, ``pg_restore``): in ``bin_dir`` when
    given, else on PATH, else the newest of Debian's ``/usr/lib/postgresql/<major>/bin``."""
    if bin_dir:
        path = Path(bin_dir) / name
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BackupError(f"{path} is not a program (--pg-bin)")
        return str(path)
    found = shutil.which(name)
    if found:
        return found
    installed = sorted((p for p in Path("/usr/lib/postgresql").glob(f"*/bin/{name}") if p.parts[-3].isdigit()),
                       key=lambda p: int(p.parts[-3]))
    if installed:
        return str(installed[-1])
    raise BackupError(f"{name} is not installed: install PostgreSQL's client programs of the server's major "
                      "version or newer (Debian: postgresql-client-15), or name their directory with --pg-bin")


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq URI of ``url`` without its password, and the environment of a child process,
    which carries the password (``ps`` shows command lines, not environments)."""
    uri = URL.create("postgresql", username=url.username, host=url.host, port=url.port, database=url.database,
                     query=url.query).render_as_string(hide_password=False)
    return uri, child_environment(**({"PGPASSWORD": url.password} if url.password else {}))


def _version(program: str) -> str:
    return subprocess.run([program, "--version"], capture_output=True, text=True, check=False).stdout.strip()


# ---------------------------------------------------------------- what the database holds

# tables, views, sequences… of the database's own, not PostGIS's (spatial_ref_sys)
_OWN = """NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                         AND d.deptype = 'e')"""
_TABLES = text(f"""
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND {_OWN} ORDER BY 1""")
_OBJECTS = text(f"""
    SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname !~ '^pg_(toast|temp)' AND {_OWN} ORDER BY 1""")


def _exists(connection: Connection, table: str) -> bool:
    return connection.scalar(text("SELECT to_regclass(:table) IS NOT NULL"), {"table": f"public.{table}"})


def _revision(connection: Connection) -> str | None:
    if not _exists(connection, "alembic_version"):
        return None
    return connection.scalar(text("SELECT version_num FROM alembic_version"))


def _counts(connection: Connection) -> dict[str, int]:
    """The rows of every table of the database (PostGIS's own left out)."""
    return {table: connection.scalar(text(f'SELECT count(*) FROM public."{table}"'))
            for table in connection.scalars(_TABLES).all()}


@dataclass(frozen=True)
class Referenced:
    photos: list[str]  # keys of photos: the original and the public copy of each SHA-256
    exports: list[str]  # keys of finished exports' files

    @property
    def keys(self) -> list[str]:
        return self.photos + self.exports


def _referenced(connection: Connection) -> Referenced:
    """The blobs the rows refer to: incidents' and campaign tasks' photos, export files."""
    digests = set(connection.scalars(text("SELECT sha256 FROM incident_photos")))
    if _exists(connection, "campaign_tasks"):
        digests |= set(connection.scalars(text(
            "SELECT photo_sha256 FROM campaign_tasks WHERE photo_sha256 IS NOT NULL")))
    exports = []
    if _exists(connection, "export_jobs"):
        exports = sorted(connection.scalars(text("SELECT storage_key FROM export_jobs WHERE storage_key IS NOT NULL")))
    return Referenced(sorted(photo_key(d, v) for d in digests for v in PHOTO_VARIANTS), exports)


def _snapshot():
    """A read-only repeatable-read connection: every statement in it sees one snapshot."""
    return db.engine.connect().execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)


def _migrations() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", current_app.extensions["migrate"].directory)
    return ScriptDirectory.from_config(config)


def _head() -> str:
    return _migrations().get_current_head()


def _known(revision: str) -> bool:
    try:
        return _migrations().get_revision(revision) is not None
    except CommandError:
        return False


# ---------------------------------------------------------------- files

def _sha256(path: Path, progress: Progress | None = None) -> str:
    digest, done = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, None, path.name)
    return digest.hexdigest()


class _Hashing:
    """A file read through, its SHA-256 computed as it goes."""

    def __init__(self, file: BinaryIO):
        self.file, self.digest = file, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.digest.update(data)
        return data


def _media_type(key: str) -> str:
    """What a blob is, from its key (the store keeps it for S3; the API never serves it from there)."""
    if key.endswith(".public"):
        return "image/jpeg"
    if key.endswith(".csv"):
        return "text/csv"
    if key.endswith(".xlsx"):
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return "application/octet-stream"


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- backing up

def create(parent: Path, *, with_blobs: bool = True, bin_dir: str | None = None, say: Say = _quiet,
           bars: Bars = _no_bars) -> tuple[Path, dict]:
    """Back up the configured database and the blobs its rows refer to into a new directory
    under ``parent``; returns it and its manifest. The manifest's ``blobs.missing`` names
    photos the rows refer to that the store did not have (lost before this backup)."""
    pg_dump = pg_tool("pg_dump", bin_dir)
    started = datetime.now(timezone.utc)
    name = f"fengqiao-{started:%Y%m%dT%H%M%SZ}"
    final, work = parent / name, parent / f"{name}.partial"
    if final.exists() or work.exists():
        raise BackupError(f"{final} already exists")
    parent.mkdir(parents=True, exist_ok=True)
    work.mkdir(mode=0o700)  # personal data and password hashes: for the operator only
    try:
        manifest = _write_backup(work, pg_dump, started, with_blobs, say, bars)
        work.rename(final)
        _fsync(parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final, manifest


def _write_backup(work: Path, pg_dump: str, started: datetime, with_blobs: bool, say: Say, bars: Bars) -> dict:
    url = db.engine.url
    uri, env = _libpq(url)
    with _snapshot() as connection, connection.begin():
        snapshot = connection.scalar(text("SELECT pg_export_snapshot()"))
        revision = _revision(connection)
        server = connection.scalar(text("SHOW server_version"))
        say(f"Snapshot {snapshot} of the database {url.database} (migration {revision}): counting rows")
        counts = _counts(connection)
        referenced = _referenced(connection)
        say(f"{sum(counts.values()):,} rows in {len(counts)} tables; pg_dump --format=custom")
        _dump(pg_dump, uri, env, snapshot, work / DUMP, bars)
    blobs = None
    if with_blobs:
        say(f"Blobs the rows refer to: {len(referenced.photos):,} of photos, {len(referenced.exports):,} export "
            f"files, from the {current_app.config['PHOTO_STORE']} store")
        blobs = _copy_blobs(work, referenced, started, bars)
    parts = {}
    for part in PARTS:
        path = work / part
        if path.exists():
            path.chmod(0o600)
            _fsync(path)
            parts[part] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    manifest = {
        "format": FORMAT,
        "created_at": _utc(started),
        "finished_at": _utc(datetime.now(timezone.utc)),
        "revision": revision,
        "database": {"name": url.database, "server_version": server},
        "pg_dump": _version(pg_dump),
        "photo_store": current_app.config["PHOTO_STORE"],
        "counts": counts,
        "blobs": blobs,
        "parts": parts,
    }
    path = work / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    path.chmod(0o600)
    _fsync(path)
    return manifest


def _fsync(path: Path) -> None:
    """Make ``path`` (a file or a directory) durable: a backup that was said to be written is."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dump(pg_dump: str, uri: str, env: dict, snapshot: str, out: Path, bars: Bars) -> None:
    """pg_dump in the exported snapshot into ``out``, its size shown as it grows."""
    command = [pg_dump, "--format=custom", f"--snapshot={snapshot}", f"--file={out}", f"--dbname={uri}"]
    with tempfile.TemporaryFile() as errors, bars("B") as progress:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=errors)
        while process.poll() is None:
            time.sleep(0.2)
            progress(out.stat().st_size if out.exists() else 0, None, DUMP)
        if process.returncode:
            errors.seek(0)
            raise BackupError(f"pg_dump failed (exit status {process.returncode}): "
                              f"{errors.read().decode(errors='replace').strip()}")
        progress(out.stat().st_size, out.stat().st_size, DUMP)


def _copy_blobs(work: Path, referenced: Referenced, started: datetime, bars: Bars) -> dict:
    """Copy the referenced blobs from the store into blobs.tar, their sums into blobs.sha256."""
    store = blob_store()
    exports = set(referenced.exports)
    sums, missing, expired, size = [], [], [], 0
    keys = referenced.keys
    with tarfile.open(work / BLOBS, "w", format=tarfile.PAX_FORMAT) as tar, bars("files") as progress:
        for n, key in enumerate(keys, start=1):
            try:
                chunks = store.open_chunks(key)
            except BlobNotFound:
                (expired if key in exports else missing).append(key)
                continue
            digest = hashlib.sha256()
            with tempfile.SpooledTemporaryFile(max_size=16 * CHUNK) as spool:
                for chunk in chunks:
                    digest.update(chunk)
                    spool.write(chunk)
                member = tarfile.TarInfo(key)
                member.size, member.mode, member.mtime = spool.tell(), 0o600, int(started.timestamp())
                spool.seek(0)
                tar.addfile(member, spool)
            sums.append(f"{digest.hexdigest()}  {key}\n")
            size += member.size
            progress(n, len(keys), key)
    (work / SUMS).write_text("".join(sums), encoding="utf-8")
    return {"files": len(sums), "bytes": size, "missing": missing, "exports_expired": expired}


# ---------------------------------------------------------------- verifying

def verify(backup: Path, bars: Bars = _no_bars) -> dict:
    """Check a backup's parts against its manifest (present, sizes, SHA-256); returns the
    manifest. Touches nothing else. Errors: BackupError saying what is wrong."""
    path = backup / MANIFEST
    if not path.is_file():
        raise BackupError(f"{backup} has no {MANIFEST}: it is not a backup, or one that did not finish")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BackupError(f"{path} is not JSON ({exc}): the backup is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a manifest of this format ({FORMAT})")
    parts = manifest.get("parts") or {}
    if DUMP not in parts or set(parts) - set(PARTS) or (BLOBS in parts) != (SUMS in parts):
        raise BackupError(f"{path} lists the parts {sorted(parts)}: the backup is damaged")
    for part, expected in parts.items():
        file = backup / part
        if not file.is_file():
            raise BackupError(f"{part} is missing from {backup}")
        size = file.stat().st_size
        if size != expected["bytes"]:
            raise BackupError(f"{part} has {size:,} bytes where the manifest says {expected['bytes']:,}: "
                              "the file is damaged or incomplete")
        with bars("B") as progress:
            digest = _sha256(file, progress)
        if digest != expected["sha256"]:
            raise BackupError(f"{part}: its SHA-256 is not the one in the manifest: the file is damaged or was "
                              "changed after the backup")
    return manifest


def _sums(backup: Path) -> dict[str, str]:
    """blobs.sha256 of a backup as {key: sha256}."""
    sums = {}
    for line in (backup / SUMS).read_text(encoding="utf-8").splitlines():
        digest, _, key = line.partition("  ")
        sums[key] = digest
    return sums


# ---------------------------------------------------------------- restoring

_STEP = re.compile(r"pg_restore: (creating|executing|processing) ")


def restore(backup: Path, *, clean: bool = False, jobs: int = 1, bin_dir: str | None = None, say: Say = _quiet,
            bars: Bars = _no_bars) -> CheckReport:
    """Restore a backup into the configured database, which must be empty (``clean``: drop the
    backup's objects from it first), and its blobs into the configured store; then check what
    was restored (``check``). Nothing is changed when the backup does not verify, its revision
    is unknown to this version, or the database is not empty."""
    pg_restore = pg_tool("pg_restore", bin_dir)
    say(f"Verifying {backup}")
    manifest = verify(backup, bars)
    revision = manifest["revision"]
    if revision is not None and not _known(revision):
        raise BackupError(f"the backup's schema is at migration {revision}, which this version of Fengqiao does not "
                          f"know (its newest is {_head()}): restore it with the version that made it, or a newer one")
    url = db.engine.url
    with db.engine.connect() as connection:
        found = connection.scalars(_OBJECTS).all()
        kept = Kept(set(connection.scalars(text("SELECT extname FROM pg_extension"))),
                    {(row.nspname, row.relname) for row in connection.execute(_EXTENSION_TABLES)})
        connection.rollback()
    if found and not clean:
        shown = ", ".join(found[:5]) + (", …" if len(found) > 5 else "")
        raise BackupError(f"the database {url.database} is not empty ({len(found)} tables, views or sequences: "
                          f"{shown}): restore into a new, empty database, or give --clean to drop the backup's "
                          "objects from this one first")
    say(f"Restoring {manifest['created_at']} (migration {revision}, {sum(manifest['counts'].values()):,} rows) "
        f"into the database {url.database}")
    _restore_database(pg_restore, backup / DUMP, url, kept, clean, jobs, bars)
    db.engine.dispose()  # connections opened before the restore may hold the old catalogue
    if BLOBS in manifest["parts"]:
        say(f"Blobs: {manifest['blobs']['files']:,} into the {current_app.config['PHOTO_STORE']} store")
        try:
            _restore_blobs(backup, bars)
        except BackupError as exc:
            raise BackupError(f"the database is restored, the blobs are not: {exc}") from None
    say("Checking what was restored")
    return check(manifest, backup, bars)


@dataclass(frozen=True)
class Kept:
    """What the target database already has of extensions (made by its administrator: PostGIS),
    kept as it is: the extensions, and their tables (spatial_ref_sys), whose rows stay theirs."""

    extensions: set[str]
    tables: set[tuple[str, str]]  # (schema, name)

    _ENTRY = re.compile(r"^\d+; \d+ \d+ (?:(?:EXTENSION - |COMMENT - EXTENSION )(?P<extension>\S+)"
                        r"|TABLE DATA (?P<schema>\S+) (?P<table>\S+) )")

    def has(self, entry: str) -> bool:
        """Whether a line of ``pg_restore --list`` is one of these."""
        m = self._ENTRY.match(entry)
        return bool(m) and (m["extension"] in self.extensions or (m["schema"], m["table"]) in self.tables)


_EXTENSION_TABLES = text("""
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT """ + _OWN)


def _restore_database(pg_restore: str, dump: Path, url: URL, kept: Kept, clean: bool, jobs: int,
                      bars: Bars) -> None:
    uri, env = _libpq(url)
    listing = subprocess.run([pg_restore, "--list", str(dump)], capture_output=True, text=True, env=env, check=False)
    if listing.returncode:
        raise BackupError(f"pg_restore cannot read {dump}: {listing.stderr.strip()}")
    entries = [line for line in listing.stdout.splitlines(keepends=True) if not kept.has(line)]
    total = sum(1 for line in entries if line.strip() and not line.startswith(";"))
    command = [pg_restore, "--verbose", "--no-owner", "--no-privileges", "--exit-on-error", f"--dbname={uri}"]
    command += [f"--jobs={jobs}"] if jobs > 1 else ["--single-transaction"]
    command += ["--clean", "--if-exists"] if clean else []
    with tempfile.NamedTemporaryFile("w", suffix=".list") as chosen, bars("objects") as progress:
        chosen.writelines(entries)
        chosen.flush()
        process = subprocess.Popen([*command, f"--use-list={chosen.name}", str(dump)], env=env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True, errors="replace")
        done, said = 0, deque(maxlen=12)
        for line in process.stderr:
            if _STEP.match(line):
                done += 1
                progress(min(done, total), total, line.split(": ", 1)[1].strip()[:60])
            else:
                said.append(line.rstrip())
        if process.wait():
            state = ("nothing was restored (one transaction)" if jobs == 1 else
                     "the database is partly restored: drop it and create it again before trying again")
            raise BackupError(f"pg_restore failed; {state}:\n" + "\n".join(said))


def _restore_blobs(backup: Path, bars: Bars) -> None:
    store, sums = blob_store(), _sums(backup)
    with tarfile.open(backup / BLOBS) as tar, bars("files") as progress:
        for n, member in enumerate(tar, start=1):
            if not member.isfile() or member.name not in sums:
                raise BackupError(f"{BLOBS} holds {member.name!r}, which {SUMS} does not list: the backup is damaged")
            reader = _Hashing(tar.extractfile(member))
            store.put_file(member.name, reader, _media_type(member.name))  # refuses keys leaving the store
            if reader.digest.hexdigest() != sums[member.name]:
                store.delete(member.name)
                raise BackupError(f"{member.name} in {BLOBS} is not what {SUMS} says: the backup is damaged")
            progress(n, len(sums), member.name)


# ---------------------------------------------------------------- checking

@dataclass
class CheckReport:
    """What a check found in the configured database and store."""

    revision: str | None  # the database's migration revision
    head: str  # this version's newest
    counts: dict[str, int]  # rows by table
    count_differences: list[str] = field(default_factory=list)  # tables whose rows are not the backup's
    blobs_checked: int = 0
    missing: list[str] = field(default_factory=list)  # photos the rows refer to that the store lacks
    damaged: list[str] = field(default_factory=list)  # blobs whose bytes are not what they should be
    exports_missing: list[str] = field(default_factory=list)  # finished exports' files not in the store (410)

    @property
    def ok(self) -> bool:
        return not (self.count_differences or self.missing or self.damaged)


def check(manifest: dict | None = None, backup: Path | None = None, bars: Bars = _no_bars) -> CheckReport:
    """Check the configured database and blob store: the schema's revision against this
    version's newest; with a backup's manifest, every table's rows against it; every blob the
    rows refer to present, each photo's original with the SHA-256 its row names, and (with a
    backup) every blob as blobs.sha256 says."""
    sums = _sums(backup) if backup is not None and manifest and SUMS in manifest["parts"] else {}
    with _snapshot() as connection, connection.begin():
        revision, counts, referenced = _revision(connection), _counts(connection), _referenced(connection)
    report = CheckReport(revision, _head(), counts)
    if manifest:
        expected = manifest["counts"]
        report.count_differences = [f"{table}: {expected.get(table)} in the backup, {counts.get(table)} here"
                                    for table in sorted(set(expected) | set(counts))
                                    if expected.get(table) != counts.get(table)]
    store, exports = blob_store(), set(referenced.exports)
    with bars("files") as progress:
        for n, key in enumerate(referenced.keys, start=1):
            try:
                digest = _digest_of(store.open_chunks(key))
            except BlobNotFound:
                (report.exports_missing if key in exports else report.missing).append(key)
                continue
            wanted = sums.get(key) or (key.rsplit("/", 1)[1].split(".")[0] if key.endswith(".orig") else None)
            if wanted and digest != wanted:
                report.damaged.append(key)
            report.blobs_checked += 1
            progress(n, len(referenced.keys), key)
    return report


def _digest_of(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()
