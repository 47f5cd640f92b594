"""The map: vector tiles of regions and incidents for street offices (docs/MAP.md)."""
from __future__ import annotations

import hashlib

from flask import current_app, request

from schemas.map import TileQueryArgsSchema
from server.auth import login_required
from server.services import map_tiles

from .common import Blueprint, errors

blp = Blueprint("map", __name__, url_prefix="/map", description="Map views: vector tiles of regions and incidents")


@blp.get("/tiles/<int(signed=True):z>/<int(signed=True):x>/<int(signed=True):y>.mvt")
@login_required
@blp.arguments(TileQueryArgsSchema, location="query")
@blp.response(200, content_type=map_tiles.MVT_TYPE,
              description="A Mapbox Vector Tile (EPSG:3857, extent 4096): layers regions, incidents (z ≥ 13) "
                          "or clusters (z < 13); empty when there is nothing to draw")
@errors(blp, 400, 401, 422)
def get_tile(actor, args, z, x, y):
    """A vector tile of what the actor may see: regions coloured by their cases' lights,
    incidents or their clusters, filtered as the incident list is."""
    data = map_tiles.tile(actor, z, x, y, map_tiles.TileFilter(
        status_group=args["status_group"], category=args["category"], reported_from=args["reported_from"],
        reported_to=args["reported_to"], light=tuple(args["light"]) if args["light"] else None))
    response = current_app.response_class(data, mimetype=map_tiles.MVT_TYPE)
    response.set_etag(hashlib.sha256(data).hexdigest()[:32])
    response.headers["Cache-Control"] = "private, max-age=15"
    return response.make_conditional(request)
