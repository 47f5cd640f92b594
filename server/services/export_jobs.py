"""Export jobs (导出任务, docs/STATS.md "Exports"): large exports asked for over the API, run
by the worker with progress, fetched when done, deleted after a retention.

Asking (``create_job``) checks the filters as the synchronous export would, so a bad job is
never queued. The worker's step (``work``) recovers runs whose worker went silent, expires
old files, then claims one queued job (``FOR UPDATE SKIP LOCKED``) and runs it with its
owner's scope as it is now, committing progress in short transactions of its own. Every
update of a run names its ``attempt``: a run whose job was taken from it stops.
"""
from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain
from typing import BinaryIO

from flask import current_app
from marshmallow import ValidationError
from sqlalchemy import func, select, text, update

from schemas.exports import load_filters
from server.domain.export_jobs import ACTIVE, sources, target
from server.domain.permissions import STATS_READ, Actor
from server.errors import Conflict, DomainError, Forbidden, Gone, InvalidInput, NotFound, RateLimited
from server.extensions import db
from server.models import ExportJob, Region, User
from server.models._base import utcnow
from server.storage import BlobNotFound

from . import exports, notify
from .access import require
from .incident_queries import IncidentFilter
from .pagination import Page, paginate
from .photos import blob_store
from .regions import get_region

log = logging.getLogger("fengqiao.exports")

MEDIA_TYPES = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
KIND_LABELS = {"incidents": ("事件", "Incidents"), "metrics": ("考核指标", "Metrics")}
WAKE_WORKER = "SELECT pg_notify('fengqiao_outbox', 'export')"  # the channel the worker listens on


def _not_found() -> NotFound:
    return NotFound("export.not_found", "No such export.")


# ---------------------------------------------------------------- asking, reading

def _parsed(kind: str, filters: dict) -> dict:
    try:
        return load_filters(kind, filters)
    except ValidationError as exc:
        raise InvalidInput("request.invalid", "The request has invalid fields; see errors.",
                           errors={"filters": exc.messages}) from None


def _check_rights(actor: Actor, kind: str, args: dict) -> None:
    """What the synchronous export would refuse: for metrics, a region outside the actor's
    scope (region.not_found) or an actor who is not its manager (auth.forbidden)."""
    if kind == "metrics":
        require(actor, STATS_READ, get_region(actor, args["region_id"]))


def create_job(actor: Actor, kind: str, fmt: str, lang: str, filters: dict) -> ExportJob:
    """Queue an export of ``kind`` (incidents, metrics) as ``fmt`` (csv, xlsx). Errors:
    request.invalid (the filters), region.not_found, auth.forbidden, export.too_many_jobs."""
    _check_rights(actor, kind, _parsed(kind, filters))
    # one request at a time per person, so two at once cannot both pass the count
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('fengqiao:export-jobs'), :user)"),
                       {"user": actor.user_id})
    active = db.session.scalar(select(func.count()).select_from(ExportJob).where(
        ExportJob.user_id == actor.user_id, ExportJob.state.in_(sorted(ACTIVE))))
    limit = current_app.config["EXPORT_JOBS_ACTIVE_PER_USER"]
    if active >= limit:
        db.session.rollback()
        raise RateLimited("export.too_many_jobs", f"You have {active} exports queued or running; wait for one "
                                                  "to finish.", headers={"Retry-After": "60"})
    job = ExportJob(user_id=actor.user_id, kind=kind, format=fmt, lang=lang, filters=filters, state="queued",
                    created_at=utcnow())
    db.session.add(job)
    db.session.execute(text(WAKE_WORKER))  # delivered at commit: a waiting worker starts at once
    db.session.commit()
    return job


def list_jobs(actor: Actor, page: int, page_size: int) -> Page:
    """The actor's own jobs, newest first."""
    stmt = select(ExportJob).where(ExportJob.user_id == actor.user_id).order_by(ExportJob.id.desc())
    return paginate(stmt, page, page_size)


def get_job(actor: Actor, job_id: int) -> ExportJob:
    """One of the actor's own jobs. Errors: export.not_found (another's job too: an export
    carries what its owner could see)."""
    job = db.session.get(ExportJob, job_id)
    if job is None or job.user_id != actor.user_id:
        raise _not_found()
    return job


@dataclass(frozen=True)
class ExportFile:
    chunks: Iterator[bytes]  # the file as the store gives it, a chunk at a time
    media_type: str
    filename: str


