"""Territory use cases: read, create, rename/recode, retire, locate, import, grids, coverage.

Set questions (which cell holds this point, which parent overlaps most, what overlaps
what) are asked of PostGIS in one statement each; geometry crosses into Python only
through ``geo.geometry``. Bulk writes (import, grid generation) go through one staging
table and one upsert, so both share the same rules: upsert by code, a level never
changes, paths are rewritten for moved subtrees, nothing is ever hard-deleted.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import shapely
from sqlalchemy import Select, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import undefer

from geo import crs as geo_crs
from geo.geometry import GeometryError, geodesic_area_m2, parse_point, parse_polygonal, to_db
from geo.grids import generate_grid, grid_code
from server.domain.permissions import REGION_ADD_CHILDREN, REGION_IMPORT, REGION_MANAGE, REGION_READ, Actor
from server.domain.territory import LEVELS, child_path, parent_level
from server.errors import Conflict, InvalidInput, NotFound
from server.extensions import db
from server.models import Region
from server.models._base import utcnow

from .access import TERRITORY, authorize, require, scope_path, within_scope
from .pagination import Page, paginate
from .versioning import commit_edit

# A feature overlapping no region of the level above takes the nearest one this close.
NEAREST_PARENT_MAX_M = 5_000

Progress = Callable[[int, int, str], None]  # (done, total, what) for progress bars


def _not_found() -> NotFound:
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
    authorize(actor, REGION_READ, region, not_found=_not_found())
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
    authorize(actor, REGION_MANAGE, region, not_found=_not_found())
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
    authorize(actor, REGION_MANAGE, region, not_found=_not_found())
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
    _release_retired_cells()
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


_LOCATE_SQL = text("""
WITH cell AS (
    SELECT id, path FROM regions
    WHERE level = 'grid' AND retired_at IS NULL
      AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
      AND path LIKE :scope || '%'
    ORDER BY code  -- a point on a shared border belongs to the cell with the smallest code
    LIMIT 1
)
SELECT r.id, r.code, r.name, r.name_en, r.level
FROM cell JOIN regions r ON r.id = ANY (string_to_array(trim(BOTH '/' FROM cell.path), '/')::int[])
ORDER BY length(r.path)
""")


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


# ---------------------------------------------------------------- bulk: staging + upsert

_STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS region_staging (
    seq int, code text, name text, name_en text, parent_code text, parent_id int,
    geom geometry(MultiPolygon, 4326), area_m2 float8, properties jsonb
) ON COMMIT DROP
"""


@dataclass
class StagedRegion:
    code: str
    name: str
    name_en: str | None
    geom: object  # shapely MultiPolygon, EPSG:4326
    properties: dict = field(default_factory=dict)
    parent_code: str | None = None
    parent_id: int | None = None
    area_m2: float | None = None  # geodesic m²; computed when not given


def _lock_territory() -> None:
    """Serialise bulk writes to the tree (imports, generation) for this transaction.

    Two imports of overlapping files would otherwise lock the same rows in different
    orders and deadlock; readers are not blocked.
    """
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('fengqiao.regions.bulk'))"))


def _stage(rows: list[StagedRegion], progress: Progress | None) -> None:
    _lock_territory()
    db.session.execute(text(_STAGING_DDL))
    db.session.execute(text("TRUNCATE region_staging"))
    raw = db.session.connection().connection.driver_connection
    with raw.cursor() as cur, cur.copy(
        "COPY region_staging (seq, code, name, name_en, parent_code, parent_id, geom, area_m2, properties) FROM STDIN"
    ) as copy:
        for seq, row in enumerate(rows):
            copy.write_row((seq, row.code, row.name, row.name_en, row.parent_code, row.parent_id,
                            shapely.to_wkb(shapely.set_srid(row.geom, 4326), hex=True, include_srid=True),
                            row.area_m2 if row.area_m2 is not None else geodesic_area_m2(row.geom),
                            json.dumps(row.properties, ensure_ascii=False, default=str)))
            if progress and (seq % 100 == 99 or seq == len(rows) - 1):
                progress(seq + 1, len(rows), "features staged")
    db.session.execute(text("ANALYZE region_staging"))


