"""Incidents (事件/案件): reports, the closed loop's actions, and what the phone is shown."""
from marshmallow import Schema, fields, validate

from geo.crs import SUPPORTED_CRS
from geo.geometry import from_db, to_geojson
from server.domain.incidents import (
    ACTION_LABELS, MEDIATION_MODE_LABELS, MEDIATION_MODES, PHOTO_KIND_LABELS, PRIORITIES, PRIORITY_LABELS,
    SESSION_OUTCOMES, SOURCE_LABELS, STAFF_SOURCES, STATE_LABELS, STATES, STATUS_GROUPS,
)
from server.domain.escalation import LIGHT_LABELS, LIGHTS, RUNNING_STATES, light
from server.domain.territory import LEVELS
from server.models._base import utcnow

from .categories import CategoryRefSchema
from .common import MAX_ID, Id, PageQueryArgsSchema, QueryId, page_of
from .regions import BBoxField, RegionRefSchema, level_label
from .users import DepartmentRefSchema, Trimmed


# the OpenAPI shapes of the values written by functions below
_LABEL = {"type": "object", "properties": {"zh": {"type": "string"}, "en": {"type": "string"}}}
_CONTACT = {"type": "object", "nullable": True,
            "properties": {"name": {"type": "string", "nullable": True}, "phone": {"type": "string", "nullable": True}}}


def _label(table: dict, key: str | None) -> dict | None:
    if key is None:
        return None
    zh, en = table[key]
    return {"zh": zh, "en": en}


def _labelled(table: dict, attr: str):
    return fields.Function(lambda obj: _label(table, getattr(obj, attr)), metadata=_LABEL | {"nullable": True})


def _light(incident) -> str | None:
    return light(utcnow(), incident.yellow_at, incident.due_at, running=incident.status in RUNNING_STATES)


def mask_name(name: str | None) -> str | None:
    """张三丰 → 张**; keeps the first character only."""
    return None if not name else name[0] + "*" * max(1, len(name) - 1)


def mask_phone(phone: str | None) -> str | None:
    """13812345678 → 138****5678; shorter numbers keep only their last two characters."""
    if not phone:
        return None
    if len(phone) >= 11:
        return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
    return "*" * max(1, len(phone) - 2) + phone[-2:]


# ---------------------------------------------------------------- input

class PointSchema(Schema):
    type = fields.String(required=True, validate=validate.Equal("Point"))
    coordinates = fields.List(fields.Float(allow_nan=False), required=True, validate=validate.Length(equal=2),
                              metadata={"description": "[longitude, latitude] in degrees of `crs`"})


class ContactSchema(Schema):
    name = Trimmed(validate=validate.Length(max=100), load_default=None, allow_none=True)
    phone = fields.String(validate=validate.Regexp(r"^\+?[0-9 -]{3,31}$"), load_default=None, allow_none=True)


class IncidentReportSchema(Schema):
    client_uuid = fields.UUID(load_default=None, metadata={
        "description": "The phone's id for this report; a retry with it returns the first answer"})
    category = fields.String(required=True, validate=validate.Length(min=1, max=32),
                             metadata={"description": "Code of a live leaf category"})
    description = Trimmed(required=True, validate=validate.Length(min=1, max=4000))
    location = fields.Nested(PointSchema, required=True)
    crs = fields.String(load_default="wgs84", validate=validate.OneOf(SUPPORTED_CRS),
                        metadata={"description": "wgs84 (GPS), gcj02 (AMap, Tencent) or bd09 (Baidu)"})
    occurred_at = fields.AwareDateTime(load_default=None, metadata={
        "description": "When it was seen (ISO 8601 with zone); default: now"})
    priority = fields.String(load_default=None, validate=validate.OneOf(PRIORITIES),
                             metadata={"description": "Default: the category's"})
    attributes = fields.Dict(keys=fields.String(), load_default=dict,
                             metadata={"description": "Values of the category's extra attributes, by code"})
    address = Trimmed(load_default=None, allow_none=True, validate=validate.Length(max=300))
    source = fields.String(load_default="phone", validate=validate.OneOf(STAFF_SOURCES))
    contact = fields.Nested(ContactSchema, load_default=None, allow_none=True,
                            metadata={"description": "A caller's contact (hotline); stored only when given"})
    resolve_on_spot = fields.Boolean(load_default=False, metadata={
        "description": "即报即处: the reporter fixed it; needs an `after` photo part (multipart)"})
    resolution_note = Trimmed(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    # no default: a report without it hashes as before (idempotency keys stored earlier still match)
    campaign_task_id = Id(allow_none=True, metadata={
        "description": "A finding of this inspection campaign task (排查): yours, in its cell, of its category groups"})


VERSION = fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_ID), load_default=None,
                         metadata={"description": "The version you read (or send If-Match); a stale one gives 409"})


