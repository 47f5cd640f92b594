"""The quarterly risk report (风险研判报告, docs/STATS.md): a region's quarter gathered from
the evaluation figures, the hotspot test, the trends and a few lists of cases, written as
HTML from one template and printed to PDF by WeasyPrint.

Read-only. Rights as the figures (``STATS_READ`` inside the actor's scope).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import current_app
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import bindparam, text

from server.domain.escalation import RUNNING_STATES
from server.domain.hotspots import HotspotRules
from server.domain.incidents import STATE_LABELS
from server.domain.permissions import STATS_READ, Actor
from server.domain.territory import LEVEL_LABELS, LEVELS
from server.errors import InvalidInput
from server.extensions import db, replica_reads
from server.models._base import utcnow
from server.reports import charts

from . import hotspots as hotspot_service
from . import stats
from .access import require
from .regions import get_region

TEMPLATES = Path(__file__).resolve().parent.parent / "reports" / "templates"
MAP_SIZE = (640, 420)  # pixels of the hotspot map
LISTED = 20  # cases listed in each table
HOT_LISTED = 10  # hot cells listed under the map
MAX_MARKS = 300  # hot cells, and repeated spots, marked on the map at most
REPORT_RULES = {"baseline_windows": 4, "alpha": 0.01, "min_count": 3}  # the quarter against the four before
REPEAT_RADIUS_M, REPEAT_MIN = 30.0, 3

# (key in the figures' rates, 中文, English, +1 when higher is better)
KEY_RATES = (
    ("closure", "结案率", "Closure rate", 1), ("on_time", "按期结案率", "On-time closure", 1),
    ("disposal", "处置率", "Disposal rate", 1), ("rework", "返工率", "Rework rate", -1),
    ("extension", "延期率", "Extension rate", -1), ("escalation", "升级率", "Escalation rate", -1),
    ("local", "就地化解率", "Resolved locally", 1), ("within_town", "不出镇率", "Resolved within the street", 1),
    ("valid_reports", "有效上报率", "Valid reports", 1), ("satisfied", "满意率", "Satisfied", 1),
    ("mediation_success", "调解成功率", "Mediation success", 1),
)
KEY_COUNTS = (("reported", "上报数", "Reported"), ("accepted", "立案数", "Accepted"),
              ("closed", "结案数", "Closed"), ("suspended", "缓办数", "Suspended"))
KEY_HOURS = (("accept", "受理用时", "Report to accept"), ("dispatch", "派遣用时", "Accept to dispatch"),
             ("resolve", "处置用时", "Accept to resolve"), ("close", "办结用时", "Report to close"))
WORDS = {  # the report's own words: (中文, English)
    "title": ("风险研判报告", "Quarterly risk report"),
    "as_of": ("截至", "As of"),
    "period": ("统计期", "Period"),
    "key": ("一、主要指标", "1. Key figures"),
    "metric": ("指标", "Metric"),
    "this": ("本季度", "This quarter"),
    "last": ("上季度", "Last quarter"),
    "qoq": ("环比", "vs last quarter"),
    "yoy": ("同比", "vs a year before"),
    "year_ago": ("去年同期", "A year before"),
    "ranking": ("二、下级区域排名", "2. Ranking of the regions below"),
    "rank": ("排名", "Rank"),
    "region": ("区域", "Region"),
    "score": ("综合得分", "Score"),
    "not_ranked": ("无立案，不排名", "no case, not ranked"),
    "map": ("三、风险点位", "3. Hotspots"),
    "hot_cells": ("风险网格", "Hot cells"),
    "repeated": ("重复上报点", "Spots reported again and again"),
    "group": ("大类", "Group"),
    "reports": ("上报", "Reports"),
    "baseline": ("以往平均", "Usual"),
    "ratio": ("倍数", "Ratio"),
    "no_hotspots": ("本季度无风险网格。", "No hot cell this quarter."),
    "charts": ("四、分类与层级", "4. Categories and levels"),
    "by_category": ("各大类上报数（本季度与上季度）", "Reports per category group (this and last quarter)"),
    "by_level": ("结案案件的化解层级（括号内为该级升级率）",
                 "Closed cases by the level that resolved them (escalation rate from each level)"),
    "by_month": ("近十二个月上报数", "Reports over the last twelve months"),
    "cases": ("五、超期与升级案件", "5. Overdue and escalated cases"),
    "overdue": ("超期未办结案件", "Open past the deadline"),
    "escalated": ("本季度升级案件", "Escalated this quarter"),
    "id": ("编号", "No."),
    "category": ("分类", "Category"),
    "cell": ("网格", "Cell"),
    "level": ("层级", "Level"),
    "status": ("状态", "Status"),
    "due": ("办结时限", "Due"),
    "days_over": ("超期天数", "Days over"),
    "when": ("时间", "When"),
    "from_to": ("升级", "From → to"),
    "by": ("方式", "How"),
    "by_sweep": ("超时自动升级", "overdue, by the sweep"),
    "by_hand": ("人工上报", "by hand"),
    "disputes": ("六、矛盾纠纷与调解", "6. Disputes and mediation"),
    "closed": ("已结案", "Closed"),
    "mediated": ("调解", "Mediated"),
    "agreed": ("达成协议", "Agreed"),
    "mediation_rate": ("本季度办结纠纷调解成功率", "Mediation success of the disputes closed this quarter"),
    "none": ("无", "None"),
    "total": ("共", "Total"),
    "hours": ("小时", "hours"),
    "legend_hot": ("风险网格", "hot cell"),
    "legend_repeated": ("重复上报点", "repeated spot"),
    "legend_unranked": ("未排名", "not ranked"),
    "of": ("条，列出前", " in all; the first "),
    "pp": ("个百分点", " pp"),
    "counts": ("数量", "Counts"),
    "times": ("平均用时", "Mean hours"),
    "page": ("第 ", "Page "), "page_of": (" 页 / 共 ", " of "), "pages_end": (" 页", ""),
    "so_far": ("本季度尚未结束：本季度数字为季度初至统计时点，上季度与去年同期为整季。",
               "The quarter is not over: its figures run from its first day to now; last quarter's and a year "
               "before's are whole quarters."),
}


@dataclass(frozen=True)
class Quarter:
    year: int
    quarter: int

    @property
    def period(self) -> stats.Period:
        start = date(self.year, 3 * self.quarter - 2, 1)
        end = date(self.year + 1, 1, 1) if self.quarter == 4 else date(self.year, 3 * self.quarter + 1, 1)
        return stats.Period(start, end)

    def __str__(self) -> str:
        return f"{self.year}Q{self.quarter}"


def file_name(region, quarter: Quarter, extension: str) -> str:
    """风险研判报告-<code>-<year>Q<n>.<extension>, the code's characters other than letters,
    digits, dots and dashes made underscores (a code may come from any imported file)."""
    code = re.sub(r"[^\w.-]", "_", region.code)
    return f"风险研判报告-{code}-{quarter}.{extension}"


@replica_reads()
def quarterly(actor: Actor, region_id: int, quarter: Quarter, lang: str = "zh",
              step: Callable[[str], None] = lambda what: None) -> tuple[object, str]:
    """The region's quarterly report as HTML: ``(region, html)``. ``step`` is told each part
    as it is gathered (a command's progress). Errors: region.not_found, auth.forbidden,
    report.invalid_level, report.future_period."""
    region = get_region(actor, region_id)
    require(actor, STATS_READ, region)
    if region.level == LEVELS[-1]:
        raise InvalidInput("report.invalid_level", "A grid cell has no report of its own: its community's covers it.",
                           errors={"region": ["Choose a community or a region above it."]})
    period = quarter.period
    now = utcnow()
    lo, hi = period.bounds()
    if lo > now:
        raise InvalidInput("report.future_period", f"{quarter} has not begun.",
                           errors={"quarter": ["Choose a quarter that has begun."]})
    end = min(hi, now)
    zh = lang == "zh"

    step("figures")
    figures = stats.region_stats(actor, region.id, period)
    step("hotspots")
    # the window is the quarter (so far) to the second; the baseline four windows as long before it
    rules = HotspotRules(days=(end - lo) / timedelta(days=1), **REPORT_RULES)
    found = hotspot_service.hotspots(actor, region.id, LEVELS[-1], end, rules, REPEAT_RADIUS_M, REPEAT_MIN)
    step("map")
    hot_map = _map(region, figures["children"], found, zh)
    step("charts")
    pictures = _charts(actor, region, period, figures["escalation_by_level"], zh)
    step("cases")
    context = {
        "zh": zh, "w": {key: pair[0 if zh else 1] for key, pair in WORDS.items()},
        "region": region, "name": region.name if zh or not region.name_en else region.name_en,
        "level": LEVEL_LABELS[region.level][0 if zh else 1], "quarter": quarter,
        "period": period, "last_day": period.end - timedelta(days=1), "as_of": _local(now), "in_progress": hi > now,
        "key_counts": _key_counts(figures, zh), "key_rates": _key_rates(figures, zh),
        "key_hours": _key_hours(figures, zh), "children": figures["children"],
        "hot": found["hotspots"]["features"][:HOT_LISTED], "hot_total": len(found["hotspots"]["features"]),
        "repeated": found["repeated"]["features"][:HOT_LISTED], "repeated_total": len(found["repeated"]["features"]),
        "map": hot_map, "charts": pictures, "overdue": _overdue(region, now, zh),
        "escalated": _escalated(region, lo, hi, zh), "disputes": _disputes(region, lo, hi),
        "mediation_rate": figures["figures"]["rates"]["mediation_success"],
        "levels": LEVEL_LABELS, "states": STATE_LABELS, "percent": _percent, "pp": _pp,
        "label": lambda labels, key: _label(labels, key, zh),
    }
    step("html")
    return region, _environment().get_template("quarterly.html").render(context)


def to_pdf(html: str) -> bytes:
    """The report printed to PDF (A4) by WeasyPrint; it fetches nothing (the report holds
    every picture inline)."""
    HTML, URLFetcher = _weasyprint()
    # no scheme allowed: a resource named in the HTML is left out (WeasyPrint warns), not fetched
    return HTML(string=html, url_fetcher=URLFetcher(allowed_protocols=())).write_pdf()


def _weasyprint():
    """WeasyPrint's HTML and URLFetcher, imported on first use (it loads Pango). Importing it
    sets Pillow's LOAD_TRUNCATED_IMAGES for the whole process; the photos' checks must go on
    refusing truncated files, so the setting is put back."""
    from PIL import ImageFile

    before = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        from weasyprint import HTML, URLFetcher
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before
    return HTML, URLFetcher


@cache
def _environment() -> Environment:
    """The report's templates, loaded and compiled once a process."""
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _local(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(current_app.config["TIMEZONE"])).strftime("%Y-%m-%d %H:%M")


def _label(labels: dict, key: str | None, zh: bool) -> str:
    if key is None:
        return ""
    pair = labels.get(key)
    return key if pair is None else pair[0 if zh else 1]


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _pp(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}"


def _key_counts(figures: dict, zh: bool) -> list[dict]:
    now, before = figures["figures"]["counts"], figures["previous"]["figures"]["counts"]
    year = figures["year_before"]["figures"]["counts"]
    return [{"name": zh_name if zh else en, "now": now[key], "before": before[key], "year": year[key]}
            for key, zh_name, en in KEY_COUNTS]


def _key_rates(figures: dict, zh: bool) -> list[dict]:
    """Each key rate now, the quarter before, and both changes (百分点) with whether each is
    for the better (+1), the worse (-1) or neither (0)."""
    rows = []
    for key, zh_name, en, better in KEY_RATES:
        qoq, yoy = figures["previous"]["change_pp"][key], figures["year_before"]["change_pp"][key]
        rows.append({"name": zh_name if zh else en, "now": figures["figures"]["rates"][key],
                     "before": figures["previous"]["figures"]["rates"][key], "qoq": qoq, "yoy": yoy,
                     "qoq_sense": _sense(qoq, better), "yoy_sense": _sense(yoy, better)})
    return rows


def _sense(change: float | None, better: int) -> int:
    if not change:
        return 0
    return better if change > 0 else -better


def _key_hours(figures: dict, zh: bool) -> list[dict]:
    now, before = figures["figures"]["hours"], figures["previous"]["figures"]["hours"]
    return [{"name": zh_name if zh else en, "now": now[key]["mean"], "before": before[key]["mean"]}
            for key, zh_name, en in KEY_HOURS]


# The child regions (or the region itself when it has none) and the report's points, in the
# map's pixels: Web Mercator scaled to fit MAP_SIZE and centred in it, y downwards (ST_AsSVG writes y negated);
# outlines simplified to half a pixel.
_MAP = text("""
WITH shapes AS (
    SELECT r.id, r.name, r.name_en, ST_Transform(r.geom, 3857) AS geom, ST_Transform(r.centre, 3857) AS centre
    FROM regions r
    WHERE (r.parent_id = :region AND r.retired_at IS NULL)
       OR (r.id = :region AND NOT EXISTS (SELECT 1 FROM regions c WHERE c.parent_id = :region AND c.retired_at IS NULL))
), box AS (
    SELECT ST_Extent(geom) AS b FROM shapes
), scaled AS (
    SELECT b, least(:width / greatest(ST_XMax(b) - ST_XMin(b), 1), :height / greatest(ST_YMax(b) - ST_YMin(b), 1)) AS s
    FROM box
), frame AS (  -- the box's top left corner, moved so that the drawing is centred in the picture
    SELECT ST_XMin(b) - (:width / s - (ST_XMax(b) - ST_XMin(b))) / 2 AS x0,
           ST_YMax(b) + (:height / s - (ST_YMax(b) - ST_YMin(b))) / 2 AS y1, s,
           cos(radians(ST_Y(ST_Transform(ST_Centroid(ST_SetSRID(b::geometry, 3857)), 4326)))) AS shrink
    FROM scaled
), points AS (
    SELECT n, ST_Transform(ST_SetSRID(ST_MakePoint(lon, lat), 4326), 3857) AS geom
    FROM unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[])) WITH ORDINALITY AS p(lon, lat, n)
)
SELECT 'shape' AS kind, s.id AS n, s.name, s.name_en,
       ST_AsSVG(ST_SimplifyPreserveTopology(ST_Affine(s.geom, f.s, 0, 0, f.s, -f.x0 * f.s, -f.y1 * f.s), 0.5), 0, 1)
           AS path,
       (ST_X(s.centre) - f.x0) * f.s AS x, (f.y1 - ST_Y(s.centre)) * f.s AS y, f.s, f.shrink
FROM shapes s, frame f
UNION ALL
SELECT 'point', p.n, NULL, NULL, NULL, (ST_X(p.geom) - f.x0) * f.s, (f.y1 - ST_Y(p.geom)) * f.s, f.s, f.shrink
FROM points p, frame f
""")


def _map(region, children: list[dict], found: dict, zh: bool):
    """The hotspot map: the child regions filled by score, the hot cells and repeated spots
    marked (numbered as in the list beside it)."""
    scores = {child["region"].id: child["score"] for child in children}
    hot = [f for f in found["hotspots"]["features"] if f["geometry"]][:MAX_MARKS]  # the most surprising
    repeated = found["repeated"]["features"][:MAX_MARKS]  # the most reported
    spots = hot + repeated
    lons = [f["geometry"]["coordinates"][0] for f in spots]
    lats = [f["geometry"]["coordinates"][1] for f in spots]
    rows = db.session.execute(_MAP, {"region": region.id, "width": float(MAP_SIZE[0]), "height": float(MAP_SIZE[1]),
                                     "lons": lons, "lats": lats}).all()
    shapes, marks, scale = [], [], None
    for row in rows:
        if row.kind == "shape":
            name = row.name if zh or not row.name_en else row.name_en
            fill = charts.score_fill(scores.get(row.n)) if children else charts.UNRANKED
            shapes.append(charts.Shape(name, row.path or "", row.x or 0, row.y or 0, fill))
        else:
            n = row.n - 1
            is_hot = n < len(hot)
            marks.append(charts.Mark(row.x, row.y, charts.HOT if is_hot else charts.REPEATED,
                                     str(n + 1) if is_hot and n < HOT_LISTED else None))
        if scale is None and row.s:
            scale = _scale_bar(row.s, row.shrink)
    marks.sort(key=lambda mark: mark.colour == charts.HOT)  # hot cells drawn over repeated spots
    w = {key: pair[0 if zh else 1] for key, pair in WORDS.items()}
    legend = [(w["legend_hot"], charts.HOT), (w["legend_repeated"], charts.REPEATED)]
    if children:
        bands = charts.SCORE_BANDS
        legend += [(f"≥{least:g}" if least else f"<{bands[-2][0]:g}", colour) for least, colour in bands]
        legend.append((w["legend_unranked"], charts.UNRANKED))
    return charts.region_map(shapes, marks, MAP_SIZE, legend, scale, w["map"])


def _scale_bar(pixels_per_unit: float, shrink: float) -> tuple[float, str]:
    """A round ground distance about a sixth of the map wide: Web Mercator units are ground
    metres ÷ cos(latitude)."""
    metres_per_pixel = shrink / pixels_per_unit
    target = metres_per_pixel * MAP_SIZE[0] / 6
    nice = max(d for d in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000)
               if d <= max(target, 10))
    return nice / metres_per_pixel, f"{nice / 1000:g} km" if nice >= 1000 else f"{nice} m"


