"""What citizens send through Open311 (docs/OPEN311.md): requests, updates on them, and the
operators' queue of requests that came with an address only.

A located request is an incident at once (source ``open311``, no reporter, in the live grid
cell at its point, at its category's start level), its supervisors told. A request with an
address only waits, unlocated, behind a token until an operator of the city's command
centre places it on the map (or dismisses it). The same form from the same client within
24 hours is answered as the first time (its hash, under a transaction lock and a unique
index): retries never make a second case. Contact is kept minimally: a name and a phone
number for the call-back (回访), on the incident, masked like every reporter's contact;
email, device and account ids only enter the hash.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select, text, update

from geo import crs as geo_crs
from geo.geometry import GeometryError, parse_point
from server.domain.categories import clean_attribute_values
from server.domain.open311 import NOTICE_UNLOCATED, UPDATE_STATUSES
from server.domain.permissions import SYSTEM, UNLOCATED_MANAGE, UNLOCATED_READ, Actor
from server.errors import Conflict, InvalidInput, NotFound
from server.extensions import db
from server.models import Category, Incident, Open311Client, Open311Request, Open311Update, User
from server.models._base import utcnow
from server.open311.wire import Open311Error, xml_safe

from . import incidents, notify, regions
from .access import TERRITORY, require
from .open311 import public_leaf, request_number
from .pagination import Page

RETRY_WINDOW = timedelta(hours=24)
MAX_DESCRIPTION = 4000
MAX_NAME = 100  # the incident's contact_name
_PHONE = re.compile(r"^\+?[0-9 -]{3,31}$")
_ATTRIBUTE = re.compile(r"^attribute\[([^\]]{1,64})\](\[\])?$")
# Fields a request may carry and their longest length (the contact ones are not stored but hashed).
_LIMITS = {"service_code": 32, "lat": 40, "long": 40, "address_string": 300, "address_id": 100,
           "description": MAX_DESCRIPTION, "media_url": 2000, "email": 254, "device_id": 100, "account_id": 100,
           "first_name": 50, "last_name": 50, "phone": 32}
_UPDATE_LIMITS = {"service_request_id": 20, "update_id": 100, "updated_datetime": 40, "status": 40,
                  "description": MAX_DESCRIPTION, "media_url": 2000, "email": 254, "account_id": 100,
                  "first_name": 50, "last_name": 50, "phone": 32, "service_code": 32}


# ---------------------------------------------------------------- reading a form

def _fields(form, limits: dict[str, int], problems: list[str]) -> dict[str, str | None]:
    """Each known field of ``form``, stripped, None when blank; problems for a repeated field,
    one too long or with a control character (PostgreSQL stores no NUL)."""
    found = {}
    for name, limit in limits.items():
        values = form.getlist(name)
        if len(values) > 1:
            problems.append(f"{name} was sent {len(values)} times; send it once.")
        value = values[0].strip() if values else ""
        if len(value) > limit:
            problems.append(f"{name} is longer than {limit} characters.")
        elif not xml_safe(value):
            problems.append(f"{name} holds control or non-characters.")
        found[name] = value or None
    return found


def _media_url(value: str | None, problems: list[str]) -> None:
    if value is not None:
        try:
            parts = urlsplit(value)
        except ValueError:  # an unclosed [IPv6] host
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append("media_url must be an http or https URL.")


def _contact(fields: dict, problems: list[str]) -> tuple[str | None, str | None]:
    """(name, phone) as kept on the incident: a Chinese name family name first, no space."""
    if fields["phone"] is not None and not _PHONE.match(fields["phone"]):
        problems.append("phone must be digits, spaces and dashes, with an optional leading +.")
    if fields["email"] is not None and "@" not in fields["email"]:
        problems.append("email is not an e-mail address.")
    first, last = fields["first_name"], fields["last_name"]
    if first and last:
        name = f"{last}{first}" if not (first + last).isascii() else f"{first} {last}"
    else:
        name = first or last
    if name and len(name) > MAX_NAME:
        problems.append(f"first_name and last_name together are longer than {MAX_NAME - 1} characters.")
    return name, fields["phone"]


def _coordinate(value: str | None, name: str, bound: float, problems: list[str]) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        problems.append(f"{name} must be a number of degrees (WGS84).")
        return None
    if not math.isfinite(number) or abs(number) > bound:
        problems.append(f"{name} must be between -{bound:g} and {bound:g}.")
        return None
    return number


def _attribute_values(form, category: Category, problems: list[str]) -> dict:
    """``attribute[code]`` fields (repeated, or ``attribute[code][]``, for a multivaluelist)
    cleaned by the category's definitions."""
    definitions = {d["code"]: d for d in category.attributes}
    sent: dict[str, list[str]] = {}
    for key in form.keys():
        match = _ATTRIBUTE.match(key)
        if match is not None:
            sent.setdefault(match.group(1), []).extend(v.strip() for v in form.getlist(key))
    raw: dict = {}
    for code, values in sent.items():
        if not xml_safe(code) or not all(map(xml_safe, values)):
            problems.append(f"attribute[{code!r}] holds control or non-characters.")
            continue
        definition = definitions.get(code)
        if definition is None or definition["datatype"] == "multivaluelist":
            raw[code] = [v for v in values if v]
        elif len(values) > 1:
            problems.append(f"attribute[{code}] takes one value.")
        elif definition["datatype"] == "number" and values[0]:
            try:
                raw[code] = int(values[0]) if re.fullmatch(r"[+-]?[0-9]{1,15}", values[0]) else float(values[0])
            except ValueError:
                raw[code] = values[0]  # reported as not a number below
        else:
            raw[code] = values[0]
    cleaned, errors = clean_attribute_values(category.attributes, raw)
    for code, messages in sorted(errors.items()):
        problems.append(f"attribute[{code}]: {' '.join(messages)}")
    return cleaned


