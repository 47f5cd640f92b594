"""The working-time calendar (工作日历): days and the administrators' entries."""
from marshmallow import Schema, fields, validate

from schemas.users import Trimmed
from server.services.calendar import SOURCE_LABELS


class CalendarRangeArgsSchema(Schema):
    start = fields.Date(data_key="from", required=True, metadata={"description": "First day (YYYY-MM-DD)"})
    end = fields.Date(data_key="to", required=True, metadata={"description": "Last day, at most a year later"})


class CalendarDaySetSchema(Schema):
    is_workday = fields.Boolean(required=True)
    name = Trimmed(load_default=None, allow_none=True, validate=validate.Length(max=100),
                   metadata={"description": "e.g. 春节 / Spring Festival"})


class CalendarDaySchema(Schema):
    day = fields.Date()
    weekday = fields.Function(lambda d: d.day.isoweekday(), metadata={"description": "1 Monday … 7 Sunday"})
    is_workday = fields.Boolean()
    source = fields.String(metadata={"enum": list(SOURCE_LABELS),
                                     "description": "admin, chinesecalendar (the State Council's schedule) "
                                                    "or weekdays (no schedule for the year)"})
    source_label = fields.Function(lambda d: dict(zip(("zh", "en"), SOURCE_LABELS[d.source])),
                                   metadata={"type": "object"})
    name = fields.String(allow_none=True)


class CalendarDaysSchema(Schema):
    items = fields.List(fields.Nested(CalendarDaySchema))
