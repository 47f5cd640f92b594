"""Exports (docs/STATS.md "Exports"): the query of the metrics exports, and export jobs."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from server.domain.export_jobs import FORMATS, KINDS, STATE_LABELS, STATES, percent

from .common import Id, page_of
from .incidents import IncidentQueryArgsSchema
from .stats import PeriodArgsSchema, RegionStatsArgsSchema

LANGS = ("zh", "en")


def lang_field():
    return fields.String(load_default="zh", validate=validate.OneOf(LANGS),
                         metadata={"description": "Headers and labels in Chinese (zh) or English (en)"})


class MetricsExportArgsSchema(RegionStatsArgsSchema):
    """The region stats' query (from, to, weights) and the language of the file."""

    lang = lang_field()


class MetricsTableExportArgsSchema(PeriodArgsSchema):
    """The departments' or workers' query (from, to) and the language of the file."""

    lang = lang_field()


# ---------------------------------------------------------------- export jobs

class IncidentJobFiltersSchema(IncidentQueryArgsSchema):
    """An incidents job's filters: the list's (and the synchronous export's), without paging."""

    class Meta:
        exclude = ("page", "page_size")


class MetricsJobFiltersSchema(RegionStatsArgsSchema):
    """A metrics job's filters: the region and the region stats' query (from, to, weights)."""

    region_id = Id(required=True)


FILTER_SCHEMAS = {"incidents": IncidentJobFiltersSchema, "metrics": MetricsJobFiltersSchema}


def load_filters(kind: str, filters: dict) -> dict:
    """A job's filters checked and loaded by its kind's schema; raises ValidationError."""
    return FILTER_SCHEMAS[kind]().load(filters)


class ExportJobCreateSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(KINDS),
                         metadata={"description": "incidents (the list's rows) or metrics (a region's figures)"})
    format = fields.String(required=True, validate=validate.OneOf(FORMATS))
    lang = lang_field()
    filters = fields.Dict(keys=fields.String(), load_default=dict, metadata={
        "description": "incidents: the list's filters (status_group, status [list], level, region_id, category, "
                       "priority, source, reported_from, reported_to, bbox, overdue, light [list], supervised, "
                       "mine); metrics: region_id, from, to, weights"})

    @validates_schema
    def _filters(self, data, **kwargs):
        if data.get("kind") in FILTER_SCHEMAS:
            try:
                load_filters(data["kind"], data.get("filters") or {})
            except ValidationError as exc:
                raise ValidationError(exc.messages, "filters") from None


class ExportJobSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    format = fields.String()
    lang = fields.String()
    filters = fields.Dict()
    state = fields.String(metadata={"enum": list(STATES)})
    state_label = fields.Method("_state_label", metadata={"type": "object", "description": "zh and en"})
    rows_done = fields.Integer()
    rows_total = fields.Integer(allow_none=True, metadata={"description": "null until counted"})
    percent = fields.Method("_percent", metadata={"type": "integer", "nullable": True})
    error_code = fields.String(allow_none=True, metadata={"description": "Why a failed job failed (a stable code)"})
    size_bytes = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime(allow_none=True, metadata={"description": "When the file is deleted"})
    file = fields.Method("_file", metadata={"type": "string", "nullable": True,
                                            "description": "The file's URL, once done"})

    def _state_label(self, job):
        zh, en = STATE_LABELS[job.state]
        return {"zh": zh, "en": en}

    def _percent(self, job):
        return percent(job.rows_done, job.rows_total, job.state)

    def _file(self, job):
        return f"/api/v1/exports/{job.id}/file" if job.state == "done" else None


ExportJobPageSchema = page_of(ExportJobSchema, "ExportJobPageSchema")
