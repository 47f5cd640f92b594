"""The quarterly risk report's query (docs/STATS.md)."""
from __future__ import annotations

from marshmallow import Schema, fields, post_load, validate

from server.services.reports import Quarter


class QuarterlyReportArgsSchema(Schema):
    year = fields.Integer(required=True, validate=validate.Range(2000, 2100))
    quarter = fields.Integer(required=True, validate=validate.Range(1, 4), metadata={"description": "1–4"})
    format = fields.String(load_default="pdf", validate=validate.OneOf(("pdf", "html")))
    lang = fields.String(load_default="zh", validate=validate.OneOf(("zh", "en")))

    @post_load
    def _as_quarter(self, data, **kwargs):
        data["quarter"] = Quarter(data.pop("year"), data["quarter"])
        return data