class ActionSchema(Schema):
    """The body of every action; which fields an action needs is checked by the service."""

    version = VERSION
    note = Trimmed(load_default=None, allow_none=True, validate=validate.Length(max=2000),
                   metadata={"description": "Reason or remark: required to reject, decline, rework, suspend, "
                                             "escalate; the instructions of return_down"})
    assignee_id = Id(load_default=None, metadata={"description": "dispatch: the grid worker"})
    department_id = Id(load_default=None, metadata={"description": "dispatch: the department"})
    ack_minutes = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=7 * 24 * 60),
                                 metadata={"description": "dispatch: acknowledge within (default: the policy's)"})
    original_id = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=2**63 - 1),
                                 metadata={"description": "merge: the incident this one duplicates"})
    until = fields.AwareDateTime(load_default=None, metadata={"description": "request_extension: the new deadline"})
    satisfaction = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=5),
                                  metadata={"description": "callback: 1 (very dissatisfied) … 5 (very satisfied)"})


class MediationSchema(Schema):
    mode = fields.String(required=True, validate=validate.OneOf(MEDIATION_MODES))
    mode_label = _labelled(MEDIATION_MODE_LABELS, "mode")
    parties_count = fields.Integer(required=True, strict=True, validate=validate.Range(min=2, max=10_000))
    agreement_reached = fields.Boolean(load_default=None, allow_none=True)
    summary = Trimmed(load_default=None, allow_none=True, validate=validate.Length(max=4000))
    sessions = fields.Method("_sessions", dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    version = VERSION

    def _sessions(self, mediation):
        return _SESSIONS.dump(mediation.sessions)


class MediationSessionSchema(Schema):
    id = fields.Integer(dump_only=True)
    held_on = fields.Date(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(SESSION_OUTCOMES))
    note = Trimmed(load_default=None, allow_none=True, validate=validate.Length(max=4000))
    version = VERSION


class PhotoUploadArgsSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(tuple(PHOTO_KIND_LABELS)))


# ---------------------------------------------------------------- output

class UserRefSchema(Schema):
    id = fields.Integer()
    display_name = fields.String()
    role = fields.String()


class DispatchWorkerSchema(UserRefSchema):
    region = fields.Nested(RegionRefSchema, metadata={"description": "The area the worker covers"})


class DispatchDepartmentSchema(DepartmentRefSchema):
    kind = fields.String(allow_none=True)
    region = fields.Nested(RegionRefSchema, metadata={"description": "The department's area"})


class DispatchTargetsSchema(Schema):
    workers = fields.List(fields.Nested(DispatchWorkerSchema), metadata={
        "description": "Active grid workers whose area holds the case's cell, nearest area first"})
    departments = fields.List(fields.Nested(DispatchDepartmentSchema), metadata={
        "description": "Live departments whose area contains the case, nearest area first"})


def _location(incident) -> dict:
    return to_geojson(from_db(incident.geom))


