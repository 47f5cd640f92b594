"""Territory use cases on single regions: read, create, rename/recode, retire, locate,
coverage. (Bulk writes — importing a level, generating cells — are in territory_bulk.)

Set questions (which cell holds this point, what overlaps what) are asked of PostGIS
in one statement each; geometry crosses into Python only through ``geo.geometry``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import shapely
from sqlalchemy import Select, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import undefer

from geo import crs as geo_crs
from geo.geometry import GeometryError, geodesic_area_m2, parse_point, parse_polygonal, to_db
from server.domain.permissions import REGION_ADD_CHILDREN, REGION_MANAGE, REGION_READ, Actor
from server.domain.territory import child_path, parent_level
from server.errors import Conflict, InvalidInput, NotFound
from server.extensions import db
from server.models import Region
from server.models._base import utcnow

from .access import TERRITORY, authorize, require, scope_path, within_scope
from .pagination import Page, paginate
from .versioning import commit_edit


def region_not_found() -> NotFound:
    return NotFound("region.not_found", "No such region.")


def _geometry_input(obj, *, field_name: str = "geometry"):
    """A client's polygon, refused (not repaired) when invalid: the client should fix it."""
    try:
        return parse_polygonal(obj, repair=False)[0]
    except GeometryError as exc:
        raise InvalidInput(exc.code, exc.message, errors={field_name: [exc.message]}) from None


# ---------------------------------------------------------------- read

def get_region(actor: Actor, region_id: int) -> Region:
    """One region the actor may see. Errors: region.not_found."""
    region = db.session.get(Region, region_id)
    authorize(actor, REGION_READ, region, not_found=region_not_found())
    return region


@dataclass
class RegionFilter:
    level: str | None = None
    parent_id: int | None = None
    within_id: int | None = None  # the whole subtree of this region
    code: str | None = None
    q: str | None = None  # name or code contains
    bbox: tuple[float, float, float, float] | None = None  # lon/lat, EPSG:4326
    include_retired: bool = False


def region_query(actor: Actor, f: RegionFilter, *, with_geometry: bool = False) -> Select:
    """The scoped, filtered, ordered SELECT of regions (ordered by level, then code)."""
    stmt = select(Region).where(within_scope(actor, Region.path))
    if with_geometry:
        stmt = stmt.options(undefer(Region.geom))
    if not f.include_retired:
        stmt = stmt.where(Region.retired_at.is_(None))
    if f.level:
        stmt = stmt.where(Region.level == f.level)
    if f.parent_id is not None:
        stmt = stmt.where(Region.parent_id == f.parent_id)
    if f.within_id is not None:
        subtree = select(Region.path).where(Region.id == f.within_id).scalar_subquery()
        stmt = stmt.where(Region.path.startswith(subtree))
    if f.code:
        stmt = stmt.where(Region.code == f.code)
    if f.q:
        pattern = "%" + f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(Region.name.ilike(pattern) | Region.code.ilike(pattern) | Region.name_en.ilike(pattern))
    if f.bbox:
        stmt = stmt.where(Region.geom.intersects(text("ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)").bindparams(
            x0=f.bbox[0], y0=f.bbox[1], x1=f.bbox[2], y1=f.bbox[3])))
    level_order = text("array_position(ARRAY['city','district','street','community','grid']::varchar[], regions.level)")
    return stmt.order_by(level_order, Region.code)


def list_regions(actor: Actor, f: RegionFilter, page: int, page_size: int, *, with_geometry: bool = False) -> Page:
    """A page of the regions the actor may see (geometry loaded only when asked for)."""
    return paginate(region_query(actor, f, with_geometry=with_geometry), page, page_size)


# ---------------------------------------------------------------- create / change / retire