_CLOSED_BY_LEVEL = text("""
SELECT i.resolved_level AS level, count(DISTINCT i.id) AS closed
FROM incident_events ev JOIN incidents i ON i.id = ev.incident_id
WHERE ev.action = 'verify' AND ev.at >= :lo AND ev.at < :hi AND i.region_path LIKE :path || '%'
  AND i.status = 'closed' AND i.resolved_level IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM incident_events later
                  WHERE later.incident_id = i.id AND later.action = 'verify' AND later.at >= :hi)
GROUP BY i.resolved_level
""")


def _charts(actor: Actor, region, period: stats.Period, escalation_by_level: dict, zh: bool) -> dict:
    w = {key: pair[0 if zh else 1] for key, pair in WORDS.items()}
    name = "name" if zh else "name_en"
    before = {s["category_group"]["code"]: s
              for s in stats.trends(actor, region.id, period.shifted(), "month")["series"]}
    rows = [(s["category_group"][name], s["total"], before.pop(s["category_group"]["code"], {"total": 0})["total"])
            for s in stats.trends(actor, region.id, period, "month")["series"]]
    rows += [(s["category_group"][name], 0, s["total"]) for s in before.values()]  # last quarter's only
    lo, hi = period.bounds()
    closed = {row.level: row.closed for row in db.session.execute(
        _CLOSED_BY_LEVEL, {"lo": lo, "hi": hi, "path": region.path})}
    levels = []
    for level in reversed(LEVELS):  # the grid first: where most should end
        rate = (escalation_by_level.get(level) or {}).get("rate")
        levels.append((LEVEL_LABELS[level][0 if zh else 1], closed.get(level, 0),
                       None if rate is None else f"({_percent(rate)})"))
    monthly = stats.trends(actor, region.id, period.last_months(12), "month")
    totals = [sum(s["reports"][n] for s in monthly["series"]) for n in range(len(monthly["buckets"]))]
    months = [(bucket[2:7], total, None) for bucket, total in zip(monthly["buckets"], totals)]
    return {"by_category": charts.paired_bars(rows, (w["this"], w["last"]), w["by_category"]),
            "by_level": charts.columns(levels, charts.LEVEL, w["by_level"]),
            "by_month": charts.columns(months, charts.MONTH, w["by_month"], height=180)}


