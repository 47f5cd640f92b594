"""Bulk writes to the territory tree: import a level, generate communities and grid cells.

Both go through one staging table and one upsert, so they share the same rules: upsert
by code, a level never changes, a code is never taken over from another parent by
generation, paths are rewritten for moved subtrees, nothing is ever hard-deleted, and
one advisory lock serialises bulk writers (readers are never blocked).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import shapely
from sqlalchemy import select, text

from geo.geometry import GeometryError, geodesic_area_m2, parse_polygonal
from geo.grids import generate_grid, grid_code
from server.domain.permissions import REGION_ADD_CHILDREN, REGION_IMPORT, Actor
from server.domain.territory import LEVELS, parent_level
from server.errors import Conflict, InvalidInput
from server.extensions import db
from server.models import Region

from .access import TERRITORY, authorize, require
from .regions import region_not_found, release_retired_cells

# A feature overlapping no region of the level above takes the nearest one this close.
NEAREST_PARENT_MAX_M = 5_000

Progress = Callable[[int, int, str], None]  # (done, total, what) for progress bars


# ---------------------------------------------------------------- staging + upsert

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
    authorize(actor, REGION_ADD_CHILDREN, region, not_found=region_not_found())
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
    return {**counts, "retired": retired, "assignments_released": release_retired_cells()}


def generate_communities(actor: Actor, street_id: int, target_area_m2: float) -> dict:
    """Divide a street without community boundaries into square communities.

    For territories whose communities are not surveyed yet (and for demo data): codes
    are the street code + a 3-digit serial. Errors: region.not_found, auth.forbidden,
    region.wrong_level, region.grids_exist (the street already has communities).
    """
    street = db.session.get(Region, street_id)
    authorize(actor, REGION_ADD_CHILDREN, street, not_found=region_not_found())
    if street.level != "street" or street.is_retired:
        raise InvalidInput("region.wrong_level", "Communities are generated inside a live street.")
    if db.session.scalar(select(Region.id).where(Region.parent_id == street.id, Region.retired_at.is_(None)).limit(1)):
        raise Conflict("region.grids_exist", f"{street.code} already has communities.")
    opts = GridOptions(target_area_m2=target_area_m2)
    rows = _lattice_rows(street, _boundaries([street.id])[street.id], opts, "community")
    counts = _replace_children([street.id], rows, "community")
    db.session.commit()
    return counts