def _live_parent(actor: Actor, parent_id: int, level: str) -> Region:
    parent = db.session.get(Region, parent_id)
    authorize(actor, REGION_ADD_CHILDREN, parent,
              not_found=InvalidInput("region.invalid_parent", "No such parent region.",
                                     errors={"parent_id": ["No such region."]}))
    if parent.is_retired:
        raise InvalidInput("region.invalid_parent", "The parent region is retired.", errors={"parent_id": ["Retired."]})
    if parent.level != parent_level(level):
        raise InvalidInput("region.invalid_parent", f"A {level} belongs under a {parent_level(level)}, not a {parent.level}.",
                           errors={"parent_id": [f"Must be a {parent_level(level)}."]})
    return parent


# Parts of a new child outside its parent smaller than this are digitising noise.
OUTSIDE_PARENT_TOLERANCE_M2 = 1.0


def _refuse_outside(geom, parent: Region) -> None:
    """A region drawn by hand must lie inside its parent: a cell spilling into another
    district would take over points there (locate) and cross the actor's scope."""
    outside_m2 = db.session.scalar(text(
        "SELECT ST_Area(ST_Difference(ST_GeomFromWKB(:wkb, 4326), geom)::geography) FROM regions WHERE id = :id"
    ), {"wkb": shapely.to_wkb(geom), "id": parent.id})
    if outside_m2 > OUTSIDE_PARENT_TOLERANCE_M2:
        raise InvalidInput("region.outside_parent", f"{outside_m2:,.0f} m² of the region lie outside its parent.",
                           errors={"geometry": ["Must lie inside the parent region."]})


def _code_free(code: str, field_name: str = "code") -> None:
    if db.session.scalar(select(Region.id).where(Region.code == code)) is not None:
        raise Conflict("region.code_taken", f"The code {code} is already used.", errors={field_name: ["Already used."]})


def create_region(actor: Actor, data: dict) -> Region:
    """Create one region under a parent of the level above (a city has no parent).

    Errors: region.invalid_parent, region.outside_parent, region.code_taken, geometry.*,
    auth.forbidden.
    """
    level = data["level"]
    parent = None
    if level == "city":
        if data.get("parent_id") is not None:
            raise InvalidInput("region.invalid_parent", "A city has no parent.", errors={"parent_id": ["Must be empty."]})
        require(actor, REGION_ADD_CHILDREN, TERRITORY)  # a city is a child of the territory
    elif data.get("parent_id") is None:
        raise InvalidInput("region.invalid_parent", f"A {level} needs a parent {parent_level(level)}.",
                           errors={"parent_id": ["Required."]})
    else:
        parent = _live_parent(actor, data["parent_id"], level)
    geom = _geometry_input(data["geometry"])
    if parent is not None:
        _refuse_outside(geom, parent)
    _code_free(data["code"])
    region = Region(code=data["code"], name=data["name"], name_en=data.get("name_en"), level=level,
                    parent_id=parent.id if parent else None, geom=to_db(geom), area_m2=geodesic_area_m2(geom),
                    properties=data.get("properties") or {})
    db.session.add(region)
    try:
        db.session.flush()
    except IntegrityError:  # a concurrent create took the code
        db.session.rollback()
        raise Conflict("region.code_taken", f"The code {data['code']} is already used.",
                       errors={"code": ["Already used."]}) from None
    region.path = child_path(parent.path if parent else None, region.id)
    db.session.commit()
    return region


def update_region(actor: Actor, region_id: int, changes: dict) -> Region:
    """Rename or recode a region (more- or less-specific names, a new code).

    ``changes["version"]`` must be the version the client read. Errors:
    region.not_found, auth.forbidden, region.version_conflict, region.code_taken.
    """
    region = db.session.get(Region, region_id)
    authorize(actor, REGION_MANAGE, region, not_found=region_not_found())
    if "code" in changes and changes["code"] != region.code:
        _code_free(changes["code"])
    try:
        commit_edit(region, changes, ("code", "name", "name_en"),
                    Conflict("region.version_conflict", "The region was changed by someone else; reload it."))
    except IntegrityError:  # a concurrent edit took the code between our check and our write
        raise Conflict("region.code_taken", "That code is already used.", errors={"code": ["Already used."]}) from None
    return region