def _form_hash(client_id: int, form, kind: str) -> str:
    """SHA-256 of the client and its form (every field but the key and jurisdiction, in order)."""
    canonical = sorted((key, sorted(v.strip() for v in form.getlist(key))) for key in form.keys()
                       if key not in ("api_key", "jurisdiction_id"))
    return hashlib.sha256(json.dumps([kind, client_id, canonical], ensure_ascii=False).encode()).hexdigest()


def _lock(kind: str, client_id: int, request_hash: str) -> None:
    """Serialise identical submissions of one client until this transaction ends."""
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                       {"k": f"open311:{kind}:{client_id}:{request_hash}"})


_ANSWER_ORDER = ("service_request_id", "token", "service_notice", "account_id", "update_id")


def _in_order(answer: list[dict]) -> list[dict]:
    """An answer's fields in one order, whether just made or read back from JSONB (which
    keeps no order): a retry gets the very same bytes."""
    return [{key: item[key] for key in _ANSWER_ORDER if key in item} for item in answer]


def _local(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo(current_app.config["TIMEZONE"])).strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------- POST requests

def submit_request(client: Open311Client, form, now: datetime) -> tuple[list[dict], bool]:
    """A citizen's request from ``client`` (already authenticated). Returns the answer and
    whether it was made now (False: a retry answered as the first time). Errors: 400 (each
    problem listed), nothing written."""
    problems: list[str] = []
    fields = _fields(form, _LIMITS, problems)
    request_hash = _form_hash(client.id, form, "request")
    _lock("request", client.id, request_hash)
    earlier = db.session.execute(select(Open311Request.id, Open311Request.answer, Open311Request.received_at).where(
        Open311Request.client_id == client.id, Open311Request.request_hash == request_hash)).first()
    if earlier is not None and earlier.received_at >= now - RETRY_WINDOW:
        db.session.rollback()
        return _in_order(earlier.answer), False

    category = None
    if fields["service_code"] is None:
        problems.append("service_code is required.")
    else:
        category = public_leaf(fields["service_code"])
        if category is None:
            problems.append(f"service_code {fields['service_code']!r} is not a service here (see services).")
    lon = lat = None
    if fields["lat"] is not None or fields["long"] is not None:
        lat = _coordinate(fields["lat"], "lat", 90, problems)
        lon = _coordinate(fields["long"], "long", 180, problems)
    elif fields["address_string"] is None:
        problems.append("A location is required: lat and long, or address_string"
                        + (" (address_id is not known here)." if fields["address_id"] else "."))
    _media_url(fields["media_url"], problems)
    name, phone = _contact(fields, problems)
    attributes = _attribute_values(form, category, problems) if category is not None else {}
    cell = None
    if lon is not None and lat is not None and not problems:
        try:
            parse_point(lon, lat)
        except GeometryError as exc:
            problems.append(exc.message)
        else:
            cell = regions.cell_at(lon, lat, "/")
            if cell is None:
                problems.append("lat/long is outside the city's grid: this endpoint serves "
                                f"{current_app.config['OPEN311_JURISDICTION']!r} only.")
    if problems:
        db.session.rollback()
        raise Open311Error(400, problems)

    if earlier is not None:  # the same form after the window is a new request: release the hash
        db.session.execute(update(Open311Request).where(Open311Request.id == earlier.id).values(request_hash=None))
    token = uuid.uuid4()
    row = Open311Request(client_id=client.id, token=token, request_hash=request_hash, received_at=now,
                         category_id=category.id, media_url=fields["media_url"], attributes=attributes)
    if cell is not None:
        incident, _ = incidents.open_incident(
            SYSTEM, category=category, cell=cell, lon=lon, lat=lat, now=now, source="open311",
            description=fields["description"] or "", attributes=attributes, occurred_at=now, client_uuid=token,
            address=fields["address_string"], contact_name=name, contact_phone=phone,
            event_data={"open311_client": client.name, "media_url": fields["media_url"]})
        row.incident_id = incident.id
        row.answer = [{"service_request_id": str(incident.id), "service_notice": _notice(incident)}]
        notify.notify(notify.level_supervisors(incident, incident.level), "citizen_report", incident, now=now,
                      cause=f"open311:{incident.id}")
    else:
        row.address_string, row.description = fields["address_string"], fields["description"]
        row.contact_name, row.contact_phone = name, phone
        row.answer = [{"token": str(token), "service_notice": NOTICE_UNLOCATED[0]}]
    db.session.add(row)
    db.session.flush()
    if cell is None:
        _tell_operators(row, category, now)
    answer = _in_order(row.answer)
    db.session.commit()
    return answer, True


