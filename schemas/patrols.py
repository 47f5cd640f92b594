"""Patrols (docs/FIELD.md): start, end, a batch of GPS points, the answer."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

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


class PatrolSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    state = fields.String(metadata={"description": ", ".join(f"{k} {v[0]}" for k, v in STATE_LABELS.items())})
    started_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)
    distance_m = fields.Float()
    points_kept = fields.Integer()
    track = fields.Dict(allow_none=True, metadata={"description": "GeoJSON MultiLineString of the kept points"})
