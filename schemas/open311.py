"""The staff side of the citizens' channel (docs/OPEN311.md): client keys, the queue of
requests that came with an address only."""
from marshmallow import Schema, fields, validate

from geo.crs import SUPPORTED_CRS
from schemas.categories import CategoryRefSchema
from schemas.common import PageSchema
from schemas.incidents import PointSchema
from schemas.users import Trimmed


class ClientCreateSchema(Schema):
    name = Trimmed(required=True, validate=validate.Length(max=100), metadata={"description": "The app, e.g. 随手拍"})
    contact = Trimmed(load_default=None, allow_none=True, validate=validate.Length(max=200),
                      metadata={"description": "Who maintains it (e-mail, phone)"})
    rate_per_minute = fields.Integer(load_default=60, strict=True, validate=validate.Range(min=1, max=100_000),
                                     metadata={"description": "Keyed calls a minute before 429"})


class ClientSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    contact = fields.String(allow_none=True)
    key_prefix = fields.String(metadata={"description": "The key's first characters, to recognise it"})
    rate_per_minute = fields.Integer()
    issued_at = fields.DateTime()
    revoked_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)


class ClientListItemSchema(ClientSchema):
    calls_last_hour = fields.Integer()


class IssuedClientSchema(ClientSchema):
    api_key = fields.String(metadata={"description": "The key, shown this once: only its SHA-256 is kept"})


class UnlocatedSchema(Schema):
    id = fields.Integer()
    received_at = fields.DateTime()
    client = fields.String(metadata={"description": "The client app it came through"})
    category = fields.Nested(CategoryRefSchema)
    address_string = fields.String(allow_none=True, metadata={"description": "The address as the citizen wrote it"})
    description = fields.String(allow_none=True)
    attributes = fields.Dict()
    media_url = fields.String(allow_none=True)
    has_contact = fields.Boolean(metadata={"description": "The citizen left a name or phone (shown on the case)"})
    incident_id = fields.Integer(allow_none=True, metadata={"description": "The case made when it was placed"})
    dismissed_at = fields.DateTime(allow_none=True)


class UnlocatedPageSchema(PageSchema):
    items = fields.List(fields.Nested(UnlocatedSchema))


class UnlocatedPlaceSchema(Schema):
    location = fields.Nested(PointSchema, required=True, metadata={"description": "[longitude, latitude] in `crs`"})
    crs = fields.String(load_default="wgs84", validate=validate.OneOf(SUPPORTED_CRS),
                        metadata={"description": "wgs84, or gcj02/bd09 when placed on a Chinese basemap"})
    address = Trimmed(load_default=None, allow_none=True, validate=validate.Length(max=300),
                      metadata={"description": "The address as placed (default: the citizen's)"})


class DismissSchema(Schema):
    reason = Trimmed(required=True, validate=validate.Length(max=500))