def retire_region(actor: Actor, region_id: int, *, cascade: bool) -> Region:
    """Retire a region (撤销): it stays for history but leaves lists, maps and locate.

    Refused while live children remain, unless ``cascade`` retires the whole subtree.
    Grid workers stop covering the retired cells. Errors: region.not_found,
    auth.forbidden, region.has_live_children.
    """
    region = db.session.get(Region, region_id)
    authorize(actor, REGION_MANAGE, region, not_found=region_not_found())
    if region.is_retired:
        return region
    live_below = db.session.scalar(text(
        "SELECT count(*) FROM regions WHERE path LIKE :p || '%' AND id <> :id AND retired_at IS NULL"
    ), {"p": region.path, "id": region.id})
    if live_below and not cascade:
        raise Conflict("region.has_live_children",
                       f"{live_below} live regions lie inside; retire them first or ask for cascade.")
    db.session.execute(text(
        "UPDATE regions SET retired_at = now(), version = version + 1, updated_at = now() "
        "WHERE path LIKE :p || '%' AND retired_at IS NULL"), {"p": region.path})
    release_retired_cells()
    db.session.commit()
    db.session.refresh(region)
    return region


# ---------------------------------------------------------------- locate

@dataclass
class Location:
    cell: dict
    chain: list[dict]  # city first, the cell last
    lon: float  # WGS84 actually looked up
    lat: float


# The live cell at a point inside a scope; a point on a border shared by several cells
# belongs to the one with the smallest code.
def cell_at_point_sql(lon: str = ":lon", lat: str = ":lat", scope: str | None = ":scope") -> str:
    """The SQL selecting the live cell (``id``, ``path``) at a point, given as SQL expressions.

    One predicate and one border rule (the smallest code wins) for every caller; ``scope``
    None leaves out the subtree condition.
    """
    in_scope = f"AND path LIKE {scope} || '%'" if scope else ""
    return f"""
    SELECT id, path FROM regions
    WHERE level = 'grid' AND retired_at IS NULL
      AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint({lon}, {lat}), 4326))
      {in_scope}
    ORDER BY code
    LIMIT 1
"""


_CELL_AT_POINT = cell_at_point_sql()
_LOCATE_SQL = text(f"""
WITH cell AS ({_CELL_AT_POINT})
SELECT r.id, r.code, r.name, r.name_en, r.level
FROM cell JOIN regions r ON r.id = ANY (string_to_array(trim(BOTH '/' FROM cell.path), '/')::int[])
ORDER BY length(r.path)
""")
# The regions of a path from the city down, as region references (id, code, names, level).
_CHAIN_OF = """
    SELECT coalesce(json_agg(json_build_object('id', r.id, 'code', r.code, 'name', r.name,
                                               'name_en', r.name_en, 'level', r.level)
                             ORDER BY length(r.path)), '[]')
    FROM regions r WHERE r.id = ANY (string_to_array(trim(BOTH '/' FROM {path}), '/')::int[])
"""
_CHAIN_SQL = text(f"SELECT ({_CHAIN_OF.format(path=':path')}) AS chain")
_CELL_SQL = text(f"""
SELECT cell.id, cell.path,
       ARRAY(SELECT user_id FROM grid_assignments WHERE region_id = cell.id) AS workers,
       ({_CHAIN_OF.format(path='cell.path')}) AS chain
FROM ({_CELL_AT_POINT}) cell
""")


def cell_at(lon: float, lat: float, scope: str):
    """The live grid cell at a WGS84 point inside the subtree ``scope``, or None: its
    ``id``, ``path``, ``workers`` (the user ids assigned to it, primary or backup) and
    ``chain`` (as ``chain_of``)."""
    return db.session.execute(_CELL_SQL, {"lon": lon, "lat": lat, "scope": scope}).one_or_none()


def chain_of(path: str) -> list[dict]:
    """The regions on ``path`` from the city down, as dicts (id, code, name, name_en, level)."""
    return db.session.execute(_CHAIN_SQL, {"path": path}).scalar_one()