def _merge_staged(level: str) -> dict:
    """Upsert the staged rows (with parent_id set) as regions of ``level``.

    Returns counts {"created", "updated", "unchanged"} and the codes refused because
    the code exists at another level.
    """
    wrong_level = db.session.execute(text(
        "SELECT s.code, r.level FROM region_staging s JOIN regions r ON r.code = s.code WHERE r.level <> :level"
    ), {"level": level}).all()
    if wrong_level:
        db.session.execute(text(
            "DELETE FROM region_staging s USING regions r WHERE r.code = s.code AND r.level <> :level"), {"level": level})
    # Old paths of regions that will move, to rewrite their subtrees afterwards.
    db.session.execute(text("""
        CREATE TEMP TABLE IF NOT EXISTS region_moves (id int, old_path text) ON COMMIT DROP;
        TRUNCATE region_moves;
        INSERT INTO region_moves
        SELECT r.id, r.path FROM region_staging s JOIN regions r ON r.code = s.code
        WHERE r.parent_id IS DISTINCT FROM s.parent_id
    """))
    result = db.session.execute(text("""
        INSERT INTO regions AS r (code, name, name_en, level, parent_id, path, geom, area_m2, properties,
                                  version, created_at, updated_at)
        SELECT code, name, name_en, :level, parent_id, '/', geom, area_m2, properties, 1, now(), now()
        FROM region_staging ORDER BY code  -- one lock order for every writer
        ON CONFLICT (code) DO UPDATE SET
            name = excluded.name, name_en = excluded.name_en, parent_id = excluded.parent_id,
            geom = excluded.geom, area_m2 = excluded.area_m2, properties = excluded.properties,
            retired_at = NULL, version = r.version + 1, updated_at = now()
        WHERE r.level = :level
          AND ((r.name, r.name_en, r.parent_id, r.properties, r.retired_at IS NULL)
               IS DISTINCT FROM (excluded.name, excluded.name_en, excluded.parent_id, excluded.properties, true)
               OR NOT ST_Equals(r.geom, excluded.geom))
        RETURNING (xmax = 0) AS created
    """), {"level": level}).all()
    created = sum(1 for row in result if row.created)
    updated = len(result) - created
    # Paths: new rows and moved rows take their parent's path + their id…
    db.session.execute(text("""
        UPDATE regions r SET path = COALESCE(p.path, '/') || r.id || '/'
        FROM region_staging s LEFT JOIN regions p ON p.id = s.parent_id
        WHERE r.code = s.code AND r.path IS DISTINCT FROM COALESCE(p.path, '/') || r.id || '/'
    """))
    # …and everything below a moved row follows it.
    db.session.execute(text("""
        UPDATE regions d SET path = r.path || substr(d.path, length(m.old_path) + 1)
        FROM region_moves m JOIN regions r ON r.id = m.id
        WHERE m.old_path <> '/' AND d.path LIKE m.old_path || '%' AND d.id <> m.id
    """))
    staged = db.session.scalar(text("SELECT count(*) FROM region_staging"))
    return {
        "created": created, "updated": updated, "unchanged": staged - len(result),
        "refused": [{"code": code, "reason": f"the code exists at level {lvl}"} for code, lvl in wrong_level],
    }


# ---------------------------------------------------------------- import

@dataclass
class ImportOptions:
    level: str
    code_field: str
    name_field: str
    name_en_field: str | None = None
    parent_code_field: str | None = None


def _refuse(report: dict, index: int, reason: str, code: str | None = None) -> None:
    report["refused"].append({"index": index, "code": code, "reason": reason})


def _feature_rows(features: list, opts: ImportOptions, report: dict) -> list[StagedRegion]:
    """Validate features into staged rows; refusals and repairs go into ``report``."""
    rows: list[StagedRegion] = []
    seen: set[str] = set()
    for index, feature in enumerate(features):
        refuse = partial(_refuse, report, index)

        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            refuse("not a GeoJSON Feature")
            continue
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            refuse("properties is not an object")
            continue
        code = props.get(opts.code_field)
        name = props.get(opts.name_field)
        code = str(code).strip() if code is not None and not isinstance(code, dict | list) else ""
        name = str(name).strip() if name is not None and not isinstance(name, dict | list) else ""
        if not code or len(code) > 32:
            refuse(f"property {opts.code_field!r} is missing, empty or longer than 32 characters", code or None)
            continue
        if not name or len(name) > 200:
            refuse(f"property {opts.name_field!r} is missing, empty or longer than 200 characters", code)
            continue
        if code in seen:
            refuse("duplicate code in this file", code)
            continue
        try:
            geom, note = parse_polygonal(feature.get("geometry"))
        except GeometryError as exc:
            refuse(f"{exc.code}: {exc.message}", code)
            continue
        if note:
            report["repaired"].append({"code": code, "note": note})
        seen.add(code)
        name_en = props.get(opts.name_en_field) if opts.name_en_field else None
        parent_code = props.get(opts.parent_code_field) if opts.parent_code_field else None
        rows.append(StagedRegion(
            code=code, name=name, name_en=str(name_en)[:200] if name_en is not None else None,
            geom=geom, properties=props,
            parent_code=str(parent_code).strip() if parent_code is not None else None,
        ))
    return rows


