"""The inbox (消息) and quiet hours."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.common import PageQueryArgsSchema, PageSchema
from server.domain.notifications import KIND_LABELS

from .regions import level_label


class NotificationSchema(Schema):
    id = fields.Integer()
    kind = fields.String(metadata={"enum": list(KIND_LABELS)})
    kind_label = fields.Function(lambda n: dict(zip(("zh", "en"), KIND_LABELS[n.kind])), metadata={"type": "object"})
    incident_id = fields.Integer(allow_none=True)
    task_id = fields.Integer(allow_none=True)
    level = fields.String(allow_none=True)
    level_label = fields.Function(lambda n: level_label(n.level) if n.level else None,
                                  metadata={"type": "object", "nullable": True})
    deadline = fields.DateTime(allow_none=True)
    title = fields.String()
    title_en = fields.String()
    body = fields.String(allow_none=True)
    body_en = fields.String(allow_none=True)
    urgent = fields.Boolean()
    created_at = fields.DateTime()
    read_at = fields.DateTime(allow_none=True)


class NotificationPageSchema(PageSchema):
    items = fields.List(fields.Nested(NotificationSchema))
    unread = fields.Integer(metadata={"description": "All my unread notifications"})


class NotificationQueryArgsSchema(PageQueryArgsSchema):
    unread = fields.Boolean(load_default=None, metadata={"description": "Only unread (true) or read (false)"})


class ReadUpToSchema(Schema):
    up_to_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=2**63 - 1),
                              metadata={"description": "Mark read every notification up to this id"})


class ReadCountSchema(Schema):
    marked = fields.Integer()


class QuietHoursSchema(Schema):
    quiet_from = fields.Time(required=True, allow_none=True, metadata={"description": "HH:MM, local time"})
    quiet_to = fields.Time(required=True, allow_none=True, metadata={"description": "HH:MM; may be after midnight"})

    @validates_schema
    def _both_or_neither(self, data, **kwargs):
        if (data.get("quiet_from") is None) != (data.get("quiet_to") is None):
            raise ValidationError("Give both ends, or neither to clear them.", "quiet_to")

