"""Exports (导出, docs/STATS.md): the incidents a list shows, as CSV streamed row by row from
a server-side cursor — scoped as the list is, filtered by the list's own filters, personal
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
from sqlalchemy import select

from schemas.incidents import mask_name, mask_phone
from server.domain.escalation import LIGHT_LABELS, RUNNING_STATES, light
from server.domain.incidents import PRIORITY_LABELS, SOURCE_LABELS, STATE_LABELS
from server.domain.permissions import Actor
from server.domain.territory import LEVEL_LABELS
from server.extensions import db
from server.models import Category, Incident, Region
from server.models._base import utcnow

from .incident_queries import IncidentFilter, incident_query

BATCH = 1000  # rows fetched from the cursor at a time
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


def incident_csv(actor: Actor, f: IncidentFilter, lang: str = "zh") -> Iterator[str]:
    """The CSV text of the incidents the actor may see that pass ``f``, newest first, a chunk
    at a time: a byte-order mark (Excel reads UTF-8 by it), the header in ``lang``, then the
    rows, labels in ``lang``, times in the city's zone, contacts masked."""
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    now = utcnow()
    stmt = (select(Incident.id, Incident.reported_at, Category.code, Category.name, Category.name_en,
                   Incident.status, Incident.level, Incident.priority, Incident.source, Region.code.label("cell_code"),
                   Region.name.label("cell"), Incident.address, Incident.due_at, Incident.yellow_at,
                   Incident.resolved_at, Incident.closed_at, Incident.resolved_level, Incident.contact_name,
                   Incident.contact_phone, Incident.description)
            .join(Category, Category.id == Incident.category_id).join(Region, Region.id == Incident.region_id)
            .where(incident_query(actor, f).whereclause)
            .order_by(Incident.reported_at.desc(), Incident.id.desc())
            .execution_options(yield_per=BATCH))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([zh if lang == "zh" else en for zh, en in COLUMNS])
    yield "\ufeff" + buffer.getvalue()
    for rows in db.session.execute(stmt).partitions():
        buffer.seek(0)
        buffer.truncate()
        for r in rows:
            lit = light(now, r.yellow_at, r.due_at, running=r.status in RUNNING_STATES)
            writer.writerow([
                r.id, _when(r.reported_at, zone), r.code, r.name if lang == "zh" else r.name_en,
                _label(STATE_LABELS, r.status, lang), _label(LEVEL_LABELS, r.level, lang),
                _label(LIGHT_LABELS, lit, lang), _label(PRIORITY_LABELS, r.priority, lang),
                _label(SOURCE_LABELS, r.source, lang), r.cell_code, r.cell, r.address or "", _when(r.due_at, zone),
                _when(r.resolved_at, zone), _when(r.closed_at, zone), _label(LEVEL_LABELS, r.resolved_level, lang),
                mask_name(r.contact_name) or "", mask_phone(r.contact_phone) or "", _safe(r.description)])
        yield buffer.getvalue()


def _safe(text: str | None) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection): a leading =, +, - or @
    gets a quote in front."""
    if not text:
        return ""
    return "'" + text if text[0] in "=+-@\t\r" else text
