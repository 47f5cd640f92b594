"""Exports (导出, docs/STATS.md): the incidents a list shows, as CSV streamed row by row from
a server-side cursor or as an Excel workbook — scoped as the list is, filtered by the list's own filters, personal
data masked whoever asks (an export leaves the system); and a region's evaluation figures
(考核) — its own, its children's, its departments' and grid workers' — as the stats
endpoints give them, one row each.

The writing is shared: ``csv_chunks`` / ``write_csv`` (UTF-8 with a byte-order mark) and
``write_xlsx`` (openpyxl's write-only mode); every text cell they write goes through
``_safe`` (CSV injection), whatever column it is and whoever typed it. Read-only.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import BinaryIO
from zoneinfo import ZoneInfo

from flask import current_app
from openpyxl import Workbook
from sqlalchemy import Connection, func, select

from schemas.incidents import mask_name, mask_phone
from server.domain.escalation import LIGHT_LABELS, RUNNING_STATES, light
from server.domain.incidents import PRIORITY_LABELS, SOURCE_LABELS, STATE_LABELS
from server.domain.permissions import Actor
from server.domain.territory import LEVEL_LABELS
from server.errors import BadRequest
from server.extensions import db, read_engine, replica_reads
from server.models import Category, Incident, Region
from server.models._base import utcnow

from . import stats
from .incident_queries import IncidentFilter, incident_query

BATCH = 1000  # rows fetched from the cursor, and sent, at a time
XLSX_MAX_ROWS = 200_000  # a workbook is built in memory before it is sent
COLUMNS = [  # (header zh, header en)
    ("编号", "id"), ("上报时间", "reported_at"), ("分类代码", "category_code"), ("分类", "category"),
    ("状态", "status"), ("层级", "level"), ("信号灯", "light"), ("优先级", "priority"), ("来源", "source"),
    ("网格代码", "cell_code"), ("网格", "cell"), ("地址", "address"), ("办结时限", "due_at"),
    ("处置时间", "resolved_at"), ("结案时间", "closed_at"), ("处置层级", "resolved_level"),
    ("联系人", "contact_name"), ("联系电话", "contact_phone"), ("描述", "description"),
]


def _when(value: datetime | None, zone: ZoneInfo) -> str:
    return "" if value is None else value.astimezone(zone).isoformat(timespec="seconds")


def _label(labels: dict, key: str | None, lang: str) -> str:
    if key is None:
        return ""
    pair = labels.get(key)
    return key if pair is None else pair[0 if lang == "zh" else 1]


# What a spreadsheet may take for the start of a formula: = + - @, a tab or carriage return
# before one, and the full-width forms an input method types (Excel reads ＝ as =).
FORMULA_STARTS = "=+-@\t\r＝＋－＠"


def _safe(text: str | None) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection): one that could start
    a formula gets a quote in front. Applied to every text cell by the writers."""
    if not text:
        return ""
    return "'" + text if text[0] in FORMULA_STARTS else text


def _cells(row: Sequence) -> list:
    """A row as written: text made ``_safe``, numbers and the rest as they are."""
    return [_safe(value) if isinstance(value, str) else value for value in row]


def header(columns: Sequence[tuple[str, str]], lang: str) -> list[str]:
    """The header row of ``columns`` ((zh, en) pairs) in ``lang``."""
    return [zh if lang == "zh" else en for zh, en in columns]


# ---------------------------------------------------------------- writing

def csv_chunks(rows: Iterable[list]) -> Iterator[str]:
    """``rows`` as CSV text, a chunk of ``BATCH`` rows at a time, after a byte-order mark
    (Excel reads UTF-8 by it). ``None`` is an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    yield "\ufeff"
    for n, row in enumerate(rows, start=1):
        writer.writerow(_cells(row))
        if n % BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_csv(out: BinaryIO, rows: Iterable[list]) -> None:
    """``rows`` as UTF-8 CSV with a byte-order mark into the binary file ``out``."""
    for chunk in csv_chunks(rows):
        out.write(chunk.encode("utf-8"))


def write_xlsx(out: BinaryIO, sheets: Iterable[tuple[str, Iterable[list]]]) -> None:
    """An Excel workbook of ``sheets`` ((title, rows) each) into the binary file ``out``,
    row by row in openpyxl's write-only mode (rows go to a temporary file, not memory)."""
    book = Workbook(write_only=True)
    try:
        for title, rows in sheets:
            sheet = book.create_sheet(title)
            for row in rows:
                sheet.append(_cells(row))
    except BaseException:
        # a half-written sheet left open would be finished later by the garbage collector,
        # writing to a closed file: finish it now, then let the error go
        for sheet in book.worksheets:
            try:
                sheet.close()
            except Exception:  # noqa: BLE001 — already failing; the first error is the one to report
                pass
        raise
    book.save(out)


