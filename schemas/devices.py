"""Phones registered for push notifications."""
from marshmallow import Schema, fields, validate

from server.domain.people import DEVICE_PLATFORMS, DEVICE_TOKEN_KINDS


class DeviceSchema(Schema):
    id = fields.Integer(dump_only=True)
    token_kind = fields.String(dump_only=True)
    platform = fields.String(dump_only=True)
    app_version = fields.String(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    last_seen_at = fields.DateTime(dump_only=True)
    disabled_at = fields.DateTime(dump_only=True, allow_none=True)
    disabled_reason = fields.String(dump_only=True, allow_none=True)


class DeviceCreateSchema(Schema):
    token = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=4096),
                          metadata={"description": "FCM registration token or Firebase installation id"})
    token_kind = fields.String(load_default="registration_token", validate=validate.OneOf(DEVICE_TOKEN_KINDS))
    platform = fields.String(required=True, validate=validate.OneOf(DEVICE_PLATFORMS))
    app_version = fields.String(allow_none=True, load_default=None, validate=validate.Length(min=1, max=64))


class DeviceTokenSchema(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=4096),
                          metadata={"description": "The push token the phone registered"})
