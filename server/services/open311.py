"""Open311 GeoReport v2 (docs/OPEN311.md): the use cases behind /open311/v2/.

Each returns plain data for ``server.open311.wire`` to write as JSON or XML; failures are
``Open311Error`` (the spec's error list). These are the reads, which need no key (the spec's
reads are public): discovery, services, definitions, requests, tokens and updates. What
clients post is ``open311_intake``; their keys ``open311_clients``.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy.orm import aliased

from server.domain.incidents import STATES, supervising_level
from server.domain.open311 import PERSONAL_KINDS, PUBLIC_ACTIONS, STAFF_POINT_DECIMALS, request_status, step_text
from server.domain.territory import LEVEL_LABELS, LEVELS
from server.extensions import db
from server.models import Category, Open311Request
from server.open311.wire import Open311Error

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
FORMATS = ["text/xml", "application/json"]


def _local(moment: datetime | None) -> datetime | None:
    return moment.astimezone(ZoneInfo(current_app.config["TIMEZONE"])) if moment else None


def check_jurisdiction(jurisdiction_id: str | None) -> None:
    """An absent jurisdiction_id, or this city's: else 404."""
    if jurisdiction_id not in (None, "", current_app.config["OPEN311_JURISDICTION"]):
        raise Open311Error(404, f"Unknown jurisdiction_id {jurisdiction_id[:40]!r}: this endpoint serves "
                                f"{current_app.config['OPEN311_JURISDICTION']!r}.")


def _public_leaves():
    parent = aliased(Category)
    return (select(Category, parent).join(parent, parent.id == Category.parent_id)
            .where(Category.public, Category.retired_at.is_(None), parent.retired_at.is_(None)))


def public_leaf(code: str) -> Category | None:
    """The live public leaf category with ``code`` (an Open311 service), or None."""
    found = db.session.execute(_public_leaves().where(Category.code == code)).first()
    return found[0] if found else None


def discovery(base_url: str) -> dict:
    """The service discovery document: this endpoint, its formats, when the services last changed."""
    changed = db.session.scalar(select(func.max(Category.updated_at)).where(Category.public))
    changeset = _local(changed) if changed else None
    return {"changeset": changeset, "contact": current_app.config["OPEN311_CONTACT"],
            "key_service": current_app.config["OPEN311_KEY_SERVICE"],
            "endpoints": [{"specification": SPECIFICATION, "url": base_url, "changeset": changeset,
                           "type": "production", "formats": FORMATS}]}


def _name(category: Category, english: bool) -> str:
    return category.name_en if english and category.name_en else category.name


def services(english: bool) -> list[dict]:
    """The live public leaf categories as Open311 services, in the taxonomy's order."""
    rows = db.session.execute(_public_leaves().order_by(Category.sort_order, Category.code)).all()
    return [{"service_code": c.code, "service_name": _name(c, english), "description": c.description or _name(c, english),
             "metadata": bool(c.attributes), "type": "realtime", "keywords": ", ".join(c.keywords or []),
             "group": _name(group, english)} for c, group in rows]


def service_definition(code: str, english: bool) -> dict:
    """A public service's attributes. Errors: 404 (no such public service)."""
    category = public_leaf(code)
    if category is None:
        raise Open311Error(404, f"There is no service {code[:40]!r}.")
    attributes = []
    for n, a in enumerate(sorted(category.attributes, key=lambda a: (a.get("order") or 0)), start=1):
        label = a.get("label_en") if english and a.get("label_en") else a.get("label")
        attribute = {"variable": True, "code": a["code"], "datatype": a["datatype"], "required": bool(a.get("required")),
                     "datatype_description": _datatype_description(a), "order": a.get("order") or n,
                     "description": label or a.get("description") or a["code"]}
        if a.get("values"):
            attribute["values"] = [{"key": v["key"], "name": v.get("name_en") if english and v.get("name_en")
                                    else v["name"]} for v in a["values"]]
        attributes.append(attribute)
    return {"service_code": category.code, "attributes": attributes}


