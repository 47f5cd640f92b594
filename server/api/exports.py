"""Exports: files to save (CSV, XLSX), and export jobs run by the worker (docs/STATS.md)."""
from __future__ import annotations

from schemas.common import PageQueryArgsSchema
from schemas.exports import ExportJobCreateSchema, ExportJobPageSchema, ExportJobSchema
from server.auth import login_required
from server.services import export_jobs as service

from .common import Blueprint, download, errors

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv"

blp = Blueprint("exports", __name__, url_prefix="/exports",
                description="Export jobs: large exports run in the background, with progress")


@blp.post("")
@login_required
@blp.arguments(ExportJobCreateSchema)
@blp.response(202, ExportJobSchema)
@errors(blp, 400, 401, 403, 404, 422, 429)
def create_export(actor, data):
    """Ask for an export (incidents or metrics, CSV or XLSX) to be made in the background"""
    job = service.create_job(actor, data["kind"], data["format"], data["lang"], data["filters"])
    return job, 202, {"Location": f"/api/v1/exports/{job.id}"}


@blp.get("")
@login_required
@blp.arguments(PageQueryArgsSchema, location="query")
@blp.response(200, ExportJobPageSchema)
@errors(blp, 401, 422)
def list_exports(actor, args):
    """List your export jobs, newest first"""
    return service.list_jobs(actor, args["page"], args["page_size"])


@blp.get("/<id:job_id>")
@login_required
@blp.response(200, ExportJobSchema)
@errors(blp, 401, 404)
def get_export(actor, job_id):
    """Get an export job: its state and progress (rows done of rows total, percent)"""
    return service.get_job(actor, job_id)


@blp.get("/<id:job_id>/file")
@login_required
@blp.response(200, content_type=CSV, description="The file (CSV, or an Excel workbook)")
@errors(blp, 401, 404, 409, 410)
def get_export_file(actor, job_id):
    """Download a done export's file (409 export.not_ready or export.failed; 410 export.expired)"""
    found = service.job_file(actor, job_id)
    return download(found.chunks, found.media_type, found.filename)
