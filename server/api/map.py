"""The map: vector tiles of regions and incidents for street offices (docs/MAP.md)."""
from __future__ import annotations

import hashlib

from flask import current_app, request

from schemas.map import (
    MapFeatureCollectionSchema,
    MapIncidentsQueryArgsSchema,
    MapRegionsQueryArgsSchema,
    TileQueryArgsSchema,
)
from server.auth import login_required
from server.services import maps

from .common import GEOJSON, Blueprint, errors, geojson_response

blp = Blueprint("map", __name__, url_prefix="/map",
                description="Map views: vector tiles and GeoJSON of regions and incidents")


@blp.get("/tiles/<int(signed=True):z>/<int(signed=True):x>/<int(signed=True):y>.mvt")
@login_required
@blp.arguments(TileQueryArgsSchema, location="query")
@blp.response(200, content_type=maps.MVT_TYPE,
              description="A Mapbox Vector Tile (EPSG:3857, extent 4096): layers regions, incidents (z ≥ 13) "
                          "or clusters (z < 13); empty when there is nothing to draw")
@errors(blp, 400, 401, 422)
def get_tile(actor, args, z, x, y):
    """A vector tile of what the actor may see: regions coloured by their cases' lights,
    incidents or their clusters, filtered as the incident list is."""
    data = maps.tile(actor, z, x, y, _filter(args))
    response = current_app.response_class(data, mimetype=maps.MVT_TYPE)
    response.set_etag(hashlib.sha256(data).hexdigest()[:32])
    response.headers["Cache-Control"] = "private, max-age=15"
    return response.make_conditional(request)


def _filter(args: dict) -> maps.TileFilter:
    return maps.TileFilter(status_group=args["status_group"], category=args["category"],
                           reported_from=args["reported_from"], reported_to=args["reported_to"],
                           light=tuple(args["light"]) if args["light"] else None)


def _collection(page: maps.FeaturePage):
    return geojson_response({"type": "FeatureCollection", "features": page.features,
                             "numberReturned": len(page.features), "next_cursor": page.next_cursor})


@blp.get("/regions")
@login_required
@blp.arguments(MapRegionsQueryArgsSchema, location="query")
@blp.response(200, MapFeatureCollectionSchema, content_type=GEOJSON)
@errors(blp, 401, 422)
def map_regions(actor, args):
    """The regions of a box (the zoom's level, or ``level``) as GeoJSON, with their open,
    yellow and red counts and worst light, a page at a time."""
    return _collection(maps.region_features(actor, args["bbox"], args["zoom"], args["level"], _filter(args),
                                            args["cursor"], args["limit"]))


@blp.get("/incidents")
@login_required
@blp.arguments(MapIncidentsQueryArgsSchema, location="query")
@blp.response(200, MapFeatureCollectionSchema, content_type=GEOJSON)
@errors(blp, 401, 422)
def map_incidents(actor, args):
    """The incidents of a box as GeoJSON points, filtered as the incident list is, a page at a time."""
    return _collection(maps.incident_features(actor, args["bbox"], _filter(args), args["cursor"], args["limit"]))