def _datatype_description(a: dict) -> str | None:
    if a["datatype"] == "number" and (a.get("min") is not None or a.get("max") is not None):
        return f"A number from {a.get('min', '…')} to {a.get('max', '…')}"
    if a["datatype"] in ("string", "text") and a.get("max_length"):
        return f"At most {a['max_length']} characters"
    if a["datatype"] == "datetime":
        return "ISO 8601 with its zone, e.g. 2026-11-24T09:30:00+08:00"
    return None


# ---------------------------------------------------------------- requests as citizens see them

MAX_REQUESTS = 1000
MAX_SPAN = timedelta(days=90)
_REQUESTS_SQL = """
SELECT i.id, i.status, i.level, i.source, i.description, i.address, i.reported_at, i.updated_at, i.due_at,
       i.merged_into_id, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, c.code, c.name, c.name_en, c.kind, q.media_url,
       step.action AS step_action, step.note AS step_note,
       dep.name AS dep_name, dep.name_en AS dep_name_en, agency.name AS agency_name, agency.name_en AS agency_name_en,
       agency.level AS agency_level
FROM incidents i
JOIN categories c ON c.id = i.category_id AND c.public
LEFT JOIN open311_requests q ON q.incident_id = i.id
LEFT JOIN LATERAL (SELECT e.action, e.note FROM incident_events e
                   WHERE e.incident_id = i.id AND e.action = ANY(:public_actions)
                   ORDER BY e.id DESC LIMIT 1) step ON true
LEFT JOIN LATERAL (SELECT d.name, d.name_en FROM tasks t JOIN departments d ON d.id = t.department_id
                   WHERE t.incident_id = i.id AND t.status IN ('open', 'acknowledged')
                   ORDER BY t.id DESC LIMIT 1) dep ON true
LEFT JOIN LATERAL (SELECT g.name, g.name_en, g.level FROM regions g
                   WHERE g.id = ANY (string_to_array(trim(BOTH '/' FROM i.region_path), '/')::int[])
                     AND g.level = CASE i.level {supervising} END
                   LIMIT 1) agency ON true
WHERE {where}
ORDER BY i.reported_at DESC, i.id DESC
LIMIT :limit OFFSET :offset
"""
# the region answering for a case at each level (grid → its community), from the one rule
_SUPERVISING = " ".join(f"WHEN '{level}' THEN '{supervising_level(level)}'" for level in LEVELS)


def _request_view(row, english: bool) -> dict:
    """One incident as an Open311 request: public fields only, never contact or names
    (server/domain/open311.py says what else each kind of case shows)."""
    status = request_status(row.status)
    personal = row.kind in PERSONAL_KINDS
    citizens = row.source == "open311" and not personal  # a citizen's own, shown as sent
    if row.dep_name:
        agency = row.dep_name_en if english and row.dep_name_en else row.dep_name
    elif row.agency_name:
        zh, en = LEVEL_LABELS[row.agency_level]
        name = row.agency_name_en if english and row.agency_name_en else row.agency_name
        agency = f"{name} ({en})" if english else f"{name}（{zh}）"
    else:
        agency = None
    notes = step_text(row.step_action, None if personal else row.step_note, english,
                      merged_into=row.merged_into_id) if row.step_action else None
    decimals = 7 if citizens else STAFF_POINT_DECIMALS
    return {
        "service_request_id": str(row.id), "status": status, "status_notes": notes,
        "service_name": row.name_en if english and row.name_en else row.name, "service_code": row.code,
        "description": (row.description or None) if citizens else None,
        "agency_responsible": agency, "service_notice": None,
        "requested_datetime": _local(row.reported_at), "updated_datetime": _local(row.updated_at),
        "expected_datetime": _local(row.due_at) if status == "open" else None,
        "address": row.address if citizens else None, "address_id": None, "zipcode": None,
        "lat": None if personal else round(row.lat, decimals), "long": None if personal else round(row.lon, decimals),
        "media_url": row.media_url if citizens else None,
    }


