"""The map (docs/MAP.md): vector tiles (regions coloured by their cases' lights, incidents
from zoom 13, clusters below, each tile one SQL statement) and the same regions and
incidents as GeoJSON features for a box, a page at a time.

Read-only. Everything is scoped: regions by ``access.within_scope``, incidents and their
counts by ``access.visible_incidents`` with the list's own filters
(``incident_queries.incident_query``), lights by ``incident_queries.light_expression``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sqlalchemy import Integer, String, case, cast, func, literal, or_, select, text
from sqlalchemy.orm import aliased

from geo.geometry import from_db, to_geojson
from server.domain.escalation import GREEN, RED, RUNNING_STATES, YELLOW, light
from server.domain.incidents import OPEN_STATES
from server.domain.maps import INCIDENTS_FROM_ZOOM, MAX_ZOOM, Basemap, basemap, region_level
from server.domain.permissions import Actor
from server.domain.territory import level_rank
from server.errors import BadRequest
from server.extensions import db
from server.models import Category, Incident, Region
from server.models._base import utcnow

from .access import visible_incidents, within_scope
from .analytic import analytic
from .incident_queries import NO_LIGHT, IncidentFilter, incident_query, light_condition, light_expression
from .sync import changed_rows

EXTENT = 4096  # tile units a side
BUFFER = 64  # tile units drawn beyond each edge, so that lines and labels join across tiles
CLUSTER_UNITS = 64  # a cluster bin's side in tile units: at most (4096 / 64)² = 4,096 bins a tile
# Web Mercator (EPSG:3857): the sphere's radius and half the world's width, in metres
EARTH_RADIUS = 6378137.0
HALF_WORLD = math.pi * EARTH_RADIUS
MVT_TYPE = "application/vnd.mapbox-vector-tile"


@dataclass(frozen=True)
class TileFilter:
    """What the incidents, clusters and region counts show (the list's filters by name)."""

    status_group: str = "open"  # open | closed | all
    category: str | None = None
    reported_from: object = None
    reported_to: object = None
    light: tuple[str, ...] | None = None

    def for_incidents(self) -> IncidentFilter:
        return IncidentFilter(status_group=self.status_group, category=self.category,
                              reported_from=self.reported_from, reported_to=self.reported_to,
                              light=list(self.light) if self.light else None)

    def for_counts(self) -> IncidentFilter:
        """Region counts: the open cases of the category and time range, whatever their light."""
        return IncidentFilter(status_group="open", category=self.category, reported_from=self.reported_from,
                              reported_to=self.reported_to)


def check_tile(z: int, x: int, y: int) -> None:
    """400 ``map.tile_out_of_range`` unless z/x/y names a tile of the XYZ scheme."""
    if not (0 <= z <= MAX_ZOOM and 0 <= x < 2 ** z and 0 <= y < 2 ** z):
        raise BadRequest("map.tile_out_of_range",
                         f"No tile {z}/{x}/{y}: z runs from 0 to {MAX_ZOOM}, x and y from 0 to 2^z − 1.")


def tile(actor: Actor, z: int, x: int, y: int, f: TileFilter) -> bytes:
    """The tile z/x/y as the actor sees it: its layers' MVT bytes, concatenated (empty when
    there is nothing to draw)."""
    check_tile(z, x, y)
    envelope = func.ST_TileEnvelope(z, x, y)
    bounds = func.ST_Transform(envelope, 4326)  # the same box in lon/lat: what the GiST indexes hold
    level = region_level(z)
    shown = _regions_in(actor, level, bounds).cte("shown")
    clusters_from_cells = z < INCIDENTS_FROM_ZOOM and f.status_group == "open"
    cells = _cells(shown, level, _tile_frame(z, x, y) if clusters_from_cells else None)
    per_cell = _per_cell(actor, cells, f)
    counted = _region_counts(shown, per_cell).cte("counted")
    simplified = func.ST_SimplifyPreserveTopology(shown.c.geom, _unit(z))  # below a tile unit nothing shows
    regions = select(counted, _tile_geom(simplified, envelope).label("geom")).join(shown, shown.c.id == counted.c.id)
    layers = [_layer(regions, "regions", "id"), _layer(_labels(shown, counted, z, x, y), "labels", "id")]
    if z >= INCIDENTS_FROM_ZOOM:
        layers.append(_layer(_incidents(actor, z, x, y, bounds, f), "incidents", "id"))
    elif clusters_from_cells:
        layers.append(_layer(_cell_clusters(per_cell, z, x, y, f), "clusters", None))
    else:
        layers.append(_layer(_clusters(actor, z, x, y, envelope, bounds, f), "clusters", None))
    body = layers[0]
    for layer in layers[1:]:
        body = body.op("||")(layer)
    with analytic():
        return bytes(db.session.scalar(select(body)) or b"")


def _layer(rows, name: str, id_column: str | None):
    """ST_AsMVT of the subquery ``rows`` (its ``geom`` column in tile units) as layer ``name``."""
    sub = rows.subquery(name)
    args = [sub.table_valued(), literal(name), literal(EXTENT), literal("geom")]
    if id_column:
        args.append(literal(id_column))
    return func.coalesce(select(func.ST_AsMVT(*args)).scalar_subquery(), literal(b""))


def _tile_geom(geom_4326, envelope):
    return func.ST_AsMVTGeom(func.ST_Transform(geom_4326, 3857), envelope, EXTENT, BUFFER, True)


def _regions_in(actor: Actor, level: str, bounds):
    """The live regions of ``level`` in the actor's scope whose geometry meets ``bounds``."""
    return (select(Region.id, Region.code, Region.name, Region.name_en, Region.level, Region.geom, Region.centre)
            .where(Region.level == level, Region.retired_at.is_(None), within_scope(actor, Region.path),
                   Region.geom.op("&&")(bounds)))


def _cells(shown, level: str, frame=None):
    """The grid cells whose cases are counted: those of the regions ``shown`` (of ``level``;
    ``owner`` is the shown region a cell counts toward) and, given a tile's ``frame``, those
    whose centre lies in the tile (``in_tile``: the clusters are drawn from them), each with
    its centre in Web Mercator metres (``east``, ``north``: of ``Region.centre``, a point inside it).
    Materialized: its expressions are worked out once a cell, not once a case of the cell."""
    if level == "grid":
        return _materialized(select(shown.c.id.label("cell_id"), shown.c.id.label("owner")), "cells")
    cell = aliased(Region)
    ancestor = cast(func.split_part(cell.path, "/", level_rank(level) + 2), Integer)  # its region of the level
    owned = ancestor.in_(select(shown.c.id))
    extent = select(func.ST_Extent(shown.c.geom)).scalar_subquery()
    if frame is None:
        return _materialized(select(cell.id.label("cell_id"), ancestor.label("owner")).where(
            cell.level == "grid", cell.geom.op("&&")(extent), owned), "cells")
    (west, north), size = frame
    east, north_ = _mercator(func.ST_X(cell.centre), func.ST_Y(cell.centre))
    in_tile = _in_frame(east, north_, (west, north), size)
    frame_box = func.ST_Transform(func.ST_MakeEnvelope(west, north - size, west + size, north, 3857), 4326)
    candidates = (select(cell.id.label("cell_id"), case((owned, ancestor)).label("owner"),
                         in_tile.label("in_tile"), east.label("east"), north_.label("north"))
                  .where(cell.level == "grid", or_(cell.geom.op("&&")(extent), cell.geom.op("&&")(frame_box)))
                  .subquery("candidates"))
    return _materialized(select(candidates).where(candidates.c.owner.is_not(None) | candidates.c.in_tile), "cells")


def _materialized(stmt, name: str):
    """``stmt`` as a CTE worked out once, whatever the planner would inline."""
    return stmt.cte(name).prefix_with("MATERIALIZED")


def _per_cell(actor: Actor, cells, f: TileFilter):
    """``cells`` (each row kept: its owner, and where the clusters need it, its place) with
    the open cases of the category and time range of ``f`` the actor may see, by light
    (``none``: open − green − yellow − red), counted from the index of open cases by cell
    (``ix_incidents_open_cell``) without reading the table. Cells without one are left out.
    Both layers read these rows as they are: no join of estimated sets for the planner to
    get wrong (a nested loop over two of them took seconds)."""
    kept = list(cells.c)
    counted = (select(*kept, func.count().label("open"),
                      *(func.count().filter(light_condition(light)).label(light) for light in (YELLOW, RED)),
                      func.count().filter(light_expression() == NO_LIGHT).label(NO_LIGHT))
               .join(Incident, Incident.region_id == cells.c.cell_id)  # cells in id order: the index read in order
               .where(incident_query(actor, f.for_counts()).whereclause)
               .group_by(*kept)
               .subquery("counted"))
    green = counted.c.open - counted.c[NO_LIGHT] - counted.c.yellow - counted.c.red
    return _materialized(select(*(counted.c[c.name] for c in kept), counted.c.open, green.label(GREEN),
                                counted.c.yellow, counted.c.red), "per_cell")


def _region_counts(shown, per_cell):
    """``shown`` with the open cases of each (the sums of its cells'), by light, and the worst light."""
    counts = (select(per_cell.c.owner.label("region_id"), func.sum(per_cell.c.open).label("open"),
                     func.sum(per_cell.c.yellow).label("yellow"), func.sum(per_cell.c.red).label("red"))
              .where(per_cell.c.owner.is_not(None))
              .group_by(per_cell.c.owner)
              .subquery("counts"))
    open_, yellow, red = (cast(func.coalesce(counts.c[name], 0), Integer) for name in ("open", "yellow", "red"))
    light = case((red > 0, RED), (yellow > 0, YELLOW), (open_ > 0, GREEN), else_=NO_LIGHT)  # the worst
    return (select(shown.c.id, shown.c.code, shown.c.name, shown.c.name_en, shown.c.level,
                   open_.label("open"), yellow.label("yellow"), red.label("red"), light.label("light"))
            .select_from(shown.outerjoin(counts, counts.c.region_id == shown.c.id)))


def _with_counts(actor: Actor, shown, level: str, f: TileFilter):
    """``shown`` (regions of ``level``) with their open cases by light and the worst light."""
    return _region_counts(shown, _per_cell(actor, _cells(shown, level), f))


def _labels(shown, counted, z: int, x: int, y: int):
    """A point for each region drawn (``counted``: with its counts) whose centre
    (``Region.centre``, inside it) lies in the tile, with its names and counts: where the page
    writes its name. One tile holds each."""
    east, north = _mercator(func.ST_X(shown.c.centre), func.ST_Y(shown.c.centre))
    (west, top), size = _tile_frame(z, x, y)
    column, row = func.floor((east - west) / size * EXTENT), func.floor((top - north) / size * EXTENT)
    placed = (select(counted.c.id, counted.c.name, counted.c.name_en, counted.c.level, counted.c.open,
                     counted.c.light, column.label("column"), row.label("row"))
              .join(shown, shown.c.id == counted.c.id)
              .subquery("placed"))
    return (select(placed.c.id, placed.c.name, placed.c.name_en, placed.c.level, placed.c.open, placed.c.light,
                   func.ST_MakePoint(placed.c.column, placed.c.row).label("geom"))
            .where(placed.c.column.between(0, EXTENT - 1), placed.c.row.between(0, EXTENT - 1)))


def _unit(z: int) -> float:
    """One tile unit at zoom ``z``, in degrees of longitude."""
    return 360.0 / (2 ** z * EXTENT)


def _category_codes():
    """SQL: the categories' codes by id, as one JSON object made once a statement: a tile's
    thousands of points look their code up in it (a join or a subquery a point cost the
    planner's guess: a nested loop, or a scan of the categories for each point)."""
    return select(func.jsonb_object_agg(Category.id, Category.code)).scalar_subquery()


def _incident_columns(actor: Actor, f: TileFilter, bounds):
    """The incidents the actor may see that pass ``f`` and lie in ``bounds``, with what a map
    shows of each (a tile: the category's code; the page knows its names)."""
    return (select(Incident.id, _category_codes().op("->>")(cast(Incident.category_id, String)).label("category"),
                   Incident.status, Incident.priority,
                   light_expression().label("light"), Incident.level)
            .where(incident_query(actor, f.for_incidents()).whereclause, Incident.geom.op("&&")(bounds),
                   Incident.region_id.in_(_cells_meeting(bounds))))


def _cells_meeting(bounds):
    """The grid cells (retired ones too) meeting ``bounds``: an incident lies in its cell, so
    these hold every incident in the box, and the open ones are read by cell from the index
    that holds their points (``ix_incidents_open_cell``), without the table."""
    return select(Region.id).where(Region.level == "grid", Region.geom.op("&&")(bounds))


def _incidents(actor: Actor, z: int, x: int, y: int, bounds, f: TileFilter):
    """The incidents in the tile, as points in tile units (placed by formula: they all lie in
    the tile, so there is nothing to clip)."""
    origin, size = _tile_frame(z, x, y)
    east, north = _mercator(func.ST_X(Incident.geom), func.ST_Y(Incident.geom))
    column = func.round((east - origin[0]) / size * EXTENT)
    row = func.round((origin[1] - north) / size * EXTENT)
    return (_incident_columns(actor, f, bounds).add_columns(func.ST_MakePoint(column, row).label("geom"))
            .where(_in_frame(east, north, origin, size)))


def _in_frame(east, north, origin, size):
    """SQL: a position (Web Mercator metres) lies in the tile, its west and north edges
    included, so that a point on an edge is in one tile (``&&`` rounds the box outwards)."""
    west, top = origin
    return (east >= west) & (east < west + size) & (north <= top) & (north > top - size)


def _tile_frame(z: int, x: int, y: int) -> tuple[tuple[float, float], float]:
    """The tile's north-west corner and side, in Web Mercator metres."""
    size = 2 * HALF_WORLD / 2 ** z
    return (-HALF_WORLD + x * size, HALF_WORLD - y * size), size


def _mercator(lon, lat):
    """SQL: the Web Mercator metres (east, north) of a longitude and latitude, by the
    projection's formula (PROJ for each point took most of a dense tile's time)."""
    east = func.radians(lon) * EARTH_RADIUS
    north = func.ln(func.tan(math.pi / 4 + func.radians(lat) / 2)) * EARTH_RADIUS
    return east, north


def _binned(z: int, x: int, y: int, east, north):
    """The cluster bin (column, row) of a position in Web Mercator metres, in the tile z/x/y."""
    (x0, y1), size = _tile_frame(z, x, y)
    step = size * CLUSTER_UNITS / EXTENT
    return func.floor((east - x0) / step), func.floor((y1 - north) / step)


def _cluster_point(east, north, z: int, x: int, y: int):
    """A cluster's position (Web Mercator metres) in tile units."""
    centre = func.ST_SetSRID(func.ST_MakePoint(east, north), 3857)
    return func.ST_AsMVTGeom(centre, func.ST_TileEnvelope(z, x, y), EXTENT, BUFFER, True)


def _cell_clusters(per_cell, z: int, x: int, y: int, f: TileFilter):
    """The open cases of the cells whose centre lies in the tile, binned into squares of
    CLUSTER_UNITS tile units: a count per non-empty bin, at the mean of its cells' centres
    weighted by their cases (the light filter picks which of a cell's counts are drawn)."""
    lights = f.light or ()
    counted = (sum((per_cell.c[light] for light in lights[1:]), per_cell.c[lights[0]]) if lights
               else per_cell.c.open)
    red = per_cell.c.red if not lights or RED in lights else literal(0)
    drawn = (select(per_cell.c.east, per_cell.c.north, counted.label("n"), red.label("red"))
             .where(per_cell.c.in_tile, counted > 0)
             .subquery("drawn"))
    column, row = _binned(z, x, y, drawn.c.east, drawn.c.north)
    total = func.sum(drawn.c.n)
    east, north = (func.sum(drawn.c[name] * drawn.c.n) / total for name in ("east", "north"))
    return (select(cast(total, Integer).label("count"), cast(total, Integer).label("open"),
                   cast(func.sum(drawn.c.red), Integer).label("red"),
                   _cluster_point(east, north, z, x, y).label("geom"))
            .group_by(column, row))


def _clusters(actor: Actor, z: int, x: int, y: int, envelope, bounds, f: TileFilter):
    """The incidents in the tile (any status) binned into squares of CLUSTER_UNITS tile
    units: a count per non-empty bin, at the mean position of its incidents."""
    east, north = _mercator(func.ST_X(Incident.geom), func.ST_Y(Incident.geom))
    binned = (select(east.label("east"), north.label("north"),
                     cast(Incident.status.in_(sorted(OPEN_STATES)), Integer).label("is_open"),
                     cast(light_condition(RED), Integer).label("is_red"))
              .where(incident_query(actor, f.for_incidents()).whereclause, Incident.geom.op("&&")(bounds),
                     _in_frame(east, north, *_tile_frame(z, x, y)))
              .subquery("binned"))
    column, row = _binned(z, x, y, binned.c.east, binned.c.north)
    return (select(func.count().label("count"), cast(func.sum(binned.c.is_open), Integer).label("open"),
                   cast(func.sum(binned.c.is_red), Integer).label("red"),
                   _cluster_point(func.avg(binned.c.east), func.avg(binned.c.north), z, x, y).label("geom"))
            .group_by(column, row))


def configured_basemap(config) -> Basemap | None:
    """The basemap of the settings (``MAP_BASEMAP_*``), or None; ValueError when they are wrong."""
    return basemap(config["MAP_BASEMAP_URL"], config["MAP_BASEMAP_CRS"], config["MAP_BASEMAP_ATTRIBUTION"])


# ---------------------------------------------------------------- GeoJSON features for a box

@dataclass
class FeaturePage:
    """Up to ``limit`` features after a cursor, and the cursor of the next page (None at the end)."""

    features: list[dict]
    next_cursor: int | None


def _box(bbox: tuple[float, float, float, float]):
    return func.ST_MakeEnvelope(*bbox, 4326)


def region_features(actor: Actor, bbox, zoom: int, level: str | None, f: TileFilter, after: int,
                    limit: int) -> FeaturePage:
    """The regions of ``level`` (else the zoom's) meeting ``bbox``, in id order after
    ``after``, geometry simplified to about a screen pixel at ``zoom``, with their counts."""
    level = level or region_level(zoom)
    shown = _regions_in(actor, level, _box(bbox)).where(Region.id > after).order_by(Region.id).limit(limit + 1) \
        .cte("shown")
    pixel = 360.0 / (2 ** zoom * 256)
    with analytic():
        rows = db.session.execute(_with_counts(actor, shown, level, f).add_columns(
            func.ST_SimplifyPreserveTopology(shown.c.geom, pixel).label("geom")).order_by(shown.c.id)).all()
    return _page(rows, limit)


def incident_features(actor: Actor, bbox, f: TileFilter, after: int, limit: int) -> FeaturePage:
    """The incidents in ``bbox`` the actor may see that pass ``f``, in id order after ``after``."""
    with analytic():
        rows = db.session.execute(_incident_columns(actor, f, _box(bbox)).add_columns(
            select(Category.name).where(Category.id == Incident.category_id).scalar_subquery()
            .label("category_name"), Incident.reported_at, Incident.due_at, Incident.geom.label("geom"))
            .where(Incident.id > after).order_by(Incident.id).limit(limit + 1)).all()
    return _page(rows, limit)


def _page(rows, limit: int) -> FeaturePage:
    more = len(rows) > limit
    rows = rows[:limit]
    features = [{"type": "Feature", "id": row.id, "geometry": to_geojson(from_db(row.geom)),
                 "properties": {k: _plain(v) for k, v in row._mapping.items() if k != "geom"}} for row in rows]
    return FeaturePage(features, rows[-1].id if more else None)


def _plain(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


# ---------------------------------------------------------------- changes, for open maps

CHANGES_LIMIT = 500
_CURSOR = re.compile(r"^([0-9]{1,19})\.([0-9]{1,19})$")


@dataclass
class Changes:
    """Incidents changed after a cursor (as point features with the tiles' properties), the
    cursor after them, and whether more are waiting."""

    features: list[dict]
    cursor: str
    has_more: bool


def _invalid_cursor() -> BadRequest:
    return BadRequest("map.invalid_cursor", "The cursor is not one this server gave; start again without it.")


def changes(actor: Actor, cursor: str | None, limit: int = CHANGES_LIMIT) -> Changes:
    """The incidents the actor may see that changed after ``cursor`` (none: from now on,
    nothing yet), oldest change first, as sync pages them (docs/SYNC.md): by the id of the
    transaction that wrote them, never skipping one that commits late. Every change is
    sent, whatever a map's filters: a case that leaves a filter must leave the map too."""
    xmin = int(db.session.scalar(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")))
    if cursor is None:
        return Changes([], f"{xmin}.0", False)
    match = _CURSOR.match(cursor)
    if not match or max(int(match.group(1)), int(match.group(2))) >= 2 ** 63:  # not one we gave
        raise _invalid_cursor()
    after = (int(match.group(1)), int(match.group(2)))
    rows = changed_rows(Incident, [visible_incidents(actor)], after, xmin, limit)
    now = utcnow()
    features = [_change(incident, now) for incident, _ in rows]
    if len(rows) == limit:
        return Changes(features, f"{rows[-1][1]}.{rows[-1][0].id}", True)
    return Changes(features, "{}.{}".format(*max(after, (xmin, 0))), False)


def _change(incident: Incident, now) -> dict:
    running = incident.status in RUNNING_STATES
    return {"type": "Feature", "id": incident.id, "geometry": to_geojson(from_db(incident.geom)), "properties": {
        "id": incident.id, "category": incident.category.code, "category_name": incident.category.name,
        "status": incident.status, "open": incident.status in OPEN_STATES, "priority": incident.priority,
        "light": light(now, incident.yellow_at, incident.due_at, running=running) or NO_LIGHT,
        "level": incident.level, "region_id": incident.region_id,
        "updated_at": incident.updated_at.isoformat() if incident.updated_at else None}}
