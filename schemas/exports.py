"""Exports (docs/STATS.md "Exports"): the query of the metrics exports, and export jobs."""
from __future__ import annotations

from marshmallow import fields, validate

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
