"""The map's query arguments (docs/MAP.md)."""
from marshmallow import Schema, fields, validate

from server.domain.escalation import LIGHTS
from server.domain.maps import BASEMAP_CRS, MAX_FEATURES, MAX_ZOOM
from server.domain.territory import LEVELS

from .common import MAX_ID
from .regions import BBoxField


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
    v = fields.String(load_default=None, validate=validate.Length(max=32),
                      metadata={"description": "Ignored: a page changes it to get a fresh copy past caches"})


class _BoxPageArgs(TileQueryArgsSchema):
    bbox = BBoxField(required=True, metadata={"description": "minLon,minLat,maxLon,maxLat (WGS84)"})
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=MAX_FEATURES),
                           metadata={"description": f"Features a page (at most {MAX_FEATURES})"})
    cursor = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_ID),
                            metadata={"description": "The next_cursor of the page before (0: the first page)"})


class MapRegionsQueryArgsSchema(_BoxPageArgs):
    zoom = fields.Integer(required=True, validate=validate.Range(min=0, max=MAX_ZOOM),
                          metadata={"description": "The map's zoom: geometry simplified to about a pixel, and the "
                                                   "level drawn there unless level is given"})
    level = fields.String(validate=validate.OneOf(LEVELS), load_default=None)


class MapIncidentsQueryArgsSchema(_BoxPageArgs):
    pass


class MapFeatureCollectionSchema(Schema):
    """A GeoJSON FeatureCollection (RFC 7946) of one page."""

    type = fields.Constant("FeatureCollection")
    features = fields.List(fields.Dict())
    numberReturned = fields.Integer()
    next_cursor = fields.Integer(allow_none=True, metadata={"description": "Pass as cursor for the next page; "
                                                                           "null on the last"})


class MapChangesSchema(Schema):
    """The incidents changed since a cursor, as a GeoJSON FeatureCollection."""

    type = fields.Constant("FeatureCollection")
    features = fields.List(fields.Dict())
    cursor = fields.String(metadata={"description": "Pass as cursor next time"})
    has_more = fields.Boolean(metadata={"description": "More changes wait: call again at once"})


class MapChangesQueryArgsSchema(Schema):
    cursor = fields.String(load_default=None, validate=validate.Length(max=40),
                           metadata={"description": "The cursor of the last answer or event (none: from now on)"})


class BasemapSchema(Schema):
    url = fields.String(metadata={"description": "XYZ raster tile URL template ({z}, {x}, {y})"})
    crs = fields.String(metadata={"enum": list(BASEMAP_CRS),
                                  "description": "gcj02: the tiles are offset (Chinese providers); the page "
                                                 "shifts its layers to meet them"})
    attribution = fields.String()


class MapConfigSchema(Schema):
    basemap = fields.Nested(BasemapSchema, allow_none=True, metadata={"description": "null: no basemap"})
    incidents_from_zoom = fields.Integer(metadata={"description": "Single incidents from this zoom, clusters below"})
    max_zoom = fields.Integer()
