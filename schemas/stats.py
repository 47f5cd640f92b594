"""Evaluation figures (考核, docs/STATS.md): the query and the answer."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from server.services.stats import DEFAULT_WEIGHTS, Period

from .incidents import UserRefSchema
from .regions import RegionRefSchema
from .users import DepartmentRefSchema

MAX_PERIOD_DAYS = 3 * 366


class WeightsField(fields.String):
    """``closure:25,on_time:25,…``: weights of the composite score by metric (0–100)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text_value = super()._deserialize(value, attr, data, **kwargs)
        weights = {}
        for part in text_value.split(","):
            name, _, number = part.partition(":")
            name = name.strip()
            if name not in DEFAULT_WEIGHTS:
                raise ValidationError(f"Unknown metric {name[:40]!r}: weigh {', '.join(DEFAULT_WEIGHTS)}.")
            try:
                weight = float(number)
            except ValueError:
                raise ValidationError(f"The weight of {name} must be a number.") from None
            if not 0 <= weight <= 100:
                raise ValidationError(f"The weight of {name} must be from 0 to 100.")
            weights[name] = weight
        if not any(weights.values()):
            raise ValidationError("At least one weight must be above 0.")
        return weights


class RegionStatsArgsSchema(Schema):
    from_ = fields.Date(required=True, data_key="from", metadata={"description": "First day (the city's zone)"})
    to = fields.Date(required=True, metadata={"description": "The day after the last"})
    weights = WeightsField(load_default=None, metadata={
        "description": "Composite score weights, e.g. closure:25,on_time:25,local:20,no_rework:10,satisfaction:20"})

    @validates_schema
    def _period(self, data, **kwargs):
        start, end = data.get("from_"), data.get("to")
        for name, day in (("from", start), ("to", end)):
            if day is not None and not 2000 <= day.year <= 2100:
                raise ValidationError("A day between the years 2000 and 2100.", name)
        if start and end and not start < end:
            raise ValidationError("to must be after from.", "to")
        if start and end and (end - start).days > MAX_PERIOD_DAYS:
            raise ValidationError(f"A period is at most {MAX_PERIOD_DAYS} days.", "to")

    @post_load
    def _as_period(self, data, **kwargs):
        data["period"] = Period(data.pop("from_"), data.pop("to"))
        return data


class ChildStatsSchema(Schema):
    region = fields.Nested(RegionRefSchema)
    figures = fields.Dict()
    score = fields.Float(allow_none=True)
    rank = fields.Integer(allow_none=True, metadata={"description": "排名; null: no case accepted in the period"})
    change_pp = fields.Dict(metadata={"description": "Each rate's change in percentage points against the same "
                                                     "region's figures of the period before (previous) and the year "
                                                     "before (year_before)"})


class ComparisonSchema(Schema):
    period = fields.Dict()
    figures = fields.Dict()
    change_pp = fields.Dict(metadata={"description": "Each rate's change in percentage points (百分点)"})


class RegionStatsSchema(Schema):
    region = fields.Nested(RegionRefSchema)
    period = fields.Dict()
    as_of = fields.DateTime(metadata={"description": "Outcomes are judged as of this instant (截至统计时点)"})
    weights = fields.Dict()
    figures = fields.Dict(metadata={"description": "counts, rates (null when nothing to divide by), hours, "
                                                   "satisfaction_mean and score"})
    escalation_by_level = fields.Dict()
    previous = fields.Nested(ComparisonSchema)
    year_before = fields.Nested(ComparisonSchema)
    children = fields.List(fields.Nested(ChildStatsSchema))


class PeriodArgsSchema(RegionStatsArgsSchema):
    class Meta:
        exclude = ("weights",)


class _TaskFiguresSchema(Schema):
    tasks = fields.Integer()
    acknowledged = fields.Integer()
    done = fields.Integer()
    ack_on_time = fields.Float(allow_none=True, metadata={"description": "Acknowledged by the deadline ÷ tasks"})
    ack_hours = fields.Dict()
    done_hours = fields.Dict()


class _DepartmentBriefSchema(DepartmentRefSchema):
    region = fields.Nested(RegionRefSchema)


class DepartmentFiguresSchema(_TaskFiguresSchema):
    department = fields.Nested(_DepartmentBriefSchema)


class _WorkerBriefSchema(UserRefSchema):
    region = fields.Nested(RegionRefSchema)


class WorkerFiguresSchema(_TaskFiguresSchema):
    worker = fields.Nested(_WorkerBriefSchema)
    reports = fields.Integer()
    valid_reports = fields.Integer()
    valid_rate = fields.Float(allow_none=True)
    resolved_on_spot = fields.Integer()


class DepartmentStatsSchema(Schema):
    region = fields.Nested(RegionRefSchema)
    period = fields.Dict()
    as_of = fields.DateTime()
    departments = fields.List(fields.Nested(DepartmentFiguresSchema))


class WorkerStatsSchema(Schema):
    region = fields.Nested(RegionRefSchema)
    period = fields.Dict()
    as_of = fields.DateTime()
    workers = fields.List(fields.Nested(WorkerFiguresSchema))


class HotspotArgsSchema(Schema):
    level = fields.String(load_default="grid", validate=validate.OneOf(("district", "street", "community", "grid")),
                          metadata={"description": "The units judged: cells (default) or regions of a level"})
    end = fields.AwareDateTime(load_default=None, metadata={"description": "The window's end (default: now)"})

    @validates_schema
    def _end(self, data, **kwargs):
        end = data.get("end")
        if end is not None and not 2000 <= end.year <= 2100:
            raise ValidationError("The window's end must be between the years 2000 and 2100.", "end")
    days = fields.Integer(load_default=7, validate=validate.Range(min=1, max=92))
    baseline_windows = fields.Integer(load_default=8, validate=validate.Range(min=1, max=52))
    alpha = fields.Float(load_default=0.01, validate=validate.Range(min=0, max=0.5, min_inclusive=False))
    min_count = fields.Integer(load_default=3, validate=validate.Range(min=1, max=10_000))
    radius_m = fields.Float(load_default=30.0, validate=validate.Range(min=1, max=1000),
                            metadata={"description": "Repeated spots: reports this close to each other"})
    repeat_min = fields.Integer(load_default=3, validate=validate.Range(min=2, max=1000))


class HotspotsSchema(Schema):
    region = fields.Nested(RegionRefSchema)
    window = fields.Dict()
    rules = fields.Dict()
    hotspots = fields.Dict(metadata={"description": "GeoJSON FeatureCollection: a point in each hot unit"})
    repeated = fields.Dict(metadata={"description": "GeoJSON FeatureCollection: the spots reported again and again"})


class TrendArgsSchema(PeriodArgsSchema):
    interval = fields.String(load_default="week", validate=validate.OneOf(("week", "month")))


class TrendSeriesSchema(Schema):
    category_group = fields.Dict()
    reports = fields.List(fields.Integer(), metadata={"description": "One count a bucket, in the buckets' order"})
    total = fields.Integer()


class TrendsSchema(Schema):
    region = fields.Nested(RegionRefSchema)
    period = fields.Dict()
    interval = fields.String()
    buckets = fields.List(fields.String(), metadata={"description": "Each bucket's first day (weeks from Monday)"})
    series = fields.List(fields.Nested(TrendSeriesSchema))