def xlsx_bytes(sheets: Iterable[tuple[str, Iterable[list]]]) -> bytes:
    out = io.BytesIO()
    write_xlsx(out, sheets)
    return out.getvalue()


@contextmanager
def snapshot() -> Iterator[Connection]:
    """A connection of the export's own, in one repeatable-read transaction: a server-side
    cursor needs a transaction (the API's reads run in autocommit), and every row comes from
    one snapshot however long the export takes. On the read replica when there is one."""
    with read_engine().connect().execution_options(isolation_level="REPEATABLE READ") as connection:
        with connection.begin():
            yield connection


# ---------------------------------------------------------------- incidents

def _incident_select(actor: Actor, f: IncidentFilter):
    """The incidents the actor may see that pass ``f``, newest first, with what an export shows."""
    return (select(Incident.id, Incident.reported_at, Category.code, Category.name, Category.name_en,
                   Incident.status, Incident.level, Incident.priority, Incident.source, Region.code.label("cell_code"),
                   Region.name.label("cell"), Incident.address, Incident.due_at, Incident.yellow_at,
                   Incident.resolved_at, Incident.closed_at, Incident.resolved_level, Incident.contact_name,
                   Incident.contact_phone, Incident.description)
            .join(Category, Category.id == Incident.category_id).join(Region, Region.id == Incident.region_id)
            .where(incident_query(actor, f).whereclause)
            .order_by(Incident.reported_at.desc(), Incident.id.desc()))


def count_incidents(actor: Actor, f: IncidentFilter, connection: Connection, limit: int | None = None) -> int:
    """How many incidents an export of ``f`` has (counting stops past ``limit``)."""
    stmt = _incident_select(actor, f)
    if limit is not None:
        stmt = stmt.limit(limit + 1)
    return connection.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))


def incident_rows(actor: Actor, f: IncidentFilter, lang: str, connection: Connection) -> Iterator[list]:
    """A list of values for each incident of ``_incident_select`` read through ``connection``
    (one of ``snapshot``), fetched from a server-side cursor ``BATCH`` rows at a time:
    labels in ``lang``, times in the city's zone, contacts masked, formulas defused."""
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    now = utcnow()
    stmt = _incident_select(actor, f).execution_options(yield_per=BATCH)
    return (_values(r, zone, now, lang) for r in connection.execute(stmt))


def _incident_table(actor: Actor, f: IncidentFilter, lang: str) -> Iterator[list]:
    """The header, then the incidents' rows from a snapshot of their own."""
    yield header(COLUMNS, lang)
    with snapshot() as connection:
        yield from incident_rows(actor, f, lang, connection)


def _values(r, zone: ZoneInfo, now, lang: str) -> list:
    """One incident's row of the export."""
    lit = light(now, r.yellow_at, r.due_at, running=r.status in RUNNING_STATES)
    return [r.id, _when(r.reported_at, zone), r.code, r.name if lang == "zh" else r.name_en,
            _label(STATE_LABELS, r.status, lang), _label(LEVEL_LABELS, r.level, lang),
            _label(LIGHT_LABELS, lit, lang), _label(PRIORITY_LABELS, r.priority, lang),
            _label(SOURCE_LABELS, r.source, lang), r.cell_code, r.cell, r.address,
            _when(r.due_at, zone), _when(r.resolved_at, zone), _when(r.closed_at, zone),
            _label(LEVEL_LABELS, r.resolved_level, lang), mask_name(r.contact_name) or "",
            mask_phone(r.contact_phone) or "", r.description]


def incident_sheet_title(lang: str) -> str:
    return "事件" if lang == "zh" else "Incidents"


def incident_csv(actor: Actor, f: IncidentFilter, lang: str = "zh") -> Iterator[str]:
    """The incidents as CSV text, a chunk of ``BATCH`` rows at a time, after a byte-order
    mark (Excel reads UTF-8 by it)."""
    return csv_chunks(_incident_table(actor, f, lang))