def import_regions(actor: Actor, collection: dict, opts: ImportOptions, progress: Progress | None = None) -> dict:
    """Import a GeoJSON FeatureCollection as one level of the tree (导入区划).

    Each feature's parent is the live region of the level above named by
    ``parent_code_field`` when given, else the one it overlaps most, else (no overlap)
    the nearest within ``NEAREST_PARENT_MAX_M``. Upsert by code.
    Returns a report: created, updated, unchanged, refused (with reasons), repaired
    geometries, unassigned features (no parent found), features lying partly outside
    their parent, and overlapping siblings. Errors: auth.forbidden, import.invalid.
    """
    require(actor, REGION_IMPORT, TERRITORY)
    if opts.level not in LEVELS:
        raise InvalidInput("import.invalid", f"Unknown level {opts.level!r}.", errors={"level": [f"One of {LEVELS}."]})
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection" \
            or not isinstance(collection.get("features"), list):
        raise InvalidInput("import.invalid", "The file is not a GeoJSON FeatureCollection.")
    features = collection["features"]
    report = {"level": opts.level, "features": len(features), "refused": [], "repaired": [], "unassigned": [],
              "assigned_to_nearest": [], "kept_parent": [], "partly_outside_parent": [], "overlapping_siblings": []}
    rows = _feature_rows(features, opts, report)
    _stage(rows, progress)
    upper = parent_level(opts.level)
    if upper is None:
        report["parent_rule"] = "none (top level)"
    elif opts.parent_code_field:
        report["parent_rule"] = f"property {opts.parent_code_field!r}"
        db.session.execute(text("""
            UPDATE region_staging s SET parent_id = p.id FROM regions p
            WHERE p.code = s.parent_code AND p.level = :upper AND p.retired_at IS NULL
        """), {"upper": upper})
    else:
        report["parent_rule"] = "largest overlap"
        db.session.execute(text("""
            UPDATE region_staging s SET parent_id = best.parent_id FROM (
                SELECT DISTINCT ON (s.seq) s.seq, p.id AS parent_id
                FROM region_staging s
                JOIN regions p ON p.level = :upper AND p.retired_at IS NULL AND ST_Intersects(p.geom, s.geom)
                WHERE ST_Area(ST_Intersection(p.geom, s.geom)) > 0
                ORDER BY s.seq, ST_Area(ST_Intersection(p.geom, s.geom)) DESC, p.code
            ) best WHERE best.seq = s.seq
        """), {"upper": upper})
        # Features overlapping no parent (islands, water tracts outside land-only
        # boundaries) go to the nearest one within NEAREST_PARENT_MAX_M, and say so.
        nearest = db.session.execute(text("""
            UPDATE region_staging s SET parent_id = near.id FROM (
                SELECT s.seq, p.id, p.code,
                       ST_Distance(p.geom::geography, s.geom::geography) AS metres
                FROM region_staging s
                CROSS JOIN LATERAL (
                    SELECT id, code, geom FROM regions p
                    WHERE p.level = :upper AND p.retired_at IS NULL
                    ORDER BY p.geom <-> s.geom LIMIT 1
                ) p
                WHERE s.parent_id IS NULL
            ) near
            WHERE near.seq = s.seq AND near.metres <= :max_m
            RETURNING s.code, near.code AS parent_code, near.metres
        """), {"upper": upper, "max_m": NEAREST_PARENT_MAX_M}).all()
        report["assigned_to_nearest"] = [
            {"code": r.code, "parent_code": r.parent_code, "distance_m": round(r.metres, 1)} for r in nearest]
    if upper is not None:
        # A region already in the tree that this file gives no parent keeps the one it
        # has, rather than falling out of everyone's scope.
        report["kept_parent"] = list(db.session.scalars(text("""
            UPDATE region_staging s SET parent_id = r.parent_id FROM regions r
            WHERE s.parent_id IS NULL AND r.code = s.code AND r.parent_id IS NOT NULL
            RETURNING s.code
        """)).all())
        for code, parent_code in db.session.execute(text(
                "SELECT code, parent_code FROM region_staging WHERE parent_id IS NULL ORDER BY seq")).all():
            reason = (f"no live {upper} with code {parent_code!r}" if opts.parent_code_field
                      else f"no live {upper} overlaps it or lies within {NEAREST_PARENT_MAX_M} m")
            report["unassigned"].append({"code": code, "reason": reason})
    merged = _merge_staged(opts.level)
    report["refused"].extend(merged.pop("refused"))
    report.update(merged)
    report["partly_outside_parent"] = _partly_outside_parent()
    report["overlapping_siblings"] = _overlapping_staged_siblings()
    db.session.commit()
    return report


