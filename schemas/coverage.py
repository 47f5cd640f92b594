"""Patrol coverage and missed reports (docs/FIELD.md): the queries and the answers."""
from __future__ import annotations

from geoalchemy2 import WKBElement
from marshmallow import Schema, ValidationError, fields, validates, validates_schema

from geo.geometry import from_db, to_geojson
from server.domain.patrols import MISSED_MAX_DAYS

from .incidents import UserRefSchema
from .regions import RegionRefSchema
from .stats import RegionStatsArgsSchema


class CoverageArgsSchema(Schema):
    day = fields.Date(load_default=None, metadata={
        "description": "The local day (the city's zone), YYYY-MM-DD; default today. A day ahead: 422 "
                       "coverage.future_day"})

    @validates("day")
    def _year(self, value, **kwargs):
        if value is not None and not 2000 <= value.year <= 2100:
            raise ValidationError("A day between the years 2000 and 2100.")


class _CellRefSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    name_en = fields.String(allow_none=True)


class CellCoverageSchema(Schema):
    cell = fields.Nested(_CellRefSchema)
    share = fields.Float(metadata={"description": "Share of the cell's area within 30 m of the day's kept tracks "
                                                  "(0–1)"})
    minutes = fields.Float(metadata={"description": "Minutes between consecutive kept points both in the cell"})
    metres = fields.Float(metadata={"description": "Metres of kept track inside the cell"})
    workers = fields.Integer(metadata={"description": "Grid workers whose track entered the cell"})
    patrols = fields.Integer(metadata={"description": "Patrols whose track entered the cell"})


class RegionCoverageSchema(Schema):
    region = fields.Nested(RegionRefSchema)
    day = fields.Date()
    live = fields.Boolean(metadata={"description": "Computed for this answer (today, or a past day whose points "
                                                   "changed since it was stored); false: as stored"})
    pending = fields.Boolean(metadata={"description": "As stored, while newer points of the day wait for the worker "
                                                      "(a region too large to compute when asked)"})
    computed_at = fields.DateTime(allow_none=True, metadata={"description": "When the stored figures were computed"})
    reach_m = fields.Float()
    share = fields.Float(allow_none=True, metadata={"description": "The share of the region's cells' area covered"})
    cells_walked = fields.Integer(metadata={"description": "Cells a worker's track entered"})
    cells = fields.List(fields.Nested(CellCoverageSchema))


def coverage_feature_collection(answer: dict) -> dict:
    """The coverage answer as a GeoJSON FeatureCollection: a Feature per cell (id: the cell's),
    with its figures as properties; the day's figures as foreign members."""
    features = []
    for item in answer["cells"]:
        properties = {**item["cell"], **{k: item[k] for k in ("share", "minutes", "metres", "workers", "patrols")}}
        geometry = to_geojson(from_db(WKBElement(bytes(item["geom"]), srid=4326)))
        features.append({"type": "Feature", "id": item["cell"]["id"], "geometry": geometry, "properties": properties})
    computed_at = answer["computed_at"]
    return {"type": "FeatureCollection", "features": features, "day": answer["day"].isoformat(),
            "live": answer["live"], "pending": answer["pending"],
            "computed_at": computed_at.isoformat() if computed_at else None,
            "share": answer["share"], "region_id": answer["region"].id}


class MissedReportsArgsSchema(RegionStatsArgsSchema):
    class Meta:
        exclude = ("weights",)

    @validates_schema
    def _short_period(self, data, **kwargs):
        start, end = data.get("from_"), data.get("to")
        if start and end and (end - start).days > MISSED_MAX_DAYS:
            raise ValidationError(f"A period is at most {MISSED_MAX_DAYS} days.", "to")


class _WorkerMissedSchema(Schema):
    worker = fields.Nested(UserRefSchema)
    missed = fields.Integer()
    incident_ids = fields.List(fields.Integer())


class _CellMissedSchema(Schema):
    cell = fields.Nested(RegionRefSchema)
    missed = fields.Integer()
    incident_ids = fields.List(fields.Integer())


class MissedReportsSchema(Schema):
    region = fields.Nested(RegionRefSchema)
    period = fields.Dict()
    as_of = fields.DateTime()
    cases_checked = fields.Integer(metadata={"description": "The region's cases from these sources in the period"})
    missed = fields.Integer(metadata={"description": "Of them, those missed by at least one grid worker"})
    rule = fields.Dict(metadata={"description": "sources, reach_m, window_hours, own_report_m"})
    workers = fields.List(fields.Nested(_WorkerMissedSchema))
    cells = fields.List(fields.Nested(_CellMissedSchema))
