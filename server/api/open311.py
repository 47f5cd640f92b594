"""Open311 GeoReport v2 at /open311/v2/ (docs/OPEN311.md): thin routes over
server/services/open311.py (reads), open311_intake.py (what clients post) and
open311_clients.py (keys and rate), written as JSON or XML by the URL's suffix (none: XML).
Every failure, even one found before or outside the views (a body too large, not a form, an
unknown path or method), is the spec's error list: server/errors.py asks ``error_response``."""
from __future__ import annotations

from flask import Blueprint, Response, request

from server.auth import client_ip
from server.models._base import utcnow
from server.open311 import wire
from server.services import open311 as service
from server.services import open311_clients, open311_intake

from .common import accepts

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_LISTS = {"requests": "request", "servicerequestupdates": "request_update"}


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
        open311_clients.count_read(request.args.get("api_key"), client_ip(), utcnow())
        service.check_jurisdiction(request.values.get("jurisdiction_id"))
        return wire.render(fmt, produce(), **shape)
    except wire.Open311Error as failure:
        return wire.error(fmt, failure)


def error_response(status: int, message: str, headers: dict) -> Response:
    """Any error under /open311/ as the spec's list, in the URL's format (server/errors.py):
    a refused value is the spec's 400."""
    fmt = _split(request.path.rstrip("/").rsplit("/", 1)[-1])[1]
    return wire.error(fmt, wire.Open311Error(400 if status == 422 else status, message, headers=headers))


@bp.get("/<name>")
def top(name: str):
    what, fmt = _split(name)
    if what == "discovery":
        base = request.host_url.rstrip("/") + bp.url_prefix + "/"
        return _answer(fmt, lambda: service.discovery(base), root="discovery", item=None,
                       item_names={"endpoints": "endpoint", "formats": "format"})
    if what == "services":
        return _answer(fmt, lambda: service.services(_english()), root="services", item="service")
    if what == "requests":
        return _answer(fmt, lambda: service.list_requests(request.args, _english(), utcnow()), root="service_requests",
                       item="request")
    if what == "servicerequestupdates":
        return _answer(fmt, lambda: service.list_updates(request.args, _english(), utcnow()),
                       root="service_request_updates", item="request_update")
    return wire.error(fmt, wire.Open311Error(404, f"There is no resource {what[:40]!r} here."))


@bp.get("/services/<name>")
def definition(name: str):
    code, fmt = _split(name)
    return _answer(fmt, lambda: service.service_definition(code, _english()), root="service_definition", item=None,
                   item_names={"attributes": "attribute", "values": "value"})


@bp.get("/requests/<name>")
def one_request(name: str):
    request_id, fmt = _split(name)
    return _answer(fmt, lambda: service.get_request(request_id, _english()), root="service_requests", item="request")


@bp.get("/tokens/<name>")
def token(name: str):
    key, fmt = _split(name)
    return _answer(fmt, lambda: service.token_status(key), root="service_requests", item="request")


@bp.post("/<name>")
@accepts(*FORMS)
def post(name: str):
    """A citizen's request (``requests``) or update (``servicerequestupdates``): 201 when made
    now, 200 when a retry is answered as the first time."""
    what, fmt = _split(name)
    use_case = {"requests": open311_intake.submit_request, "servicerequestupdates": open311_intake.submit_update}
    if what not in use_case:
        return wire.error(fmt, wire.Open311Error(404, f"There is nothing to post at {what[:40]!r}."))
    try:
        service.check_jurisdiction(request.form.get("jurisdiction_id"))
        now = utcnow()
        client = open311_clients.authenticate(request.form.get("api_key"), now)
        answer, made = use_case[what](client, request.form, now)
    except wire.Open311Error as failure:
        return wire.error(fmt, failure)
    root = "service_requests" if what == "requests" else "service_request_updates"
    return wire.render(fmt, answer, root=root, item=_LISTS[what], status=201 if made else 200)