def _notice(incident: Incident) -> str:
    due = f"，预计 {_local(incident.due_at)} 前处置" if incident.due_at else ""
    return f"已受理登记，编号 {incident.id}{due}。"


def _tell_operators(row: Open311Request, category: Category, now: datetime) -> None:
    operators = db.session.scalars(select(User.id).where(User.role == "city", User.is_active).order_by(User.id)).all()
    notify.tell([notify.Tell(tuple(operators), "citizen_report",
                             notify.Subject(None, category.name, category.name_en, row.address_string),
                             cause=f"open311-unlocated:{row.id}",
                             payload=(("open311_request_id", str(row.id)),))], now)


# ---------------------------------------------------------------- POST servicerequestupdates

def submit_update(client: Open311Client, form, now: datetime) -> tuple[list[dict], bool]:
    """A citizen's update to a request sent through Open311 (mySociety's extension): a
    ``citizen_update`` event on the incident's timeline and a message to its supervisors, for a
    request this client sent (another client's is as unknown). The same ``update_id`` from the
    same client is the same update (its first answer); with other content, 400. Errors: 400,
    404 (no such request of this client's)."""
    problems: list[str] = []
    fields = _fields(form, _UPDATE_LIMITS, problems)
    for name in ("service_request_id", "update_id", "updated_datetime"):
        if fields[name] is None:
            problems.append(f"{name} is required.")
    status = (fields["status"] or "OPEN").upper()
    if status not in UPDATE_STATUSES:
        problems.append(f"status must be one of {', '.join(sorted(UPDATE_STATUSES))}.")
    said_at = _moment(fields["updated_datetime"], "updated_datetime", problems) if fields["updated_datetime"] else None
    if said_at is not None and said_at > now + timedelta(seconds=current_app.config["CLOCK_SKEW_SECONDS"]):
        problems.append("updated_datetime is in the future.")
    if fields["description"] is None and fields["media_url"] is None:
        problems.append("An update needs a description or a media_url.")
    _media_url(fields["media_url"], problems)
    _contact(fields, problems)  # checked, not kept: the request's contact is the one to call back
    incident_id = fields["service_request_id"]
    if incident_id is not None and not request_number(incident_id):
        problems.append("service_request_id is a request's number.")
    if problems:
        db.session.rollback()
        raise Open311Error(400, problems)

    request_hash = _form_hash(client.id, form, "update")
    _lock("update", client.id, fields["update_id"])
    earlier = db.session.execute(select(Open311Update.request_hash, Open311Update.answer).where(
        Open311Update.client_id == client.id, Open311Update.update_id == fields["update_id"])).first()
    if earlier is not None:
        db.session.rollback()
        if earlier.request_hash != request_hash:
            raise Open311Error(400, f"update_id {fields['update_id']!r} was already sent with other content.")
        return _in_order(earlier.answer), False
    incident = db.session.scalar(select(Incident).join(Category, Category.id == Incident.category_id).join(
        Open311Request, Open311Request.incident_id == Incident.id).where(
        Incident.id == int(incident_id), Incident.source == "open311", Category.public,
        Open311Request.client_id == client.id))
    if incident is None:  # only a request this client sent takes its citizens' updates (another's: as none)
        db.session.rollback()
        raise Open311Error(404, f"There is no request {incident_id} sent through this client.")
    note = fields["description"] or ""
    if status != "OPEN":
        note = f"[{status}] {note}".strip()
    event = incidents.record_citizen_update(incident, note or None, {
        "open311_client": client.name, "update_id": fields["update_id"], "status": status,
        "media_url": fields["media_url"], "said_at": said_at.isoformat()}, now)
    answer = [{"update_id": str(event.id)}]
    db.session.add(Open311Update(client_id=client.id, update_id=fields["update_id"], incident_id=incident.id,
                                 event_id=event.id, request_hash=request_hash, answer=answer, received_at=now))
    notify.notify(notify.level_supervisors(incident, incident.level), "citizen_update", incident, now=now,
                  cause=f"open311-update:{event.id}")
    db.session.commit()
    return answer, True