_OVERDUE = text("""
SELECT i.id, c.name, c.name_en, r.name AS cell, i.level, i.status, i.due_at, count(*) OVER () AS total
FROM incidents i JOIN categories c ON c.id = i.category_id JOIN regions r ON r.id = i.region_id
WHERE i.region_path LIKE :path || '%' AND i.status IN :running AND i.due_at < :now
ORDER BY i.due_at, i.id
LIMIT :listed
""").bindparams(bindparam("running", expanding=True))


def _overdue(region, now: datetime, zh: bool) -> dict:
    """The cases open past their deadline now: how many, and the most overdue."""
    rows = db.session.execute(_OVERDUE, {"path": region.path, "running": sorted(RUNNING_STATES), "now": now,
                                         "listed": LISTED}).all()
    return {"total": rows[0].total if rows else 0,
            "rows": [{"id": row.id, "category": row.name if zh else row.name_en, "cell": row.cell,
                      "level": row.level, "status": row.status, "due": _local(row.due_at),
                      "days_over": (now - row.due_at).days} for row in rows]}


_ESCALATED = text("""
SELECT ev.incident_id AS id, ev.at, ev.from_level, ev.to_level, ev.actor_id IS NULL AS by_sweep,
       c.name, c.name_en, r.name AS cell, count(*) OVER () AS total,
       count(*) FILTER (WHERE ev.actor_id IS NULL) OVER () AS total_by_sweep
FROM incident_events ev JOIN incidents i ON i.id = ev.incident_id
JOIN categories c ON c.id = i.category_id JOIN regions r ON r.id = i.region_id
WHERE ev.action = 'escalate' AND ev.at >= :lo AND ev.at < :hi AND i.region_path LIKE :path || '%'
ORDER BY ev.at DESC, ev.id DESC
LIMIT :listed
""")


