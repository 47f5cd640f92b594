"""The map's query arguments (docs/MAP.md)."""
from marshmallow import Schema, fields, validate

from server.domain.escalation import LIGHTS


class TileQueryArgsSchema(Schema):
    """What a tile's incidents, clusters and region counts show: the incident list's filters
    by the same names."""

    status_group = fields.String(validate=validate.OneOf(("open", "closed", "all")), load_default="open")
    category = fields.String(validate=validate.Length(max=32), load_default=None,
                             metadata={"description": "A category code; a group code takes all its leaves"})
    reported_from = fields.AwareDateTime(load_default=None)
    reported_to = fields.AwareDateTime(load_default=None)
    light = fields.List(fields.String(validate=validate.OneOf(LIGHTS)), load_default=None,
                        metadata={"description": "green, yellow or red (repeat the parameter for several)"})
