"""Reports: the quarterly risk report (风险研判报告) of a region, as PDF or HTML."""
from schemas.reports import QuarterlyReportArgsSchema
from server.auth import login_required
from server.services import reports as service

from .common import Blueprint, download, errors

blp = Blueprint("reports", __name__, url_prefix="/reports", description="Reports (风险研判报告)")
MIMETYPES = {"pdf": "application/pdf", "html": "text/html; charset=utf-8"}


@blp.get("/regions/<id:region_id>/quarterly")
@login_required
@blp.arguments(QuarterlyReportArgsSchema, location="query")
@blp.response(200, content_type="application/pdf", description="The report as PDF (A4), or HTML with format=html")
@errors(blp, 401, 403, 404, 422)
def quarterly_report(actor, args, region_id):
    """A region's quarterly risk report: key figures against last quarter, the ranking below it,
    the hotspot map, charts, overdue and escalated cases, disputes (managers, inside their scope)"""
    kind = args["format"]
    region, html = service.quarterly(actor, region_id, args["quarter"], args["lang"])
    body = service.to_pdf(html) if kind == "pdf" else html
    return download(body, MIMETYPES[kind], service.file_name(region, args["quarter"], kind), inline=kind == "html")
