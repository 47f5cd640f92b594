"""Patrols (docs/FIELD.md): start, end, a batch of GPS points, the answer."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from geo.geometry import from_db, to_geojson
from schemas.common import Id, PageQueryArgsSchema, QueryId, page_of
from schemas.incidents import PointSchema
from schemas.users import Trimmed
from server.domain.patrols import MAX_POINTS_PER_BATCH, STATE_LABELS


class PatrolStartSchema(Schema):
    client_uuid = fields.UUID(required=True, metadata={"description": "The phone's id for this patrol: a repeat is "
                                                                     "the same patrol"})
    started_at = fields.AwareDateTime(load_default=None, metadata={"description": "Default: now"})


class PatrolEndSchema(Schema):
    ended_at = fields.AwareDateTime(load_default=None, metadata={"description": "Default: now"})


class GpsPointSchema(Schema):
    t = fields.AwareDateTime(required=True, metadata={"description": "The phone's time of the fix, with its zone"})
    lon = fields.Float(required=True, allow_nan=False, validate=validate.Range(-180, 180))
    lat = fields.Float(required=True, allow_nan=False, validate=validate.Range(-90, 90))
    accuracy_m = fields.Float(load_default=None, allow_nan=False, validate=validate.Range(0, 100_000))


class GpsBatchSchema(Schema):
    points = fields.List(fields.Nested(GpsPointSchema), required=True,
                         validate=validate.Length(min=1, max=MAX_POINTS_PER_BATCH))


class GpsBatchResultSchema(Schema):
    stored = fields.Integer(metadata={"description": "New points stored"})
    duplicates = fields.Integer(metadata={"description": "Points in a 5-second slot already held (sent before)"})
    refused = fields.Integer(metadata={"description": "Points outside the patrol's time"})


class PatrolQueryArgsSchema(PageQueryArgsSchema):
    user_id = QueryId(load_default=None, metadata={"description": "One worker's patrols"})
    state = fields.String(load_default=None, validate=validate.OneOf(STATE_LABELS))
    from_ = fields.AwareDateTime(load_default=None, data_key="from", attribute="from",
                                 metadata={"description": "Patrols still on at or after this instant"})
    to = fields.AwareDateTime(load_default=None, metadata={"description": "Patrols started before this instant"})


class PatrolSummarySchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    state = fields.String()
    started_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)
    distance_m = fields.Float()
    points_kept = fields.Integer()


PatrolPageSchema = page_of(PatrolSummarySchema, "PatrolPage")


class PatrolSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    state = fields.String(metadata={"description": ", ".join(f"{k} {v[0]}" for k, v in STATE_LABELS.items())})
    started_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)
    distance_m = fields.Float()
    points_kept = fields.Integer()
    track = fields.Dict(allow_none=True, metadata={"description": "GeoJSON MultiLineString of the kept points"})
    purged = fields.Boolean(metadata={"description": "Past the retention period: points, track and positions deleted"})
    checkins = fields.List(fields.Nested(lambda: CheckinSchema()))


def _location(place) -> dict | None:
    shape = from_db(place.geom)
    return to_geojson(shape) if shape is not None else None


class PlaceCreateSchema(Schema):
    name = Trimmed(required=True, validate=validate.Length(min=1, max=100))
    name_en = Trimmed(load_default=None, allow_none=True, validate=validate.Length(max=100))
    location = fields.Nested(PointSchema, required=True, metadata={"description": "GeoJSON Point, WGS84"})
    radius_m = fields.Float(required=True, allow_nan=False, validate=validate.Range(min=5, max=1000),
                            metadata={"description": "Check-ins count within this many metres (5-1,000)"})


class PlaceQueryArgsSchema(Schema):
    region_id = QueryId(load_default=None, metadata={"description": "Only the places under this region"})


class PlaceSchema(Schema):
    id = fields.Integer()
    region_id = fields.Integer(metadata={"description": "The grid cell the place lies in"})
    name = fields.String()
    name_en = fields.String(allow_none=True)
    location = fields.Function(_location, metadata={"type": "object", "nullable": True,
                                                    "description": "GeoJSON Point, WGS84"})
    radius_m = fields.Float()
    created_at = fields.DateTime()


class CheckinCreateSchema(Schema):
    client_uuid = fields.UUID(required=True, metadata={"description": "The phone's id for it: a retry is the same"})
    place_id = Id(required=True)
    t = fields.AwareDateTime(load_default=None, metadata={"description": "The phone's time (default: now)"})
    location = fields.Nested(PointSchema, required=True, metadata={"description": "The phone's position, WGS84"})
    accuracy_m = fields.Float(load_default=None, allow_nan=False, validate=validate.Range(0, 100_000))


class CheckinSchema(Schema):
    id = fields.Integer()
    place_id = fields.Integer()
    place_name = fields.String()
    place_name_en = fields.String(allow_none=True)
    t = fields.DateTime()
    distance_m = fields.Float(metadata={"description": "From the place's point"})