def _read(where: str, params: dict, english: bool, limit: int, offset: int = 0, *, listed: bool = True) -> list[dict]:
    """The requests matching ``where``; ``listed``: only those a list may show (no personal kind)."""
    if listed:
        where += " AND c.kind <> ALL(:personal)"
    rows = db.session.execute(text(_REQUESTS_SQL.format(where=where, supervising=_SUPERVISING)), {
        **params, "public_actions": list(PUBLIC_ACTIONS), "personal": sorted(PERSONAL_KINDS), "limit": limit,
        "offset": offset}).all()
    return [_request_view(row, english) for row in rows]


def _when(args, name: str) -> datetime | None:
    value = args.get(name)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Open311Error(400, f"{name} must be ISO 8601, e.g. 2026-11-24T00:00:00+08:00.") from None
    if not 1900 <= moment.year <= 2999:  # nothing is older; and year 1 or 9999 overflow with a span or offset
        raise Open311Error(400, f"{name} must be between the years 1900 and 2999.")
    if moment.utcoffset() is None:  # no zone: the city's
        moment = moment.replace(tzinfo=ZoneInfo(current_app.config["TIMEZONE"]))
    return moment


def request_number(value: str) -> bool:
    """Is ``value`` a request's number as clients send it (ASCII digits, at most 18)?"""
    return value.isascii() and value.isdigit() and len(value) <= 18


def _whole(args, name: str, default: int, high: int, problems: list[str]) -> int:
    value = args.get(name)
    if value is None or value == "":
        return default
    if not request_number(value) or not 1 <= int(value) <= high:
        problems.append(f"{name} must be a whole number from 1 to {high}.")
        return default
    return int(value)


def _paging(args, problems: list[str]) -> tuple[int, int]:
    """(rows, offset) of ``limit`` (default and most 1,000) and ``page``/``page_size``
    (default: one page of ``limit``)."""
    limit = _whole(args, "limit", MAX_REQUESTS, MAX_REQUESTS, problems)
    page_size = _whole(args, "page_size", limit, MAX_REQUESTS, problems)
    page = _whole(args, "page", 1, 100_000, problems)
    return min(limit, page_size), (page - 1) * page_size


def _period(args, now: datetime) -> tuple[datetime, datetime]:
    """(start, end) of start_date/end_date, at most 90 days apart (either alone: 90 days from it)."""
    start, end = _when(args, "start_date"), _when(args, "end_date")
    if start is None and end is None:
        end = now
    if start is None:
        start = end - MAX_SPAN
    if end is None:
        end = start + MAX_SPAN
    if end < start:
        raise Open311Error(400, "end_date is before start_date.")
    if end - start > MAX_SPAN:
        raise Open311Error(400, "start_date and end_date are more than 90 days apart.")
    return start, end