def _partly_outside_parent(threshold: float = 0.99) -> list[dict]:
    rows = db.session.execute(text("""
        SELECT s.code, p.code AS parent_code,
               ST_Area(ST_Intersection(s.geom, p.geom)) / NULLIF(ST_Area(s.geom), 0) AS share_inside
        FROM region_staging s JOIN regions p ON p.id = s.parent_id
        WHERE NOT ST_CoveredBy(s.geom, p.geom)
        ORDER BY s.seq
    """)).all()
    return [{"code": r.code, "parent_code": r.parent_code, "share_inside": round(r.share_inside or 0, 4)}
            for r in rows if (r.share_inside or 0) < threshold]


def _overlapping_staged_siblings(min_area_m2: float = 1.0) -> list[dict]:
    rows = db.session.execute(text("""
        SELECT a.code AS a, b.code AS b,
               ST_Area(ST_Intersection(a.geom, b.geom)::geography) AS area_m2
        FROM region_staging s
        JOIN regions a ON a.code = s.code
        JOIN regions b ON b.parent_id IS NOT DISTINCT FROM a.parent_id AND b.level = a.level
             AND b.id <> a.id AND b.retired_at IS NULL AND ST_Intersects(a.geom, b.geom)
        WHERE (a.code < b.code OR b.code NOT IN (SELECT code FROM region_staging))
          AND ST_Relate(a.geom, b.geom, '2********')
    """)).all()
    return [{"codes": [r.a, r.b], "area_m2": round(r.area_m2, 1)} for r in rows if r.area_m2 >= min_area_m2]


# ---------------------------------------------------------------- grid generation

@dataclass
class GridOptions:
    target_area_m2: float = 10_000
    sliver_ratio: float = 0.3
    replace: bool = False


def generate_grids(actor: Actor, region_id: int, opts: GridOptions, progress: Progress | None = None) -> dict:
    """Divide a community — or every community under a region — into unit grids (划分网格).

    Cells of about ``target_area_m2`` in a local equal-area projection, clipped to the
    community, slivers merged into neighbours, coded community code + serial
    (west→east, north→south). A community that already has live cells is regenerated
    only with ``replace`` (cells whose codes are no longer produced are retired);
    without it a single community answers 409 and a larger region skips it and says so.
    Errors: region.not_found, auth.forbidden, region.wrong_level, region.grids_exist.
    """
    region = db.session.get(Region, region_id)
    authorize(actor, REGION_ADD_CHILDREN, region, not_found=_not_found())
    if region.level == "grid":
        raise InvalidInput("region.wrong_level", "Grid cells are generated for a community or a region above one.")
    if region.is_retired:
        raise InvalidInput("region.wrong_level", "The region is retired.")
    communities = [region] if region.level == "community" else db.session.scalars(
        select(Region).where(Region.level == "community", Region.retired_at.is_(None),
                             Region.path.startswith(region.path)).order_by(Region.code)).all()
    live_cells = dict(db.session.execute(text("""
        SELECT c.parent_id, count(*) FROM regions c
        WHERE c.level = 'grid' AND c.retired_at IS NULL AND c.path LIKE :p || '%' GROUP BY c.parent_id
    """), {"p": region.path}).all())
    report = {"region": region.code, "communities": 0, "skipped": [], "created": 0, "updated": 0,
              "unchanged": 0, "retired": 0, "assignments_released": 0, "target_area_m2": opts.target_area_m2}
    todo = []
    for community in communities:
        if live_cells.get(community.id) and not opts.replace:
            if region.level == "community":
                raise Conflict("region.grids_exist",
                               f"{community.code} already has {live_cells[community.id]} live grid cells; pass replace to regenerate.")
            report["skipped"].append({"code": community.code, "reason": "already has live grid cells"})
        else:
            todo.append(community)
    # The lattice is Python work per community; the writes are one staged upsert for all.
    boundaries = _boundaries([c.id for c in todo])
    rows: list[StagedRegion] = []
    for done, community in enumerate(todo, 1):
        rows.extend(_lattice_rows(community, boundaries[community.id], opts, "grid"))
        if progress:
            progress(done, len(todo), community.code)
    counts = _replace_children([c.id for c in todo], rows, "grid")
    report.update(counts, communities=len(todo))
    db.session.commit()
    return report