def locate(actor: Actor, lon: float, lat: float, crs: str = "wgs84") -> Location:
    """Find the grid cell at a point and its chain up to the city (定位).

    ``lon``/``lat`` are degrees in ``crs`` (wgs84, gcj02 or bd09); they are converted
    to WGS84 first. Only live cells inside the actor's scope are candidates. A point on
    a border shared by several cells belongs to the one with the smallest code.
    Errors: geometry.out_of_range, region.no_cell_at_point (404).
    """
    try:
        parse_point(lon, lat)
    except GeometryError as exc:
        raise InvalidInput(exc.code, exc.message) from None
    if crs != "wgs84":
        lon, lat = geo_crs.to_wgs84(lon, lat, crs)
    rows = db.session.execute(_LOCATE_SQL, {"lon": lon, "lat": lat, "scope": scope_path(actor)}).all()
    if not rows:
        raise NotFound("region.no_cell_at_point", "No grid cell you can see covers this point.")
    chain = [dict(row._mapping) for row in rows]
    return Location(cell=chain[-1], chain=chain, lon=lon, lat=lat)


def release_retired_cells() -> int:
    """Grid workers no longer cover retired cells (AB岗 is current duty, not history)."""
    return db.session.execute(text(
        "DELETE FROM grid_assignments a USING regions r WHERE r.id = a.region_id AND r.retired_at IS NOT NULL"
    )).rowcount


# ---------------------------------------------------------------- coverage

def coverage(actor: Actor, region_id: int, min_area_m2: float = 1.0) -> dict:
    """Check that a region's live children tile it (覆盖检查), as a GeoJSON report.

    Features, each with ``properties.kind``: ``outside`` (the part of a child outside the
    region), ``overlap`` (the shared part of two siblings), ``gap`` (part of the region
    no child covers). Pieces under ``min_area_m2`` (geodesic m²) are ignored as noise.
    Errors: region.not_found.
    """
    region = get_region(actor, region_id)
    params = {"id": region.id, "min": min_area_m2}
    rows = db.session.execute(text("""
        WITH parent AS (SELECT geom FROM regions WHERE id = :id),
        kids AS (SELECT id, code, geom FROM regions WHERE parent_id = :id AND retired_at IS NULL),
        pieces AS (
            SELECT 'outside' AS kind, ARRAY[k.code] AS codes,
                   ST_CollectionExtract(ST_Difference(k.geom, parent.geom), 3) AS geom
            FROM kids k, parent WHERE NOT ST_CoveredBy(k.geom, parent.geom)
          UNION ALL
            SELECT 'overlap', ARRAY[a.code, b.code], ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 3)
            FROM kids a JOIN kids b ON a.code < b.code AND ST_Intersects(a.geom, b.geom)
            WHERE ST_Relate(a.geom, b.geom, '2********')
          UNION ALL
            SELECT 'gap', ARRAY[]::text[], (ST_Dump(ST_CollectionExtract(
                ST_Difference(parent.geom, COALESCE((SELECT ST_Union(geom) FROM kids), 'SRID=4326;POLYGON EMPTY'::geometry)), 3))).geom
            FROM parent
        )
        SELECT kind, codes, ST_AsGeoJSON(geom, 7) AS geojson, ST_Area(geom::geography) AS area_m2
        FROM pieces WHERE NOT ST_IsEmpty(geom) AND ST_Area(geom::geography) >= :min
        ORDER BY kind, codes
    """), params).all()
    children = db.session.scalar(text("SELECT count(*) FROM regions WHERE parent_id = :id AND retired_at IS NULL"),
                                 {"id": region.id})
    features = [{"type": "Feature", "geometry": json.loads(r.geojson),
                 "properties": {"kind": r.kind, "codes": list(r.codes), "area_m2": round(r.area_m2, 1)}} for r in rows]
    summary = {kind: sum(1 for f in features if f["properties"]["kind"] == kind) for kind in ("outside", "overlap", "gap")}
    return {"type": "FeatureCollection", "features": features,
            "region": {"id": region.id, "code": region.code, "level": region.level, "children": children},
            "summary": {**summary, "ok": not features, "min_area_m2": min_area_m2},
            "checked_at": utcnow().isoformat()}

