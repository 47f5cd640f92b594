"""Incidents: reports from phones and the closed loop (上报 → 立案 → 派遣 → 处置 → 核查 → 结案)."""
from __future__ import annotations

import json

from flask import current_app, request, stream_with_context
from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError

from schemas.incidents import (
    ActionSchema, DispatchTargetsSchema, IncidentDetailSchema, IncidentExportArgsSchema, IncidentPageSchema,
    IncidentQueryArgsSchema, IncidentReportSchema,
    MediationSchema, MediationSessionSchema, NearbyQueryArgsSchema, NearbySchema, PhotoSchema,
    PhotoUploadArgsSchema,
)
from server.auth import login_required
from server.domain.incidents import ACTIONS, OWN_ENDPOINT_ACTIONS, PHOTO_KINDS
from server.errors import BadRequest, InvalidInput
from server.models._base import utcnow
from server.services import exports, photos
from server.services import incident_queries as queries
from server.services import incidents as service

from .common import Blueprint, accepts, download, errors, parse_json, photo_response
from .exports import XLSX

blp = Blueprint("incidents", __name__, url_prefix="/incidents",
                description="Incidents reported from phones and their closed loop")

MULTIPART = "multipart/form-data"


_DETAIL = IncidentDetailSchema()  # built once: marshmallow copies every field when a schema is made


def _render(view) -> dict:
    return _DETAIL.dump(view)


def _json_answer(body: dict, status: int, headers: dict | None = None):
    response = current_app.response_class(json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                                          status=status, mimetype="application/json")
    response.headers.update(headers or {})
    return response


def _report_input() -> tuple[dict, list[tuple[str, bytes]]]:
    """The report and its photos: a JSON body, or multipart with a JSON part ``incident``
    and one file part per photo named by its kind (report, before, after, evidence).
    Empty file parts (a form's unused file input) are ignored."""
    if request.mimetype != MULTIPART:
        raw = parse_json(request.get_data(cache=True))
        files = []
    else:
        parts = request.form.getlist("incident")
        if len(parts) != 1:
            raise InvalidInput("request.invalid", "The multipart body needs one JSON part named 'incident'.",
                               errors={"incident": ["Exactly one part is required."]})
        raw = parse_json(parts[0], "'incident' part")
        unknown = set(request.form) - {"incident"} | (set(request.files) - set(PHOTO_KINDS))
        if unknown:
            raise InvalidInput("request.invalid", "Unknown parts in the multipart body.",
                               errors={name: ["Unknown field."] for name in sorted(unknown)})
        files = [(kind, content) for kind, f in request.files.items(multi=True) if (content := f.read())]
    try:
        data = IncidentReportSchema().load(raw)
    except ValidationError as exc:
        raise InvalidInput("request.invalid", "The request is not valid.", errors=exc.messages) from None
    return data, files


def _if_match() -> int | None:
    """The version named by an ``If-Match: "7"`` header, if any."""
    value = request.headers.get("If-Match")
    if value is None:
        return None
    value = value.strip().removeprefix("W/").strip('"')
    if not value.isascii() or not value.isdigit() or len(value) > 10:
        raise BadRequest("request.invalid_if_match", 'If-Match must be the version you read, e.g. "7".')
    return int(value)


@blp.post("")
@login_required
@blp.doc(requestBody={"content": {
    "application/json": {"schema": IncidentReportSchema},
    MULTIPART: {"schema": {"type": "object", "properties": {
        "incident": {"type": "string", "description": "The report as JSON (IncidentReport)"},
        **{kind: {"type": "array", "items": {"type": "string", "format": "binary"}} for kind in PHOTO_KINDS},
    }, "required": ["incident"]}},
}}, parameters=[{"in": "header", "name": "Idempotency-Key", "required": False, "schema": {"type": "string"},
                 "description": "Replays return the first answer; the same key with another body gives 422"}])
@blp.response(201, IncidentDetailSchema)
@errors(blp, 400, 401, 403, 413, 415, 422)
@accepts("application/json", MULTIPART, max_body="REPORT_MAX_BYTES")
def report_incident(actor):
    """Report an incident (上报), optionally resolved on the spot (即报即处)."""
    data, files = _report_input()
    body, replayed = service.report_incident(actor, data, files, request.headers.get("Idempotency-Key"),
                                             render=_render)
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    headers["Location"] = f"/api/v1/incidents/{body['id']}"
    headers["ETag"] = f'"{body["version"]}"'
    return _json_answer(body, 201, headers)


@blp.get("")
@login_required
@blp.arguments(IncidentQueryArgsSchema, location="query")
@blp.response(200, IncidentPageSchema)
@errors(blp, 401, 422)
def list_incidents(actor, args):
    """List the incidents you can see."""
    page, page_size = args.pop("page"), args.pop("page_size")
    return queries.list_incidents(actor, queries.IncidentFilter(**args), page, page_size)


def _export(args: dict) -> tuple[queries.IncidentFilter, str]:
    """An export's filter (the list's, without paging) and language."""
    args.pop("page"), args.pop("page_size")
    lang = args.pop("lang")
    return queries.IncidentFilter(**args), lang


