"""Evaluation (考核): a region's figures, its children's, their ranking (docs/STATS.md)."""
from schemas.stats import (
    DepartmentStatsSchema, HotspotArgsSchema, HotspotsSchema, PeriodArgsSchema, RegionStatsArgsSchema,
    RegionStatsSchema, TrendArgsSchema, TrendsSchema, WorkerStatsSchema,
)
from schemas.coverage import MissedReportsArgsSchema, MissedReportsSchema
from schemas.exports import MetricsExportArgsSchema, MetricsTableExportArgsSchema
from server.auth import login_required
from server.domain.hotspots import HotspotRules
from server.models._base import utcnow
from server.services import hotspots as hotspot_service
from server.services import exports
from server.services import missed_reports as missed_service
from server.services import stats as service

from .common import Blueprint, download, errors
from .exports import CSV, XLSX

blp = Blueprint("stats", __name__, url_prefix="/stats", description="Evaluation (考核) figures")


@blp.get("/regions/<id:region_id>")
@login_required
@blp.arguments(RegionStatsArgsSchema, location="query")
@blp.response(200, RegionStatsSchema)
@errors(blp, 401, 403, 404, 422)
def region_stats(actor, args, region_id):
    """A region's figures over a period, each child's with score and rank, compared with the
    period before and the year before (managers, inside their scope)"""
    return service.region_stats(actor, region_id, args["period"], args["weights"])


@blp.get("/regions/<id:region_id>/departments")
@login_required
@blp.arguments(PeriodArgsSchema, location="query")
@blp.response(200, DepartmentStatsSchema)
@errors(blp, 401, 403, 404, 422)
def department_stats(actor, args, region_id):
    """The departments given tasks for the region's cases in a period: tasks, acknowledged on
    time, done, hours (managers, inside their scope)"""
    return service.department_stats(actor, region_id, args["period"])


@blp.get("/regions/<id:region_id>/workers")
@login_required
@blp.arguments(PeriodArgsSchema, location="query")
@blp.response(200, WorkerStatsSchema)
@errors(blp, 401, 403, 404, 422)
def worker_stats(actor, args, region_id):
    """The region's grid workers in a period: reports, valid reports, resolved on the spot,
    tasks acknowledged on time and done (managers, inside their scope)"""
    return service.worker_stats(actor, region_id, args["period"])


@blp.get("/regions/<id:region_id>/hotspots")
@login_required
@blp.arguments(HotspotArgsSchema, location="query")
@blp.response(200, HotspotsSchema)
@errors(blp, 401, 403, 404, 422)
def region_hotspots(actor, args, region_id):
    """Hotspots (风险研判): the cells (or regions of a level) whose reports of a category group
    in the window exceed their own past under a Poisson test, and the spots reported again and
    again (managers, inside their scope)"""
    rules = HotspotRules(days=args["days"], baseline_windows=args["baseline_windows"], alpha=args["alpha"],
                         min_count=args["min_count"])
    return hotspot_service.hotspots(actor, region_id, args["level"], args["end"] or utcnow(), rules,
                                    args["radius_m"], args["repeat_min"])


@blp.get("/regions/<id:region_id>/trends")
@login_required
@blp.arguments(TrendArgsSchema, location="query")
@blp.response(200, TrendsSchema)
@errors(blp, 401, 403, 404, 422)
def region_trends(actor, args, region_id):
    """The region's reports by category group and week or month (managers, inside their scope)"""
    return service.trends(actor, region_id, args["period"], args["interval"])


@blp.get("/regions/<id:region_id>/missed-reports")
@login_required
@blp.arguments(MissedReportsArgsSchema, location="query")
@blp.response(200, MissedReportsSchema)
@errors(blp, 401, 403, 404, 422)
def region_missed_reports(actor, args, region_id):
    """Missed reports (漏报): the region's hotline, platform and citizen cases near which a grid
    worker's track passed in the 24 hours before with no report of the kind, per worker and
    per cell (managers, inside their scope; at most 92 days)"""
    return missed_service.missed_reports(actor, region_id, args["period"])


def _file_name(args: dict, region_id: int, extension: str, table: str | None = None) -> str:
    period = args["period"]
    part = f"-{table}" if table else ""
    return f"stats-{region_id}-{period.start:%Y%m%d}-{period.end:%Y%m%d}{part}.{extension}"


@blp.get("/regions/<id:region_id>/export.csv")
@login_required
@blp.arguments(MetricsExportArgsSchema, location="query")
@blp.response(200, content_type=CSV, description="UTF-8 CSV with a byte-order mark")
@errors(blp, 401, 403, 404, 422)
def export_region_stats(actor, args, region_id):
    """Export a region's figures as CSV: a row for the region and one per child region (every
    figure of the stats, rates in %, changes in percentage points; lang=zh|en headers)"""
    body = exports.metrics_csv(actor, "regions", region_id, args["period"], args["weights"], args["lang"])
    return download(body, CSV, _file_name(args, region_id, "csv"))


@blp.get("/regions/<id:region_id>/export.xlsx")
@login_required
@blp.arguments(MetricsExportArgsSchema, location="query")
@blp.response(200, content_type=XLSX, description="An Excel workbook: sheets 地区, 部门, 网格员")
@errors(blp, 401, 403, 404, 422)
def export_region_stats_xlsx(actor, args, region_id):
    """Export a region's figures as an Excel workbook: regions, departments and grid workers"""
    body = exports.metrics_xlsx(actor, region_id, args["period"], args["weights"], args["lang"])
    return download(body, XLSX, _file_name(args, region_id, "xlsx"))


@blp.get("/regions/<id:region_id>/departments/export.csv")
@login_required
@blp.arguments(MetricsTableExportArgsSchema, location="query")
@blp.response(200, content_type=CSV, description="UTF-8 CSV with a byte-order mark")
@errors(blp, 401, 403, 404, 422)
def export_department_stats(actor, args, region_id):
    """Export the departments' figures for a region's cases as CSV"""
    body = exports.metrics_csv(actor, "departments", region_id, args["period"], lang=args["lang"])
    return download(body, CSV, _file_name(args, region_id, "csv", "departments"))


@blp.get("/regions/<id:region_id>/workers/export.csv")
@login_required
@blp.arguments(MetricsTableExportArgsSchema, location="query")
@blp.response(200, content_type=CSV, description="UTF-8 CSV with a byte-order mark")
@errors(blp, 401, 403, 404, 422)
def export_worker_stats(actor, args, region_id):
    """Export the region's grid workers' figures as CSV"""
    body = exports.metrics_csv(actor, "workers", region_id, args["period"], lang=args["lang"])
    return download(body, CSV, _file_name(args, region_id, "csv", "workers"))