def job_file(actor: Actor, job_id: int) -> ExportFile:
    """A done job's file. Errors: export.not_found, export.not_ready (queued or running),
    export.failed (409, the job's error_code says why), export.expired (410)."""
    job = get_job(actor, job_id)
    if job.state in ACTIVE:
        raise Conflict("export.not_ready", "The export is not ready yet; see its progress.")
    if job.state == "failed":
        raise Conflict("export.failed", f"The export failed ({job.error_code}); ask for it again.")
    if job.state == "expired" or job.storage_key is None:
        raise Gone("export.expired", "The export's file has been deleted; ask for it again.")
    try:
        chunks = blob_store().open_chunks(job.storage_key)  # sent as it is read
    except BlobNotFound:
        raise Gone("export.expired", "The export's file has been deleted; ask for it again.") from None
    return ExportFile(chunks, MEDIA_TYPES[job.format], f"export-{job.id}.{job.format}")


# ---------------------------------------------------------------- the worker's step

@dataclass
class ExportReport:
    done: int = 0
    failed: int = 0
    requeued: int = 0
    expired: int = 0
    lost: int = 0  # runs whose job was taken from them
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Run:
    """A claimed job as its run knows it; ``attempt`` is the run's lease."""

    job_id: int
    attempt: int
    user_id: int
    kind: str
    format: str
    lang: str
    filters: dict


class _Lost(Exception):
    """The job is no longer this run's (requeued or claimed again)."""


def work(clock: Callable[[], datetime] = utcnow) -> ExportReport:
    """One pass of the worker over export jobs: recover silent runs, expire old files, run
    the oldest queued job. Commits as it goes."""
    report = ExportReport()
    now = clock()
    _recover(now, report)
    _expire(now, report)
    run = claim(now)
    if run is not None:
        _execute(run, clock, report)
    return report


def _retention() -> timedelta:
    return timedelta(hours=current_app.config["EXPORT_RETENTION_HOURS"])


def _recover(now: datetime, report: ExportReport) -> None:
    """Running jobs silent for longer than the stale interval lost their worker: requeued
    while attempts are left, else failed (export.worker_lost)."""
    stale = now - timedelta(minutes=current_app.config["EXPORT_JOB_STALE_MINUTES"])
    attempts = current_app.config["EXPORT_JOB_MAX_ATTEMPTS"]
    jobs = db.session.scalars(select(ExportJob).where(
        ExportJob.state.in_(sources("requeue")), ExportJob.progress_at < stale)
        .order_by(ExportJob.id).limit(100).with_for_update(skip_locked=True)).all()
    for job in jobs:
        if job.attempt < attempts:
            # queued again from nothing: the lost run's progress is not this job's any more
            job.state, job.rows_done, job.rows_total, job.started_at = target("requeue"), 0, None, None
            report.requeued += 1
        else:
            job.state, job.error_code = target("fail"), "export.worker_lost"
            job.finished_at, job.expires_at = now, now + _retention()
            report.failed += 1
        log.warning("export %s: no progress since %s (attempt %s): %s", job.id, job.progress_at, job.attempt,
                    job.state)
    db.session.commit()


def _expire(now: datetime, report: ExportReport) -> None:
    """Finished jobs past their retention: the file deleted, the job expired."""
    jobs = db.session.scalars(select(ExportJob).where(
        ExportJob.state.in_(sources("expire")), ExportJob.expires_at <= now)
        .order_by(ExportJob.id).limit(100).with_for_update(skip_locked=True)).all()
    for job in jobs:
        if job.storage_key:
            blob_store().delete(job.storage_key)
        job.state, job.storage_key = target("expire"), None
        report.expired += 1
    db.session.commit()


def claim(now: datetime) -> _Run | None:
    """Take the oldest queued job (``SKIP LOCKED``: another worker's claim is passed over) and
    mark it running, in a transaction of its own."""
    job = db.session.scalars(select(ExportJob).where(ExportJob.state.in_(sources("claim")))
                             .order_by(ExportJob.id).limit(1).with_for_update(skip_locked=True)).first()
    if job is None:
        db.session.commit()
        return None
    job.state, job.attempt = target("claim"), job.attempt + 1
    job.started_at = job.progress_at = now
    job.rows_done, job.rows_total, job.error_code = 0, None, None
    run = _Run(job.id, job.attempt, job.user_id, job.kind, job.format, job.lang, dict(job.filters))
    db.session.commit()
    return run


def _update(run: _Run, event: str | None = None, **values) -> None:
    """Update the run's job if it is still this run's (running, same attempt), moved by
    ``event`` if given; raises _Lost otherwise. No commit."""
    stmt = update(ExportJob).where(ExportJob.id == run.job_id, ExportJob.attempt == run.attempt,
                                   ExportJob.state == "running")
    if event is not None:
        stmt = stmt.where(ExportJob.state.in_(sources(event)))
        values["state"] = target(event)
    if db.session.execute(stmt.values(**values)).rowcount != 1:
        raise _Lost()


def _owner(user_id: int) -> Actor:
    """The job's owner as they are now (docs: a job runs with its owner's scope at run time).
    Errors: export.owner_inactive."""
    row = db.session.execute(select(User.role, User.department_id, Region.path)
                             .join(Region, Region.id == User.region_id)
                             .where(User.id == user_id, User.is_active)).one_or_none()
    if row is None:
        raise Forbidden("export.owner_inactive", "The export's owner is no longer active.")
    return Actor(user_id=user_id, role=row.role, scope_path=row.path, department_id=row.department_id)