# How generated children are named, per level: (zh pattern, en pattern).
_GENERATED_NAMES = {
    "grid": ("{parent}第{n}网格", "{parent} grid {n}"),
    "community": ("{parent}第{n}社区", "{parent} community {n}"),
}


def _boundaries(region_ids: list[int]):
    """The polygons of ``region_ids`` as shapely geometries (EPSG:4326), by id."""
    rows = db.session.execute(select(Region.id, Region.geom.ST_AsBinary()).where(Region.id.in_(region_ids))).all()
    return {region_id: shapely.from_wkb(bytes(wkb)) for region_id, wkb in rows}


def _lattice_rows(parent: Region, boundary, opts: GridOptions, level: str) -> list[StagedRegion]:
    """The children of ``parent`` at ``level`` from a lattice subdivision of ``boundary``."""
    try:
        cells = generate_grid(boundary, target_area_m2=opts.target_area_m2, sliver_ratio=opts.sliver_ratio)
    except ValueError as exc:
        raise InvalidInput("region.invalid_grid_options", str(exc)) from None
    total = len(cells)
    zh, en = _GENERATED_NAMES[level]
    label_en = parent.name_en or parent.code
    return [StagedRegion(
        code=grid_code(parent.code, c.serial, total) if level == "grid" else f"{parent.code}{c.serial:03d}",
        name=zh.format(parent=parent.name, n=c.serial), name_en=en.format(parent=label_en, n=c.serial),
        geom=c.geom, parent_id=parent.id, area_m2=c.area_m2,
        properties={"serial": c.serial, "row": c.row, "col": c.col},
    ) for c in cells]


def _replace_children(parent_ids: list[int], rows: list[StagedRegion], level: str) -> dict:
    """Upsert ``rows`` as the live children of ``parent_ids``; retire their other children.

    Generated codes are the parent's code + a serial, so a parent "B1" with 131 cells
    and a parent "B10" can produce the same code: a code that belongs to a region under
    another parent is refused (409), never taken over.
    """
    too_long = [r.code for r in rows if len(r.code) > 32]
    if too_long:
        raise InvalidInput("region.code_too_long", f"Generated codes would exceed 32 characters: {too_long[0]}.")
    _stage(rows, None)
    taken = db.session.scalars(text("""
        SELECT s.code FROM region_staging s JOIN regions r ON r.code = s.code
        WHERE r.parent_id IS DISTINCT FROM s.parent_id ORDER BY s.code LIMIT 5
    """)).all()
    if taken:
        raise Conflict("region.code_taken", "Generated codes are already used by other regions: " + ", ".join(taken)
                       + ". Recode the community (or the other region) first.")
    counts = _merge_staged(level)
    if counts["refused"]:
        raise Conflict("region.code_taken", "Generated codes are used by regions of other levels: "
                       + ", ".join(r["code"] for r in counts["refused"][:5]))
    retired = db.session.execute(text("""
        UPDATE regions SET retired_at = now(), version = version + 1, updated_at = now()
        WHERE parent_id = ANY(:pids) AND level = :level AND retired_at IS NULL
          AND code NOT IN (SELECT code FROM region_staging)
    """), {"pids": parent_ids, "level": level}).rowcount
    del counts["refused"]
    return {**counts, "retired": retired, "assignments_released": _release_retired_cells()}


def _release_retired_cells() -> int:
    """Grid workers no longer cover retired cells (AB岗 is current duty, not history)."""
    return db.session.execute(text(
        "DELETE FROM grid_assignments a USING regions r WHERE r.id = a.region_id AND r.retired_at IS NOT NULL"
    )).rowcount


def generate_communities(actor: Actor, street_id: int, target_area_m2: float) -> dict:
    """Divide a street without community boundaries into square communities.

    For territories whose communities are not surveyed yet (and for demo data): codes
    are the street code + a 3-digit serial. Errors: region.not_found, auth.forbidden,
    region.wrong_level, region.grids_exist (the street already has communities).
    """
    street = db.session.get(Region, street_id)
    authorize(actor, REGION_ADD_CHILDREN, street, not_found=_not_found())
    if street.level != "street" or street.is_retired:
        raise InvalidInput("region.wrong_level", "Communities are generated inside a live street.")
    if db.session.scalar(select(Region.id).where(Region.parent_id == street.id, Region.retired_at.is_(None)).limit(1)):
        raise Conflict("region.grids_exist", f"{street.code} already has communities.")
    opts = GridOptions(target_area_m2=target_area_m2)
    rows = _lattice_rows(street, _boundaries([street.id])[street.id], opts, "community")
    counts = _replace_children([street.id], rows, "community")
    db.session.commit()
    return counts


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

