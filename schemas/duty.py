"""Duty, leave and workload (docs/FIELD.md "Workload and duty")."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.regions import RegionRefSchema
from server.domain.duty import UNAVAILABLE_LABELS


class DutySetSchema(Schema):
    on_duty = fields.Boolean(required=True, truthy={True}, falsy={False}, metadata={"description": "true: 上岗 on duty; false: 离岗 off duty"})


class DutySchema(Schema):
    on_duty = fields.Boolean()
    since = fields.DateTime(allow_none=True, metadata={"description": "Since when (null: never said; on duty)"})
    on_leave_until = fields.DateTime(allow_none=True, metadata={"description": "On leave now, until then"})


class LeaveCreateSchema(Schema):
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True)
    reason = fields.String(load_default=None, validate=validate.Length(max=200))


class LeaveQueryArgsSchema(Schema):
    include_past = fields.Boolean(load_default=False, metadata={"description": "Past and cancelled leave too"})


class LeaveSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    reason = fields.String(allow_none=True)
    created_by = fields.Integer()
    created_at = fields.DateTime()
    cancelled_at = fields.DateTime(allow_none=True)


class WorkerLoadSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()
    region_name = fields.String(metadata={"description": "The worker's own area"})
    on_duty = fields.Boolean()
    duty_since = fields.DateTime(allow_none=True)
    on_leave_until = fields.DateTime(allow_none=True)
    primary_cells = fields.Integer()
    backup_cells = fields.Integer()
    open_tasks = fields.Integer(metadata={"description": "Tasks given and not finished (open or acknowledged)"})
    unacknowledged = fields.Integer(metadata={"description": "Open tasks not yet acknowledged (未签收)"})
    late_to_acknowledge = fields.Integer(metadata={"description": "Unacknowledged past their deadline"})
    overdue = fields.Integer(metadata={"description": "Open tasks whose case is past its deadline (超时)"})
    patrol_minutes_today = fields.Float(metadata={"description": "Minutes on patrol today (local day)"})
    on_patrol = fields.Boolean()
    available = fields.Boolean(metadata={"description": "Would new work reach them now"})
    unavailable_reason = fields.String(allow_none=True, metadata={
        "description": ", ".join(f"{k} {v[0]}" for k, v in UNAVAILABLE_LABELS.items())})


class WorkloadSchema(Schema):
    region = fields.Nested(RegionRefSchema)
    as_of = fields.DateTime()
    max_open_tasks = fields.Integer()
    workers = fields.List(fields.Nested(WorkerLoadSchema))