class IncidentSchema(Schema):
    id = fields.Integer()
    client_uuid = fields.UUID()
    category = fields.Nested(CategoryRefSchema)
    status = fields.String(metadata={"enum": list(STATES)})
    status_label = _labelled(STATE_LABELS, "status")
    is_open = fields.Function(lambda i: i.status not in STATUS_GROUPS["closed"])
    level = fields.String(metadata={"enum": list(LEVELS), "description": "The level handling the case now"})
    level_label = fields.Function(lambda i: level_label(i.level), metadata={"type": "object"})
    resolved_level = fields.String(allow_none=True)
    cell = fields.Nested(RegionRefSchema, attribute="region", metadata={"description": "The grid cell"})
    location = fields.Function(_location, metadata={"type": "object", "description": "GeoJSON Point, WGS84"})
    address = fields.String(allow_none=True)
    description = fields.String()
    priority = fields.String()
    priority_label = _labelled(PRIORITY_LABELS, "priority")
    source = fields.String()
    source_label = _labelled(SOURCE_LABELS, "source")
    attributes = fields.Dict()
    reporter = fields.Nested(UserRefSchema, allow_none=True)
    contact = fields.Function(lambda i: {"name": mask_name(i.contact_name), "phone": mask_phone(i.contact_phone)}
                              if (i.contact_name or i.contact_phone) else None,
                              metadata=_CONTACT | {"description": "Masked; null when none was left"})
    occurred_at = fields.DateTime()
    reported_at = fields.DateTime()
    accepted_at = fields.DateTime(allow_none=True)
    dispatched_at = fields.DateTime(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    due_at = fields.DateTime(allow_none=True, metadata={"description": "Resolve deadline at the current level"})
    yellow_at = fields.DateTime(allow_none=True, metadata={"description": "When the light turns yellow (预警)"})
    light = fields.Function(_light, metadata={"enum": list(LIGHTS), "nullable": True,
                                              "description": "green, yellow or red; null when the clock is "
                                                             "stopped (suspended, resolved, closed)"})
    light_label = fields.Function(lambda i: _label(LIGHT_LABELS, _light(i)), metadata=_LABEL | {"nullable": True})
    stage_no = fields.Integer(metadata={"description": "The stage at this level: 1, then one more per escalation, "
                                                       "return down or reopening"})
    stage_started_at = fields.DateTime(allow_none=True)
    top_level = fields.String(allow_none=True, metadata={"description": "The highest level the case may rise to"})
    supervised_at = fields.DateTime(allow_none=True, metadata={"description": "Flagged for supervision (督办)"})
    escalation_count = fields.Integer()
    resolved_on_spot = fields.Boolean()
    rework_count = fields.Integer()
    extension_count = fields.Integer()
    reopen_count = fields.Integer()
    satisfaction = fields.Integer(allow_none=True)
    merged_into_id = fields.Integer(allow_none=True)
    campaign_task_id = fields.Integer(allow_none=True, metadata={"description": "The inspection campaign task it "
                                                                               "was reported as a finding of"})
    version = fields.Integer(metadata={"description": "Send it back with every action (or If-Match)"})
    updated_at = fields.DateTime()


IncidentPageSchema = page_of(IncidentSchema, "IncidentPage")


class EventSchema(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    actor = fields.Nested(UserRefSchema, allow_none=True)
    action = fields.String()
    action_label = _labelled(ACTION_LABELS, "action")
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    from_level = fields.String(allow_none=True)
    to_level = fields.String()
    note = fields.String(allow_none=True)
    data = fields.Dict()


class TaskSchema(Schema):
    id = fields.Integer()
    incident_id = fields.Integer()
    status = fields.String()
    assignee = fields.Nested(UserRefSchema, allow_none=True)
    department = fields.Nested(DepartmentRefSchema, allow_none=True)
    level = fields.String()
    instructions = fields.String(allow_none=True)
    created_at = fields.DateTime()
    ack_deadline = fields.DateTime()
    acknowledged_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    version = fields.Integer()


class MyTaskSchema(TaskSchema):
    incident = fields.Nested(IncidentSchema)


MyTaskPageSchema = page_of(MyTaskSchema, "MyTaskPage")


class PhotoSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    kind_label = _labelled(PHOTO_KIND_LABELS, "kind")
    content_type = fields.String()
    size_bytes = fields.Integer()
    sha256 = fields.String()
    width = fields.Integer()
    height = fields.Integer()
    taken_at = fields.DateTime(allow_none=True, metadata={"description": "From the photo's EXIF, not trusted"})
    exif_location = fields.Function(
        lambda p: None if p.exif_lon is None else {"type": "Point", "coordinates": [p.exif_lon, p.exif_lat]},
        metadata={"type": "object", "nullable": True, "description": "EXIF GPS (staff only), not trusted"})
    distance_m = fields.Float(allow_none=True, metadata={"description": "EXIF position to the incident, metres"})
    delay_seconds = fields.Integer(allow_none=True, metadata={
        "description": "Upload time minus EXIF time, seconds (negative: a clock is wrong)"})
    uploaded_by = fields.Integer(allow_none=True)
    uploaded_at = fields.DateTime()
    url = fields.Function(lambda p: f"/api/v1/incidents/{p.incident_id}/photos/{p.id}")


class PublicPhotoSchema(PhotoSchema):
    class Meta:
        exclude = ("exif_location",)


class ExtensionSchema(Schema):
    id = fields.Integer()
    requested_by = fields.Integer()
    requested_at = fields.DateTime()
    until = fields.DateTime()
    reason = fields.String()
    status = fields.String()
    decided_by = fields.Integer(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    decision_note = fields.String(allow_none=True)


class IncidentDetailSchema(IncidentSchema):
    contact = fields.Method("_contact", metadata=_CONTACT | {"description": "Full for supervisors, else masked; "
                                                                           "null when none was left"})
    chain = fields.List(fields.Nested(RegionRefSchema), metadata={"description": "City first, the cell last"})
    timeline = fields.List(fields.Nested(EventSchema))
    tasks = fields.List(fields.Nested(TaskSchema))
    photos = fields.Method("_photos")
    extensions = fields.List(fields.Nested(ExtensionSchema))
    mediation = fields.Nested(MediationSchema, allow_none=True)
    followers = fields.Integer(attribute="followers_count")
    actions = fields.List(fields.String(), metadata={"description": "Actions you may take now"})

    def _contact(self, view):
        if not (view.contact_name or view.contact_phone):
            return None
        if view.show_contact:
            return {"name": view.contact_name, "phone": view.contact_phone}
        return {"name": mask_name(view.contact_name), "phone": mask_phone(view.contact_phone)}

    def _photos(self, view):
        return (_PHOTOS if view.sees_originals else _PUBLIC_PHOTOS).dump(view.photos)


# Schemas are built once: marshmallow copies every declared field when one is made.
_SESSIONS = MediationSessionSchema(many=True)
_PHOTOS = PhotoSchema(many=True)
_PUBLIC_PHOTOS = PublicPhotoSchema(many=True)


# ---------------------------------------------------------------- lists

class IncidentQueryArgsSchema(PageQueryArgsSchema):
    status_group = fields.String(validate=validate.OneOf(("open", "closed", "all")), load_default="all")
    status = fields.List(fields.String(validate=validate.OneOf(STATES)), load_default=None,
                         metadata={"description": "One or more statuses (repeat the parameter)"})
    level = fields.String(validate=validate.OneOf(LEVELS), load_default=None)
    region_id = QueryId(load_default=None, metadata={"description": "Incidents in this region's subtree"})
    category = fields.String(validate=validate.Length(max=32), load_default=None,
                             metadata={"description": "A category code; a group code takes all its leaves"})
    priority = fields.String(validate=validate.OneOf(PRIORITIES), load_default=None)
    source = fields.String(validate=validate.OneOf(tuple(SOURCE_LABELS)), load_default=None)
    reported_from = fields.AwareDateTime(load_default=None)
    reported_to = fields.AwareDateTime(load_default=None)
    bbox = BBoxField(load_default=None, metadata={"description": "minLon,minLat,maxLon,maxLat (WGS84)"})
    overdue = fields.Boolean(load_default=None, metadata={"description": "The light is red: the clock runs and "
                                                                         "the resolve deadline has passed"})
    light = fields.List(fields.String(validate=validate.OneOf(LIGHTS)), load_default=None,
                        metadata={"description": "green, yellow or red (repeat the parameter for several)"})
    supervised = fields.Boolean(load_default=None, metadata={"description": "Flagged for supervision (督办)"})
    mine = fields.Boolean(load_default=None, metadata={"description": "Only incidents I reported"})
    sort = fields.String(load_default="-reported_at", validate=validate.OneOf(
        ("reported_at", "-reported_at", "due_at", "-due_at", "priority", "-priority", "updated_at", "-updated_at")))


class NearbyQueryArgsSchema(Schema):
    lon = fields.Float(required=True, allow_nan=False, validate=validate.Range(min=-180, max=180))
    lat = fields.Float(required=True, allow_nan=False, validate=validate.Range(min=-90, max=90))
    crs = fields.String(load_default="wgs84", validate=validate.OneOf(SUPPORTED_CRS))
    category = fields.String(required=True, validate=validate.Length(min=1, max=32))
    radius = fields.Float(load_default=100.0, allow_nan=False, validate=validate.Range(min=1, max=2000),
                          metadata={"description": "Metres"})
    days = fields.Integer(load_default=7, validate=validate.Range(min=1, max=90),
                          metadata={"description": "Reported within this many days"})
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class NearbyIncidentSchema(IncidentSchema):
    distance_m = fields.Float(metadata={"description": "Geodesic distance from the point, metres"})


class NearbySchema(Schema):
    items = fields.List(fields.Nested(NearbyIncidentSchema))


class IncidentExportArgsSchema(IncidentQueryArgsSchema):
    """The list's filters and sort, and the language of the export's headers and labels."""

    lang = fields.String(load_default="zh", validate=validate.OneOf(("zh", "en")))