def _execute(run: _Run, clock: Callable[[], datetime], report: ExportReport) -> None:
    """Run a claimed job to done or failed."""
    key = None
    try:
        actor = _owner(run.user_id)
        with tempfile.TemporaryFile() as out:
            total = _write(run, actor, out, clock)
            size = out.tell()
            out.seek(0)
            key = f"exports/{uuid.uuid4().hex}.{run.format}"
            blob_store().put_file(key, out, MEDIA_TYPES[run.format])  # in chunks, never whole in memory
        now = clock()
        _update(run, "finish", rows_done=total, storage_key=key, size_bytes=size, progress_at=now, finished_at=now,
                expires_at=now + _retention())
        _tell_owner(run, total, now)
        db.session.commit()
        report.done += 1
    except _Lost:
        db.session.rollback()
        if key:
            blob_store().delete(key)
        log.warning("export %s: taken from this run (attempt %s); stopped", run.job_id, run.attempt)
        report.lost += 1
    except Exception as exc:  # noqa: BLE001 — a job's failure is recorded, never the worker's
        db.session.rollback()
        if key:
            blob_store().delete(key)
        if isinstance(exc, DomainError):
            code = exc.code
            log.info("export %s failed: %s", run.job_id, code)
        else:
            code = "export.internal_error"
            log.exception("export %s failed", run.job_id)
        _fail(run, code, clock(), report)


def _fail(run: _Run, code: str, now: datetime, report: ExportReport) -> None:
    try:
        _update(run, "fail", error_code=code, progress_at=now, finished_at=now, expires_at=now + _retention())
        db.session.commit()
        report.failed += 1
        report.errors.append(f"export {run.job_id}: {code}")
    except _Lost:
        db.session.rollback()
        report.lost += 1


def _tell_owner(run: _Run, rows: int, now: datetime) -> None:
    """The owner's inbox entry (导出完成) and a push, in the transaction that marks the job done."""
    zh, en = KIND_LABELS[run.kind]
    kind = run.format.upper()
    subject = notify.Subject(None, f"{zh}导出 {kind}：{rows:,}行", f"{en} export {kind}: {rows:,} rows")
    notify.tell([notify.Tell((run.user_id,), "export_done", subject, f"export:{run.job_id}")], now)


def _write(run: _Run, actor: Actor, out: BinaryIO, clock: Callable[[], datetime]) -> int:
    """Write the job's file into ``out``: count the rows, then write them, committing the
    progress every ``exports.BATCH`` rows. Returns the rows written (headers not counted)."""
    args = load_filters(run.kind, run.filters)
    cap = current_app.config["EXPORT_JOB_MAX_ROWS"]

    def counted(total: int):
        _update(run, rows_total=total, progress_at=clock())
        db.session.commit()

    def progress(done: int):
        _update(run, rows_done=done, progress_at=clock())
        db.session.commit()

    if run.kind == "incidents":
        f = IncidentFilter(**args)
        with exports.snapshot() as connection:
            total = exports.count_incidents(actor, f, connection, limit=cap)
            if total > cap:
                raise exports.too_large(cap, "narrow the filters (a job's limit)")
            counted(total)
            rows = _reporting(exports.incident_rows(actor, f, run.lang, connection), progress)
            sheets = [(exports.incident_sheet_title(run.lang), chain([exports.header(exports.COLUMNS, run.lang)],
                                                                     rows))]
            _write_sheets(run.format, out, sheets)
        return total
    _check_rights(actor, "metrics", args)  # the region may have left the owner's scope since
    period, weights, region_id = args["period"], args["weights"], args["region_id"]
    if run.format == "csv":
        tables = [("", exports.region_rows(actor, region_id, period, weights, run.lang))]
    else:
        tables = exports.metric_sheets(actor, region_id, period, weights, run.lang)
    total = sum(len(rows) - 1 for _, rows in tables)  # a few hundred rows at most: no progress between
    counted(total)
    _write_sheets(run.format, out, tables)
    return total


def _write_sheets(fmt: str, out: BinaryIO, sheets: list[tuple[str, Iterable[list]]]) -> None:
    if fmt == "csv":
        ((_, rows),) = sheets
        exports.write_csv(out, rows)
    else:
        exports.write_xlsx(out, sheets)


def _reporting(rows: Iterable[list], progress: Callable[[int], None]) -> Iterator[list]:
    """``rows`` as they are, calling ``progress(n)`` after every ``exports.BATCH`` of them
    have been written (n: the rows so far)."""
    for n, row in enumerate(rows, start=1):
        yield row
        if n % exports.BATCH == 0:
            progress(n)
