"""Sync for offline phones: what changed for me since my cursor (docs/SYNC.md)."""
from marshmallow import Schema, fields, validate

from server.domain.categories import KINDS
from server.domain.incidents import PRIORITIES
from server.domain.territory import LEVELS

from .incidents import IncidentSchema, TaskSchema


class SyncQueryArgsSchema(Schema):
    cursor = fields.String(load_default=None, validate=validate.Length(max=2000), metadata={
        "description": "The cursor of the previous answer, as given; none (or empty) for a first sync"})
    limit = fields.Integer(load_default=200, validate=validate.Range(min=1, max=500),
                           metadata={"description": "At most this many rows of each kind"})


class SyncCategorySchema(Schema):
    """What a phone needs of a category to offer it in a report form."""

    id = fields.Integer()
    code = fields.String()
    parent_id = fields.Integer(allow_none=True, metadata={"description": "null for a group (大类)"})
    name = fields.String()
    name_en = fields.String()
    kind = fields.String(metadata={"enum": list(KINDS)})
    default_priority = fields.String(metadata={"enum": list(PRIORITIES)})
    start_level = fields.String(metadata={"enum": list(LEVELS)})
    requires_after_photo = fields.Boolean()
    attributes = fields.List(fields.Dict(), metadata={"description": "Typed extra fields of a report"})
    retired_at = fields.DateTime(allow_none=True, metadata={"description": "Set: offer it no more"})
    version = fields.Integer()


class SyncSchema(Schema):
    cursor = fields.String(metadata={"description": "Opaque: send it back as is on the next sync"})
    has_more = fields.Boolean(metadata={"description": "More is waiting: sync again with the new cursor now"})
    server_time = fields.DateTime()
    incidents = fields.List(fields.Nested(IncidentSchema), metadata={
        "description": "Upsert by id, keep the higher version"})
    tasks = fields.List(fields.Nested(TaskSchema), metadata={
        "description": "My tasks; one that is no longer active (done, declined, cancelled) leaves the to-do list"})
    categories = fields.List(fields.Nested(SyncCategorySchema))
