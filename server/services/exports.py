"""Exports (导出, docs/STATS.md): the incidents a list shows, as CSV streamed row by row from
a server-side cursor or as an Excel workbook — scoped as the list is, filtered by the list's own filters, personal
data masked whoever asks (an export leaves the system).

Read-only.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app
from openpyxl import Workbook
from sqlalchemy import func, select

from schemas.incidents import mask_name, mask_phone
from server.domain.escalation import LIGHT_LABELS, RUNNING_STATES, light
from server.domain.incidents import PRIORITY_LABELS, SOURCE_LABELS, STATE_LABELS
from server.domain.permissions import Actor
from server.domain.territory import LEVEL_LABELS
from server.errors import BadRequest
from server.extensions import db
from server.models import Category, Incident, Region
from server.models._base import utcnow

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


def _incident_rows(actor: Actor, f: IncidentFilter, lang: str) -> Iterator[list]:
    """The header in ``lang``, then a list of values for each incident of ``_incident_select``,
    fetched from a server-side cursor ``BATCH`` rows at a time: labels in ``lang``, times in
    the city's zone, contacts masked, formulas defused."""
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    now = utcnow()
    stmt = _incident_select(actor, f).execution_options(yield_per=BATCH)
    yield [zh if lang == "zh" else en for zh, en in COLUMNS]
    # a connection of the export's own, in one repeatable-read transaction: a server-side
    # cursor needs a transaction (the API's reads run in autocommit), and every row comes from
    # one snapshot however long the export takes
    with db.engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
        with connection.begin():
            yield from (_values(r, zone, now, lang) for r in connection.execute(stmt))


def _values(r, zone: ZoneInfo, now, lang: str) -> list:
    """One incident's row of the export."""
    lit = light(now, r.yellow_at, r.due_at, running=r.status in RUNNING_STATES)
    return [r.id, _when(r.reported_at, zone), r.code, r.name if lang == "zh" else r.name_en,
            _label(STATE_LABELS, r.status, lang), _label(LEVEL_LABELS, r.level, lang),
            _label(LIGHT_LABELS, lit, lang), _label(PRIORITY_LABELS, r.priority, lang),
            _label(SOURCE_LABELS, r.source, lang), r.cell_code, _safe(r.cell), _safe(r.address),
            _when(r.due_at, zone), _when(r.resolved_at, zone), _when(r.closed_at, zone),
            _label(LEVEL_LABELS, r.resolved_level, lang), mask_name(r.contact_name) or "",
            mask_phone(r.contact_phone) or "", _safe(r.description)]


def incident_csv(actor: Actor, f: IncidentFilter, lang: str = "zh") -> Iterator[str]:
    """The incidents as CSV text, a chunk of ``BATCH`` rows at a time, after a byte-order
    mark (Excel reads UTF-8 by it)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    yield "\ufeff"
    for n, row in enumerate(_incident_rows(actor, f, lang), start=1):
        writer.writerow(row)
        if n % BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def incident_xlsx(actor: Actor, f: IncidentFilter, lang: str = "zh") -> bytes:
    """The incidents as an Excel workbook (one sheet, written row by row in openpyxl's
    write-only mode). Errors: export.too_large beyond ``XLSX_MAX_ROWS`` (a workbook is built
    whole before it is sent: the CSV streams any size)."""
    counted = select(func.count()).select_from(_incident_select(actor, f).limit(XLSX_MAX_ROWS + 1).subquery())
    if db.session.scalar(counted) > XLSX_MAX_ROWS:
        raise BadRequest("export.too_large", f"More than {XLSX_MAX_ROWS:,} incidents: narrow the filters, or "
                                           "export them as CSV, which has no limit.")
    book = Workbook(write_only=True)
    sheet = book.create_sheet("事件" if lang == "zh" else "Incidents")
    for row in _incident_rows(actor, f, lang):
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _safe(text: str | None) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection): a leading =, +, - or @
    gets a quote in front."""
    if not text:
        return ""
    return "'" + text if text[0] in "=+-@\t\r" else text
