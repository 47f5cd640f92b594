"""Inspection campaigns (排查, docs/FIELD.md): launch, progress, tasks and their answers."""
from marshmallow import Schema, fields, validate

from server.domain.campaigns import (
    CAMPAIGN_STATE_LABELS, CAMPAIGN_STATES, TASK_STATE_LABELS, TASK_STATES, stage_level,
)

from .categories import CategoryRefSchema
from .common import Id, PageQueryArgsSchema, QueryId, page_of
from .incidents import UserRefSchema
from .regions import RegionRefSchema
from .users import Trimmed


def _label(table: dict, key: str) -> dict:
    zh, en = table[key]
    return {"zh": zh, "en": en}


# ---------------------------------------------------------------- input

class CampaignCreateSchema(Schema):
    client_uuid = fields.UUID(load_default=None, metadata={
        "description": "The launcher's id for this campaign: launching again with it gives the same campaign"})
    region_id = Id(required=True, metadata={"description": "A live region of your area: its live grid cells each "
                                                           "get a task"})
    title = Trimmed(required=True, validate=validate.Length(min=1, max=200))
    category_groups = fields.List(fields.String(validate=validate.Length(min=1, max=32)), required=True,
                                  validate=validate.Length(min=1, max=20),
                                  metadata={"description": "Codes of the category groups (大类) looked for, e.g. "
                                                           "[\"05\"] for safety hazards"})
    deadline = fields.AwareDateTime(required=True, metadata={"description": "Ahead, within a year (ISO 8601 "
                                                                            "with zone)"})


class CampaignQueryArgsSchema(PageQueryArgsSchema):
    state = fields.String(load_default=None, validate=validate.OneOf(CAMPAIGN_STATES))


class CampaignTaskQueryArgsSchema(PageQueryArgsSchema):
    state = fields.List(fields.String(validate=validate.OneOf(TASK_STATES)), load_default=None,
                        metadata={"description": "One or more states (repeat the parameter)"})
    cell_id = QueryId(load_default=None)
    assignee_id = QueryId(load_default=None)


class NothingFoundFormSchema(Schema):
    note = Trimmed(load_default=None, validate=validate.Length(max=2000),
                   metadata={"description": "What was inspected (optional)"})


# ---------------------------------------------------------------- output

class CampaignSchema(Schema):
    id = fields.Integer()
    client_uuid = fields.UUID()
    title = fields.String()
    region = fields.Nested(RegionRefSchema)
    category_groups = fields.List(fields.Nested(CategoryRefSchema))
    deadline = fields.DateTime()
    state = fields.String(metadata={"enum": list(CAMPAIGN_STATES)})
    state_label = fields.Function(lambda c: _label(CAMPAIGN_STATE_LABELS, c.state), metadata={"type": "object"})
    created_by = fields.Nested(UserRefSchema, attribute="creator")
    created_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)


CampaignPageSchema = page_of(CampaignSchema, "CampaignPage")


class ProgressFiguresSchema(Schema):
    total = fields.Integer(metadata={"description": "Tasks (cells)"})
    by_state = fields.Dict(keys=fields.String(), values=fields.Integer(),
                           metadata={"description": "Tasks in each state: " + ", ".join(
                               f"{state} {zh}" for state, (zh, _) in TASK_STATE_LABELS.items())})
    done = fields.Integer(metadata={"description": "Found or nothing found"})
    percent_done = fields.Float(metadata={"description": "done / total, per cent, one decimal"})
    overdue = fields.Integer(metadata={"description": "Still unanswered after the deadline"})
    late = fields.Integer(metadata={"description": "Answered after the deadline"})


class RegionProgressSchema(ProgressFiguresSchema):
    region = fields.Nested(RegionRefSchema)


class ProgressSchema(ProgressFiguresSchema):
    unassigned = fields.Integer(metadata={"description": "Tasks to do whose cell had no grid worker"})
    findings = fields.Integer(metadata={"description": "Incidents reported with the tasks"})
    by_region = fields.List(fields.Nested(RegionProgressSchema), metadata={
        "description": "The same by child region of the campaign's region"})


class CampaignDetailSchema(CampaignSchema):
    progress = fields.Nested(ProgressSchema, metadata={"description": "Over the tasks you are shown (your scope; "
                                                                      "a grid worker: their own)"})


class CampaignTaskSchema(Schema):
    id = fields.Integer()
    campaign_id = fields.Integer()
    cell = fields.Nested(RegionRefSchema)
    assignee = fields.Nested(UserRefSchema, allow_none=True)
    state = fields.String(metadata={"enum": list(TASK_STATES)})
    state_label = fields.Function(lambda t: _label(TASK_STATE_LABELS, t.state), metadata={"type": "object"})
    finished_at = fields.DateTime(allow_none=True)
    late = fields.Boolean(metadata={"description": "Answered after the deadline"})
    note = fields.String(allow_none=True)
    photo = fields.Function(lambda t: None if t.photo_sha256 is None else {
        "url": f"/api/v1/campaigns/{t.campaign_id}/tasks/{t.id}/photo", "content_type": t.photo_content_type,
        "size_bytes": t.photo_size_bytes, "taken_at": t.photo_taken_at.isoformat() if t.photo_taken_at else None},
        metadata={"type": "object", "nullable": True, "description": "The nothing-found photo (零报告)"})
    overdue_at = fields.DateTime(allow_none=True)
    escalation_stage = fields.Integer(metadata={"description": "Overdue reminders sent: 0 none, 1 community, "
                                                               "2 street, 3 district"})
    escalation_level = fields.Function(lambda t: stage_level(t.escalation_stage) if t.escalation_stage else None,
                                       metadata={"type": "string", "nullable": True})
    incident_ids = fields.List(fields.Integer(), metadata={"description": "Incidents reported with the task"})


CampaignTaskPageSchema = page_of(CampaignTaskSchema, "CampaignTaskPage")


class MyCampaignTaskSchema(CampaignTaskSchema):
    campaign = fields.Nested(CampaignSchema, attribute="campaign_view")


MyCampaignTaskPageSchema = page_of(MyCampaignTaskSchema, "MyCampaignTaskPage")


class CampaignCellsSchema(Schema):
    """A GeoJSON FeatureCollection: each cell's polygon (WGS84) with its task's state."""

    type = fields.String()
    features = fields.List(fields.Dict(), metadata={"description": "properties: task_id, cell_id, code, name, "
                                                                   "name_en, state, label, label_en, colour, late, "
                                                                   "assigned"})
    campaign = fields.Dict()
    legend = fields.List(fields.Dict(), metadata={"description": "state, label, label_en, colour of every state"})
