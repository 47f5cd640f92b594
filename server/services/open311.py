"""Open311 GeoReport v2 (docs/OPEN311.md): the use cases behind /open311/v2/.

Each returns plain data for ``server.open311.wire`` to write as JSON or XML; failures are
``Open311Error`` (the spec's error list). Served so far: discovery, services and service
definitions (no key: the spec's reads are public).
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from server.extensions import db
from server.models import Category
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
    found = db.session.execute(_public_leaves().where(Category.code == code)).first()
    if found is None:
        raise Open311Error(404, f"There is no service {code[:40]!r}.")
    category = found[0]
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