@replica_reads()
def incident_xlsx(actor: Actor, f: IncidentFilter, lang: str = "zh") -> bytes:
    """The incidents as an Excel workbook (one sheet, written row by row in openpyxl's
    write-only mode). Errors: export.too_large beyond ``XLSX_MAX_ROWS`` (a workbook is built
    whole before it is sent: the CSV streams any size)."""
    counted = select(func.count()).select_from(_incident_select(actor, f).limit(XLSX_MAX_ROWS + 1).subquery())
    if db.session.scalar(counted) > XLSX_MAX_ROWS:
        raise too_large(XLSX_MAX_ROWS, "narrow the filters, or export them as CSV, which has no limit")
    return xlsx_bytes([(incident_sheet_title(lang), _incident_table(actor, f, lang))])


def too_large(limit: int, advice: str) -> BadRequest:
    return BadRequest("export.too_large", f"More than {limit:,} incidents: {advice}.")


# ---------------------------------------------------------------- metrics (考核)

# (key, zh, en) of each part of a group's figures, in the order of the columns
COUNT_LABELS = [
    ("reported", "上报数", "reported"), ("valid_reports", "有效上报数", "valid_reports"),
    ("accepted", "立案数", "accepted"), ("suspended", "缓办数", "suspended"), ("closed", "结案数", "closed"),
    ("closed_on_time", "按期结案数", "closed_on_time"), ("dispatched", "派遣数", "dispatched"),
    ("disposed", "处置数", "disposed"), ("resolved", "处置反馈数", "resolved"), ("reworked", "返工数", "reworked"),
    ("extended", "延期数", "extended"), ("escalated", "升级数", "escalated"),
    ("closed_in_period", "期内结案数", "closed_in_period"), ("resolved_in_village", "不出村数", "resolved_in_village"),
    ("resolved_in_town", "不出镇数", "resolved_in_town"), ("callbacks", "回访数", "callbacks"),
    ("mediated", "调解数", "mediated"),
]
RATE_LABELS = [
    ("closure", "结案率", "closure"), ("on_time", "按期结案率", "on_time"), ("disposal", "处置率", "disposal"),
    ("rework", "返工率", "rework"), ("extension", "延期率", "extension"), ("escalation", "升级率", "escalation"),
    ("local", "就地化解率", "local"), ("within_town", "不出镇率", "within_town"),
    ("valid_reports", "有效上报率", "valid_reports"), ("satisfied", "满意率", "satisfied"),
    ("mediation_success", "调解成功率", "mediation_success"),
]
HOUR_LABELS = [("accept", "受理"), ("dispatch", "派遣"), ("ack", "签收"), ("resolve", "处置"), ("close", "结案")]

REGION_COLUMNS = [
    ("地区代码", "region_code"), ("地区", "region"), ("层级", "level"), ("排名", "rank"), ("综合得分", "score"),
    *[(zh, en) for _, zh, en in COUNT_LABELS],
    *[(f"{zh}(%)", f"{en}_rate_pct") for _, zh, en in RATE_LABELS],
    *[pair for step, zh in HOUR_LABELS for pair in (
        (f"平均{zh}时长(小时)", f"{step}_hours_mean"), (f"{zh}时长P90(小时)", f"{step}_hours_p90"))],
    ("满意度均分", "satisfaction_mean"),
    *[(f"{zh}环比(百分点)", f"{en}_change_previous_pp") for _, zh, en in RATE_LABELS],
    *[(f"{zh}同比(百分点)", f"{en}_change_year_pp") for _, zh, en in RATE_LABELS],
]
_TASK_COLUMNS = [
    ("任务数", "tasks"), ("已签收", "acknowledged"), ("按时签收率(%)", "ack_on_time_pct"), ("已办结", "done"),
    ("平均签收时长(小时)", "ack_hours_mean"), ("签收时长P90(小时)", "ack_hours_p90"),
    ("平均办结时长(小时)", "done_hours_mean"), ("办结时长P90(小时)", "done_hours_p90"),
]
DEPARTMENT_COLUMNS = [("部门代码", "department_code"), ("部门", "department"), ("所属地区", "department_region"),
                      *_TASK_COLUMNS]
WORKER_COLUMNS = [("网格员", "worker"), ("所在地区", "worker_region"), ("上报数", "reports"),
                  ("有效上报数", "valid_reports"), ("有效上报率(%)", "valid_rate_pct"),
                  ("即报即处数", "resolved_on_spot"), *_TASK_COLUMNS]
SHEET_TITLES = {"regions": ("地区", "Regions"), "departments": ("部门", "Departments"),
                "workers": ("网格员", "Workers")}
METRIC_TABLES = tuple(SHEET_TITLES)


def _pct(rate: float | None) -> float | None:
    """A rate (a fraction in [0, 1]) as a percentage with two decimals; None stays None."""
    return None if rate is None else round(100 * rate, 2)


