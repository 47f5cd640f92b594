"""The map: vector tiles of regions and incidents for street offices (docs/MAP.md)."""
from __future__ import annotations

import hashlib
import json
import threading
import time

from flask import Response, current_app, request, stream_with_context

from schemas.map import (
    MapChangesQueryArgsSchema,
    MapConfigSchema,
    MapChangesSchema,
    MapFeatureCollectionSchema,
    MapIncidentsQueryArgsSchema,
    MapRegionsQueryArgsSchema,
    TileQueryArgsSchema,
)
from server.auth import login_required
from server.domain.maps import INCIDENTS_FROM_ZOOM, MAX_ZOOM
from server.errors import Unavailable
from server.extensions import db
from server.services import maps

from .common import GEOJSON, Blueprint, errors, geojson_response

blp = Blueprint("map", __name__, url_prefix="/map",
                description="Map views: vector tiles and GeoJSON of regions and incidents")


@blp.get("/config")
@login_required
@blp.response(200, MapConfigSchema)
@errors(blp, 401)
def map_config(actor):
    """What a map page needs to know: the basemap, if one is configured, and the zoom rules."""
    return {"basemap": maps.configured_basemap(current_app.config), "incidents_from_zoom": INCIDENTS_FROM_ZOOM,
            "max_zoom": MAX_ZOOM}


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


def _changes_body(page: maps.Changes) -> dict:
    return {"type": "FeatureCollection", "features": page.features, "cursor": page.cursor,
            "has_more": page.has_more}


@blp.get("/changes")
@login_required
@blp.arguments(MapChangesQueryArgsSchema, location="query")
@blp.response(200, MapChangesSchema, content_type=GEOJSON)
@errors(blp, 400, 401, 422)
def map_changes(actor, args):
    """Incidents changed since ``cursor`` (without one: the cursor of now), for a map that
    polls: call again with the answer's ``cursor``, at once while ``has_more``."""
    return geojson_response(_changes_body(maps.changes(actor, args["cursor"])))


HEARTBEAT_SECONDS = 15


def _stream_slots() -> threading.BoundedSemaphore:
    """The streams this process may serve at once (each holds a thread while it lasts)."""
    most = current_app.config["MAP_STREAMS_PER_PROCESS"]
    return current_app.extensions.setdefault(("map_streams", most), threading.BoundedSemaphore(most))


@blp.get("/stream")
@login_required
@blp.arguments(MapChangesQueryArgsSchema, location="query")
@blp.response(200, content_type="text/event-stream",
              description="Server-sent events: `ready` with the cursor, then `incidents` (a FeatureCollection of "
                          "the incidents changed, its cursor as the event id) as they change; the stream ends "
                          "after a while and the browser reconnects with Last-Event-ID")
@errors(blp, 400, 401, 422, 503)
def map_stream(actor, args):
    """Incident changes in your scope as they happen, for open maps (EventSource). Resumes
    from ``Last-Event-ID`` (or ``cursor``); 503 ``map.streams_busy`` when this server is
    serving as many streams as it may: poll ``/map/changes`` instead."""
    first = maps.changes(actor, request.headers.get("Last-Event-ID") or args["cursor"])  # a bad cursor: 400 now
    slots = _stream_slots()
    if not slots.acquire(blocking=False):
        raise Unavailable("map.streams_busy", "This server is serving as many map streams as it may; poll "
                                              "/api/v1/map/changes instead, or try again shortly.",
                          headers={"Retry-After": "5"})
    db.session.remove()  # no database connection held while the stream waits
    config = current_app.config
    lasts, every = config["MAP_STREAM_SECONDS"], config["MAP_STREAM_POLL_SECONDS"]

    def events():
        cursor, more = first.cursor, first.has_more
        yield f"retry: 2000\nid: {cursor}\nevent: ready\ndata: {json.dumps({'cursor': cursor})}\n\n"
        if first.features:
            yield _event(first)
        end, quiet_since = time.monotonic() + lasts, time.monotonic()
        while time.monotonic() < end:
            if not more:  # caught up: wait before looking again
                time.sleep(every)
            page = maps.changes(actor, cursor)
            db.session.remove()
            cursor, more = page.cursor, page.has_more
            if page.features:
                quiet_since = time.monotonic()
                yield _event(page)
            elif time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"

    response = Response(stream_with_context(events()), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    # the server closes every response, even one whose client left before it was read
    response.call_on_close(slots.release)
    return response


def _event(page: maps.Changes) -> str:
    body = json.dumps(_changes_body(page), ensure_ascii=False, separators=(",", ":"))
    return f"id: {page.cursor}\nevent: incidents\ndata: {body}\n\n"