def _moment(value: str, name: str, problems: list[str]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        problems.append(f"{name} must be ISO 8601 with its zone, e.g. 2026-11-24T09:30:00+08:00.")
        return None
    return moment


# ---------------------------------------------------------------- the operators' queue

def unlocated_not_found() -> NotFound:
    return NotFound("open311.request_not_found", "No such unlocated request.")


def list_unlocated(actor: Actor, page: int, page_size: int) -> Page:
    """The requests waiting to be placed, oldest first (the city's command centre)."""
    require(actor, UNLOCATED_READ, TERRITORY)
    waiting = (Open311Request.incident_id.is_(None), Open311Request.dismissed_at.is_(None))
    total = db.session.scalar(select(func.count()).select_from(Open311Request).where(*waiting))
    rows = db.session.execute(
        select(Open311Request, Category, Open311Client.name.label("client_name"))
        .join(Category, Category.id == Open311Request.category_id)
        .join(Open311Client, Open311Client.id == Open311Request.client_id)
        .where(*waiting).order_by(Open311Request.received_at, Open311Request.id)
        .limit(page_size).offset((page - 1) * page_size)).all()
    return Page(items=[_unlocated_view(row.Open311Request, row.Category, row.client_name) for row in rows],
                total=total, page=page, page_size=page_size)


def _unlocated_view(row: Open311Request, category: Category, client_name: str) -> dict:
    return {"id": row.id, "received_at": row.received_at, "client": client_name,
            "category": {"id": category.id, "code": category.code, "name": category.name, "name_en": category.name_en},
            "address_string": row.address_string, "description": row.description, "attributes": row.attributes,
            "media_url": row.media_url, "has_contact": bool(row.contact_name or row.contact_phone),
            "incident_id": row.incident_id, "dismissed_at": row.dismissed_at}


def _waiting(actor: Actor, request_id: int) -> Open311Request:
    require(actor, UNLOCATED_MANAGE, TERRITORY)
    row = db.session.scalar(select(Open311Request).where(Open311Request.id == request_id).with_for_update())
    if row is None:
        raise unlocated_not_found()
    if row.incident_id is not None or row.dismissed_at is not None:
        raise Conflict("open311.already_handled", "This request was already placed or dismissed.")
    return row


def place(actor: Actor, request_id: int, data: dict) -> dict:
    """Place an unlocated request on the map: its incident is made (as if reported now, at
    the point given) and ``tokens/{token}`` answers with its id. Errors: open311.request_not_found
    (404), open311.already_handled (409), incident.outside_grid (422)."""
    now = utcnow()
    row = _waiting(actor, request_id)
    lon, lat = data["location"]["coordinates"]
    try:
        parse_point(lon, lat)
    except GeometryError as exc:
        db.session.rollback()
        raise InvalidInput(exc.code, exc.message, errors={"location": [exc.message]}) from None
    if data.get("crs", "wgs84") != "wgs84":
        lon, lat = geo_crs.to_wgs84(lon, lat, data["crs"])
    cell = regions.cell_at(lon, lat, "/")
    if cell is None:
        db.session.rollback()
        raise InvalidInput("incident.outside_grid", "The point is not inside any live grid cell.",
                           errors={"location": ["Outside every grid cell."]})
    category = db.session.get(Category, row.category_id)
    client_name = db.session.scalar(select(Open311Client.name).where(Open311Client.id == row.client_id))
    incident, _ = incidents.open_incident(
        SYSTEM, category=category, cell=cell, lon=lon, lat=lat, now=now, source="open311",
        description=row.description or "", attributes=row.attributes, occurred_at=row.received_at,
        client_uuid=row.token, address=data.get("address") or row.address_string, contact_name=row.contact_name,
        contact_phone=row.contact_phone,
        event_data={"open311_client": client_name, "media_url": row.media_url, "placed_by": actor.user_id})
    row.incident_id, row.placed_at, row.placed_by = incident.id, now, actor.user_id
    row.contact_name = row.contact_phone = None
    notify.notify(notify.level_supervisors(incident, incident.level), "citizen_report", incident, now=now,
                  cause=f"open311:{incident.id}")
    db.session.commit()
    return _unlocated_view(row, category, client_name)


def dismiss(actor: Actor, request_id: int, reason: str) -> dict:
    """Set aside a request that cannot be placed (no such place, not the city's, abuse): its
    token answers with no id for good, its contact is deleted. Errors as ``place``."""
    row = _waiting(actor, request_id)
    row.dismissed_at, row.dismissed_by, row.dismiss_reason = utcnow(), actor.user_id, reason
    row.contact_name = row.contact_phone = None
    category = db.session.get(Category, row.category_id)
    client_name = db.session.scalar(select(Open311Client.name).where(Open311Client.id == row.client_id))
    db.session.commit()
    return _unlocated_view(row, category, client_name)

