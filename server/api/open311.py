"""Open311 GeoReport v2 at /open311/v2/ (docs/OPEN311.md): thin routes over
server/services/open311.py, written as JSON or XML by the URL's suffix (none: XML)."""
from __future__ import annotations

from flask import Blueprint, Response, request

from server.open311 import wire
from server.services import open311 as service

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")


def _split(name: str) -> tuple[str, str]:
    """(what, format) of ``name`` such as ``services.json`` or ``0101.xml`` (no suffix: XML)."""
    stem, dot, suffix = name.rpartition(".")
    if dot and suffix in wire.FORMATS:
        return stem, suffix
    return name, "xml"


def _english() -> bool:
    locale = request.args.get("locale") or request.headers.get("Accept-Language", "")
    return locale.lower().startswith("en")


def _answer(fmt: str, produce, **shape) -> Response:
    try:
        service.check_jurisdiction(request.values.get("jurisdiction_id"))
        return wire.render(fmt, produce(), **shape)
    except wire.Open311Error as failure:
        return wire.error(fmt, failure)


@bp.get("/<name>")
def top(name: str):
    what, fmt = _split(name)
    if what == "discovery":
        base = request.host_url.rstrip("/") + bp.url_prefix + "/"
        return _answer(fmt, lambda: service.discovery(base), root="discovery", item=None,
                       item_names={"endpoints": "endpoint", "formats": "format"})
    if what == "services":
        return _answer(fmt, lambda: service.services(_english()), root="services", item="service")
    return wire.error(fmt, wire.Open311Error(404, f"There is no resource {what[:40]!r} here."))


@bp.get("/services/<name>")
def definition(name: str):
    code, fmt = _split(name)
    return _answer(fmt, lambda: service.service_definition(code, _english()), root="service_definition", item=None,
                   item_names={"attributes": "attribute", "values": "value"})