def list_requests(args, english: bool, now: datetime) -> list[dict]:
    """``GET requests``: by ``service_request_id`` (comma-separated: those, nothing else), else by
    ``service_code`` (comma-separated), ``status`` (open, closed), ``start_date``/``end_date``
    (the request time, ≤ 90 days apart; default the last 90 days), newest first, ``limit``
    (default and most 1,000) or ``page``/``page_size``. Errors: 400."""
    if args.get("service_request_id"):
        ids = [part.strip() for part in args["service_request_id"].split(",") if part.strip()]
        if not ids or len(ids) > MAX_REQUESTS or not all(map(request_number, ids)):
            raise Open311Error(400, "service_request_id is a comma-separated list of up to 1,000 request numbers.")
        return _read("i.id = ANY(:ids)", {"ids": [int(part) for part in ids]}, english, MAX_REQUESTS, listed=False)
    problems = []
    where, params = ["i.reported_at >= :start", "i.reported_at <= :end"], {}
    try:
        params["start"], params["end"] = _period(args, now)
    except Open311Error as failure:
        problems += failure.descriptions
    if args.get("service_code"):
        params["codes"] = [code.strip() for code in args["service_code"].split(",") if code.strip()]
        where.append("c.code = ANY(:codes)")
    if args.get("status"):
        statuses = {part.strip().lower() for part in args["status"].split(",")}
        if not statuses <= {"open", "closed"}:
            problems.append("status must be open or closed (or both, comma-separated).")
        else:
            params["states"] = sorted(s for s in STATES if request_status(s) in statuses)
            where.append("i.status = ANY(:states)")
    size, offset = _paging(args, problems)
    if problems:
        raise Open311Error(400, problems)
    return _read(" AND ".join(where), params, english, size, offset)


def get_request(request_id: str, english: bool) -> list[dict]:
    """``GET requests/{id}``: the request as a list of one. Errors: 404."""
    found = _read("i.id = :id", {"id": int(request_id)}, english, 1, listed=False) \
        if request_number(request_id) else []
    if not found:
        raise Open311Error(404, f"There is no request {request_id[:40]!r}.")
    return found


def token_status(token: str) -> list[dict]:
    """``GET tokens/{token}``: the request's id once it is an incident (none while an operator
    has yet to place it, or after it was dismissed). Errors: 404."""
    try:
        key = uuid.UUID(token)
    except ValueError:
        key = None
    row = db.session.execute(select(Open311Request.incident_id, Open311Request.dismissed_at).where(
        Open311Request.token == key)).first() if key else None
    if row is None:
        raise Open311Error(404, f"There is no token {token[:40]!r}.")
    return [{"service_request_id": str(row.incident_id) if row.incident_id else None, "token": str(key)}]


_UPDATES_SQL = """
SELECT e.id, e.incident_id, e.action, e.note, e.at, i.merged_into_id
FROM incident_events e
JOIN incidents i ON i.id = e.incident_id
JOIN categories c ON c.id = i.category_id AND c.public
WHERE e.at >= :start AND e.at <= :end AND e.action = ANY(:actions) AND c.kind <> ALL(:personal) {more}
ORDER BY e.at, e.id
LIMIT :limit OFFSET :offset
"""


def list_updates(args, english: bool, now: datetime) -> list[dict]:
    """``GET servicerequestupdates`` (mySociety's extension): the public steps of every public
    request between ``start_date`` and ``end_date`` (≤ 90 days; default the last day), oldest
    first, optionally of one ``service_request_id``; ``limit``/``page``/``page_size`` as
    ``requests``. Errors: 400."""
    problems = []
    start, end = now - timedelta(days=1), now
    if args.get("start_date") or args.get("end_date"):
        try:
            start, end = _period(args, now)
        except Open311Error as failure:
            problems += failure.descriptions
    params, more = {}, ""
    if args.get("service_request_id"):
        if not request_number(args["service_request_id"]):
            problems.append("service_request_id is a request's number.")
        else:
            params["incident"], more = int(args["service_request_id"]), "AND e.incident_id = :incident"
    size, offset = _paging(args, problems)
    if problems:
        raise Open311Error(400, problems)
    rows = db.session.execute(text(_UPDATES_SQL.format(more=more)), {
        **params, "start": start, "end": end, "actions": [a for a in PUBLIC_ACTIONS if a != "report"],
        "personal": sorted(PERSONAL_KINDS),
        "limit": size, "offset": offset}).all()
    return [{"update_id": str(row.id), "service_request_id": str(row.incident_id),
             "status": PUBLIC_ACTIONS[row.action],
             "updated_datetime": _local(row.at),
             "description": step_text(row.action, row.note, english, merged_into=row.merged_into_id),
             "media_url": None} for row in rows]