def _name(thing, lang: str) -> str:
    return thing.name if lang == "zh" else (thing.name_en or thing.name)


def _region_row(region, figures: dict, score, rank, change_pp: dict, lang: str) -> list:
    """A region's row: ``change_pp`` holds each rate's changes against the period before
    (``previous``) and the year before (``year_before``), as the stats answer gives them."""
    counts, rates, hours = figures["counts"], figures["rates"], figures["hours"]
    return [region.code, _name(region, lang), _label(LEVEL_LABELS, region.level, lang), rank, score,
            *[counts[key] for key, _, _ in COUNT_LABELS],
            *[_pct(rates[key]) for key, _, _ in RATE_LABELS],
            *[hours[step][part] for step, _ in HOUR_LABELS for part in ("mean", "p90")],
            figures["satisfaction_mean"],
            *[change_pp[when][key] for when in ("previous", "year_before") for key, _, _ in RATE_LABELS]]


def region_rows(actor: Actor, region_id: int, period: stats.Period, weights: dict | None, lang: str) -> list[list]:
    """The header, the region's row, then one row per child region in the stats' order
    (ranked first): every figure of ``stats.region_stats``, rates as percentages, the
    changes against the period before and the year before in percentage points (each
    child's against its own figures then). Errors as ``stats.region_stats``."""
    now = stats.region_stats(actor, region_id, period, weights)
    whole = {when: now[when]["change_pp"] for when in ("previous", "year_before")}
    return [header(REGION_COLUMNS, lang),
            _region_row(now["region"], now["figures"], now["figures"]["score"], None, whole, lang),
            *[_region_row(child["region"], child["figures"], child["score"], child["rank"], child["change_pp"], lang)
              for child in now["children"]]]


def _task_values(item: dict) -> list:
    return [item["tasks"], item["acknowledged"], _pct(item["ack_on_time"]), item["done"],
            item["ack_hours"]["mean"], item["ack_hours"]["p90"], item["done_hours"]["mean"], item["done_hours"]["p90"]]


def department_rows(actor: Actor, region_id: int, period: stats.Period, lang: str) -> list[list]:
    """The header and one row per department of ``stats.department_stats`` (busiest first)."""
    found = stats.department_stats(actor, region_id, period)
    return [header(DEPARTMENT_COLUMNS, lang)] + [
        [d["department"].code, _name(d["department"], lang), _name(d["department"].region, lang), *_task_values(d)]
        for d in found["departments"]]


def worker_rows(actor: Actor, region_id: int, period: stats.Period, lang: str) -> list[list]:
    """The header and one row per grid worker of ``stats.worker_stats``: their display
    name and area (the people evaluated), nothing else of theirs."""
    found = stats.worker_stats(actor, region_id, period)
    return [header(WORKER_COLUMNS, lang)] + [
        [w["worker"].display_name, _name(w["worker"].region, lang), w["reports"], w["valid_reports"],
         _pct(w["valid_rate"]), w["resolved_on_spot"], *_task_values(w)]
        for w in found["workers"]]


def metric_table(actor: Actor, table: str, region_id: int, period: stats.Period, weights: dict | None,
                 lang: str) -> list[list]:
    """One table of a region's figures: ``regions``, ``departments`` or ``workers``."""
    if table == "regions":
        return region_rows(actor, region_id, period, weights, lang)
    if table == "departments":
        return department_rows(actor, region_id, period, lang)
    return worker_rows(actor, region_id, period, lang)


def metric_sheets(actor: Actor, region_id: int, period: stats.Period, weights: dict | None,
                  lang: str) -> list[tuple[str, list[list]]]:
    """The workbook's sheets: 地区, 部门, 网格员 (Regions, Departments, Workers)."""
    return [(_label(SHEET_TITLES, table, lang), metric_table(actor, table, region_id, period, weights, lang))
            for table in METRIC_TABLES]


def metrics_csv(actor: Actor, table: str, region_id: int, period: stats.Period, weights: dict | None = None,
                lang: str = "zh") -> Iterator[str]:
    """One table of the region's figures as CSV. The figures are computed before the first
    byte is sent, so a refusal (404, 403) is an error answer, not a broken file."""
    return csv_chunks(metric_table(actor, table, region_id, period, weights, lang))


def metrics_xlsx(actor: Actor, region_id: int, period: stats.Period, weights: dict | None = None,
                 lang: str = "zh") -> bytes:
    """The region's figures as an Excel workbook of three sheets: regions, departments, workers."""
    return xlsx_bytes(metric_sheets(actor, region_id, period, weights, lang))