def _escalated(region, lo: datetime, hi: datetime, zh: bool) -> dict:
    """The escalations of the quarter: how many (by the sweep), and the latest."""
    rows = db.session.execute(_ESCALATED, {"path": region.path, "lo": lo, "hi": hi, "listed": LISTED}).all()
    return {"total": rows[0].total if rows else 0, "by_sweep": rows[0].total_by_sweep if rows else 0,
            "rows": [{"id": row.id, "when": _local(row.at), "category": row.name if zh else row.name_en,
                      "cell": row.cell, "from_level": row.from_level, "to_level": row.to_level,
                      "by_sweep": row.by_sweep} for row in rows]}


_DISPUTES = text("""
SELECT c.code, c.name, c.name_en, count(*) AS reported, count(*) FILTER (WHERE i.status = 'closed') AS closed,
       count(m.incident_id) AS mediated, count(*) FILTER (WHERE m.agreement_reached) AS agreed
FROM incidents i JOIN categories c ON c.id = i.category_id LEFT JOIN mediations m ON m.incident_id = i.id
WHERE c.kind = 'dispute' AND i.region_path LIKE :path || '%' AND i.reported_at >= :lo AND i.reported_at < :hi
  AND i.status NOT IN ('rejected', 'merged')
GROUP BY c.code, c.name, c.name_en
ORDER BY count(*) DESC, c.code
""")


def _disputes(region, lo: datetime, hi: datetime) -> list[dict]:
    """The quarter's disputes per category: reported, closed now, mediated, agreed."""
    return [dict(row._mapping) for row in db.session.execute(_DISPUTES, {"path": region.path, "lo": lo, "hi": hi})]