def _download(body, mimetype: str, extension: str):
    """``body`` as a file to save (incidents-<date>.<extension>), never cached."""
    return download(body, mimetype, f"incidents-{utcnow():%Y%m%d}.{extension}")


@blp.get("/export.csv")
@login_required
@blp.arguments(IncidentExportArgsSchema, location="query")
@blp.response(200, content_type="text/csv", description="UTF-8 CSV with a byte-order mark, streamed")
@errors(blp, 401, 422)
def export_incidents(actor, args):
    """Export the incidents you can see as CSV (the list's filters; contacts masked; lang=zh|en headers)."""
    return _download(stream_with_context(exports.incident_csv(actor, *_export(args))), "text/csv", "csv")


@blp.get("/export.xlsx")
@login_required
@blp.arguments(IncidentExportArgsSchema, location="query")
@blp.response(200, content_type=XLSX, description="An Excel workbook of one sheet")
@errors(blp, 400, 401, 422)
def export_incidents_xlsx(actor, args):
    """Export the incidents you can see as an Excel workbook (as the CSV; at most 200,000: 400 export.too_large)."""
    return _download(exports.incident_xlsx(actor, *_export(args)), XLSX, "xlsx")


@blp.get("/nearby")
@login_required
@blp.arguments(NearbyQueryArgsSchema, location="query")
@blp.response(200, NearbySchema)
@errors(blp, 401, 422)
def nearby(actor, args):
    """Find open incidents of a category near a point (possible duplicates)."""
    return {"items": queries.nearby(actor, **args)}


@blp.get("/<id:incident_id>")
@login_required
@blp.response(200, IncidentDetailSchema)
@errors(blp, 401, 404)
def get_incident(actor, incident_id):
    """Get an incident with its timeline, tasks, photos and the actions you may take."""
    view = service.get_incident(actor, incident_id)
    return _json_answer(_render(view), 200, {"ETag": f'"{view.version}"'})


@blp.get("/<id:incident_id>/dispatch-targets")
@login_required
@blp.response(200, DispatchTargetsSchema)
@errors(blp, 401, 403, 404)
def get_dispatch_targets(actor, incident_id):
    """Whom you may dispatch the incident to (派遣对象): grid workers and departments, nearest first."""
    return service.dispatch_targets(actor, incident_id)


@blp.post("/<id:incident_id>/actions/<string:action>")
@login_required
@blp.arguments(ActionSchema)
@blp.response(200, IncidentDetailSchema)
@blp.doc(parameters=[{"in": "path", "name": "action", "required": True,
                      "schema": {"type": "string", "enum": [a for a in ACTIONS if a not in OWN_ENDPOINT_ACTIONS]}}])
@errors(blp, 400, 401, 403, 404, 409, 422)
def act(actor, data, incident_id, action):
    """Take an action of the closed loop (accept, dispatch, acknowledge, resolve, verify…)."""
    view = service.act(actor, incident_id, action, data, if_match=_if_match())
    return _json_answer(_render(view), 200, {"ETag": f'"{view.version}"'})


@blp.put("/<id:incident_id>/mediation")
@login_required
@blp.arguments(MediationSchema)
@blp.response(200, IncidentDetailSchema)
@errors(blp, 401, 403, 404, 409, 422)
def put_mediation(actor, data, incident_id):
    """Record or update the mediation of a dispute (矛盾纠纷调解)."""
    view = service.record_mediation(actor, incident_id, data, if_match=_if_match())
    return _json_answer(_render(view), 200, {"ETag": f'"{view.version}"'})


@blp.post("/<id:incident_id>/mediation/sessions")
@login_required
@blp.arguments(MediationSessionSchema)
@blp.response(200, IncidentDetailSchema)
@errors(blp, 401, 403, 404, 409, 422)
def add_mediation_session(actor, data, incident_id):
    """Add a mediation session (date, outcome) to a dispute."""
    view = service.add_mediation_session(actor, incident_id, data, if_match=_if_match())
    return _json_answer(_render(view), 200, {"ETag": f'"{view.version}"'})


class _PhotoFileSchema(Schema):
    file = Upload(required=True)


@blp.post("/<id:incident_id>/photos")
@login_required
@blp.arguments(PhotoUploadArgsSchema, location="form")
@blp.arguments(_PhotoFileSchema, location="files")
@blp.response(201, PhotoSchema)
@blp.alt_response(200, schema=PhotoSchema, description="The same bytes of the same kind again: the same photo")
@errors(blp, 401, 403, 404, 409, 413, 415, 422)
@accepts(MULTIPART, max_body="PHOTO_REQUEST_MAX_BYTES")
def upload_photo(actor, form, files, incident_id):
    """Upload a photo of an incident (multipart: kind, file); the same bytes again give the same photo."""
    photo, created = photos.upload_photo(actor, incident_id, form["kind"], files["file"].read())
    return photo, 201 if created else 200


@blp.get("/<id:incident_id>/photos/<id:photo_id>")
@login_required
@blp.response(200, content_type="image/jpeg", description="The image (original for staff, else a copy without metadata)")
@errors(blp, 401, 404)
def get_photo(actor, incident_id, photo_id):
    """Get a photo's image."""
    return photo_response(photos.photo_content(actor, incident_id, photo_id))
