"""The bench territory: New York City as city > boroughs > community districts > census
tracts, then unit grid cells of 10,000 m², built through the real service functions;
for the report benchmark, the standard categories, grid workers primary on cells spread
over the city, and random points in their cells to report from.

The build is slow (minutes) and cached: a bench database that already holds the NYC
city and its cells is reused, and the timings of the build that made it are kept in
``bench/out/build.json``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from flask_migrate import upgrade
from shapely import unary_union
from shapely.geometry import mapping, shape
from sqlalchemy import text

from server.cli.progress import progress_bar
from server.config import PROJECT_ROOT
from server.domain.permissions import SYSTEM
from server.extensions import db
from server.models import GridAssignment, User
from server.services import territory_bulk
from server.services.categories import seed_categories

from . import OUT_DIR, say

NYC_DIR = PROJECT_ROOT.parent / "shared" / "data" / "nyc"
CITY_CODE = "NYC"
BUILD_FILE = OUT_DIR / "build.json"

# (level, file under NYC_DIR, code property): each level's parent by largest overlap.
LEVELS = (
    ("district", "borough", "borough_code"),
    ("street", "community_district", "boro_cd"),
    ("community", "census_tract_2010", "geoid"),
)


@dataclass
class Dataset:
    """The built territory as the benchmarks need it."""

    city_id: int
    cells: int  # live grid cells under the city
    bbox: tuple[float, float, float, float]  # lon/lat extent of those cells, EPSG:4326
    build: dict | None  # timings of the build that made it (None: unknown)
    cached: bool  # True when this run reused an earlier build


def migrate() -> None:
    """Bring the bench database to the latest Alembic revision (inside an app context)."""
    upgrade()


def _load(name: str) -> dict:
    return json.loads((NYC_DIR / f"{name}.geojson").read_text())


def _city_collection(boroughs: dict) -> dict:
    """NYC itself: the union of the five boroughs, as a one-feature collection."""
    city = unary_union([shape(f["geometry"]) for f in boroughs["features"]])
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": mapping(city), "properties": {"code": CITY_CODE, "name": "纽约市"}}]}


def _existing() -> tuple[int, int] | None:
    """(city id, live cells under it) when the bench database already holds a built NYC."""
    row = db.session.execute(text("""
        SELECT c.id, (SELECT count(*) FROM regions g
                      WHERE g.level = 'grid' AND g.retired_at IS NULL AND g.path LIKE c.path || '%') AS cells
        FROM regions c WHERE c.code = :code AND c.level = 'city' AND c.retired_at IS NULL
    """), {"code": CITY_CODE}).one_or_none()
    return (row.id, row.cells) if row and row.cells else None


def _empty_database() -> None:
    """Remove every row of the application's tables (the bench database only)."""
    tables = [t.name for t in reversed(db.metadata.sorted_tables) if t.name not in {"spatial_ref_sys", "alembic_version"}]
    db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    db.session.commit()


def _timed_import(level: str, collection: dict, code_field: str) -> dict:
    """Import one level; returns its report counts and wall time (s) and features/s."""
    opts = territory_bulk.ImportOptions(level=level, code_field=code_field, name_field="name")
    started = time.perf_counter()
    with progress_bar("features") as progress:
        report = territory_bulk.import_regions(SYSTEM, collection, opts, progress)
    seconds = time.perf_counter() - started
    features = report["features"]
    say(f"  {level}: {features} features in {seconds:.2f} s ({features / seconds:.0f} features/s), "
        f"{report['created']} created, {len(report['refused'])} refused, {len(report['unassigned'])} unassigned")
    return {"features": features, "created": report["created"], "refused": len(report["refused"]),
            "unassigned": len(report["unassigned"]), "assigned_to_nearest": len(report["assigned_to_nearest"]),
            "seconds": seconds, "features_per_s": features / seconds}


def _build() -> tuple[int, dict]:
    """Import the four levels and generate the cells; returns (city id, timings)."""
    timings: dict = {"built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "levels": {}}
    boroughs = _load("borough")
    timings["levels"]["city"] = _timed_import("city", _city_collection(boroughs), "code")
    for level, name, code_field in LEVELS:
        collection = boroughs if name == "borough" else _load(name)
        timings["levels"][level] = _timed_import(level, collection, code_field)
    city_id = db.session.scalar(text("SELECT id FROM regions WHERE code = :c"), {"c": CITY_CODE})
    say("Generating unit grids of 10,000 m² for every community")
    started = time.perf_counter()
    with progress_bar("communities") as progress:
        report = territory_bulk.generate_grids(SYSTEM, city_id, territory_bulk.GridOptions(), progress)
    seconds = time.perf_counter() - started
    timings["grids"] = {"communities": report["communities"], "cells": report["created"], "seconds": seconds,
                        "cells_per_s": report["created"] / seconds, "target_area_m2": report["target_area_m2"]}
    say(f"  {report['created']} cells for {report['communities']} communities in {seconds:.1f} s "
        f"({report['created'] / seconds:.0f} cells/s)")
    return city_id, timings


def _cell_bbox(city_id: int) -> tuple[float, float, float, float]:
    row = db.session.execute(text("""
        SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (
            SELECT ST_Extent(g.geom) AS e FROM regions g JOIN regions c ON c.id = :id
            WHERE g.level = 'grid' AND g.retired_at IS NULL AND g.path LIKE c.path || '%') x
    """), {"id": city_id}).one()
    return tuple(float(v) for v in row)


def _saved_build(city_id: int, cells: int) -> dict | None:
    """The stored timings, if they describe this very build (same city id and cell count)."""
    if not BUILD_FILE.exists():
        return None
    saved = json.loads(BUILD_FILE.read_text())
    return saved if saved.get("city_id") == city_id and saved.get("cells") == cells else None


def ensure_dataset(rebuild: bool) -> Dataset:
    """Reuse the built NYC in the bench database, or (re)build it and record the timings."""
    existing = None if rebuild else _existing()
    if existing:
        city_id, cells = existing
        say(f"Reusing the NYC territory already in the bench database ({cells} cells); --rebuild to rebuild it")
        build = _saved_build(city_id, cells)
        if build is None:
            say("  (its build timings are unknown: bench/out/build.json is missing or describes another build)")
        return Dataset(city_id, cells, _cell_bbox(city_id), build, cached=True)
    say("Building NYC in the bench database" + (" (--rebuild)" if rebuild else ""))
    _empty_database()
    city_id, timings = _build()
    cells = _existing()[1]
    build = {**timings, "city_id": city_id, "cells": cells}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    BUILD_FILE.write_text(json.dumps(build, indent=1))
    return Dataset(city_id, cells, _cell_bbox(city_id), build, cached=False)


# ------------------------------------------------------------------ report fixtures

WORKER_PREFIX = "bench-worker-"
WORKERS = 200
POINTS_PER_WORKER = 20
POINTS_TABLE = "bench_report_points"
# Not an argon2 hash: no password signs these workers in. The runner mints their tokens.
NO_PASSWORD = "!bench worker: tokens are minted by the runner"


@dataclass
class ReportFixtures:
    """Grid workers of the bench and the points they report from (``bench_report_points``)."""

    worker_ids: list[int]
    points: int  # rows of bench_report_points, ids 1..points
    categories: list[str]  # the leaf codes reported (those without required attributes)
    cached: bool  # True when this run reused the workers and points of an earlier run


def _bench_workers() -> dict[str, tuple[int, int | None]]:
    """username → (user id, live cell it is primary on, or None)."""
    rows = db.session.execute(text("""
        SELECT u.username, u.id, g.id AS cell_id FROM users u
        LEFT JOIN grid_assignments a ON a.user_id = u.id AND a.duty = 'primary'
        LEFT JOIN regions g ON g.id = a.region_id AND g.retired_at IS NULL
        WHERE u.username LIKE :prefix || '%' ORDER BY u.username
    """), {"prefix": WORKER_PREFIX}).all()
    return {r.username: (r.id, r.cell_id) for r in rows}


def _ensure_workers(city_id: int, count: int) -> list[int]:
    """``count`` active grid workers, each primary on one cell spread over the city, scoped to its community."""
    existing = _bench_workers()
    names = [f"{WORKER_PREFIX}{i:03d}" for i in range(1, count + 1)]
    missing = [n for n in names if existing.get(n, (None, None))[1] is None]
    if missing:
        # Cells in a pseudo-random but stable order (md5 of the code), none already someone's primary.
        cells = db.session.execute(text("""
            SELECT g.id, g.parent_id FROM regions g JOIN regions c ON c.id = :city
            WHERE g.level = 'grid' AND g.retired_at IS NULL AND g.path LIKE c.path || '%'
              AND NOT EXISTS (SELECT 1 FROM grid_assignments a WHERE a.region_id = g.id AND a.duty = 'primary')
            ORDER BY md5(g.code) LIMIT :n
        """), {"city": city_id, "n": len(missing)}).all()
        for name, cell in zip(missing, cells, strict=True):
            user = db.session.get(User, existing[name][0]) if name in existing else None
            if user is None:
                user = User(username=name, display_name=f"Bench worker {name[len(WORKER_PREFIX):]}",
                            role="grid_worker", region_id=cell.parent_id, password_hash=NO_PASSWORD)
                db.session.add(user)
                db.session.flush()
            user.region_id, user.is_active = cell.parent_id, True
            db.session.add(GridAssignment(user_id=user.id, region_id=cell.id, duty="primary"))
        db.session.commit()
    workers = _bench_workers()
    return [workers[n][0] for n in names]


def _report_categories() -> list[tuple[int, str, str, str]]:
    """Live leaves a phone can report without extra attributes: (id, code, start level, priority)."""
    rows = db.session.execute(text("""
        SELECT id, code, start_level, default_priority FROM categories
        WHERE parent_id IS NOT NULL AND retired_at IS NULL
          AND NOT jsonb_path_exists(attributes, '$[*] ? (@.required == true)')
        ORDER BY code
    """)).all()
    return [tuple(r) for r in rows]


def _points_fit(worker_ids: list[int], expected: int) -> bool:
    """The points table holds ``expected`` points, each in its worker's current primary cell."""
    db.session.execute(text(f"""
        CREATE TABLE IF NOT EXISTS {POINTS_TABLE} (
            id int PRIMARY KEY, user_id int NOT NULL, cell_id int NOT NULL, scope text NOT NULL,
            category_id int NOT NULL, category text NOT NULL, level text NOT NULL, priority text NOT NULL,
            lon float8 NOT NULL, lat float8 NOT NULL)
    """))
    db.session.commit()
    found = db.session.execute(text(f"""
        SELECT count(*) AS total, count(a.user_id) AS placed FROM {POINTS_TABLE} p
        LEFT JOIN grid_assignments a ON a.user_id = p.user_id AND a.region_id = p.cell_id AND a.duty = 'primary'
                                    AND a.user_id = ANY(:ids)
    """), {"ids": worker_ids}).one()
    return found.total == found.placed == expected


def _generate_points(worker_ids: list[int], per_worker: int, categories: list) -> None:
    """Random points in each worker's primary cell (ST_GeneratePoints, seeded by the worker id),
    each with a category drawn from ``categories`` by a hash of the point: the same on every build."""
    db.session.execute(text(f"TRUNCATE {POINTS_TABLE}"))
    db.session.execute(text(f"""
        INSERT INTO {POINTS_TABLE} (id, user_id, cell_id, scope, category_id, category, level, priority, lon, lat)
        SELECT row_number() OVER (ORDER BY u.id, d.path), u.id, g.id, s.path,
               c.id, c.code, c.start_level, c.default_priority, ST_X(d.geom), ST_Y(d.geom)
        FROM users u
        JOIN regions s ON s.id = u.region_id
        JOIN grid_assignments a ON a.user_id = u.id AND a.duty = 'primary'
        JOIN regions g ON g.id = a.region_id
        CROSS JOIN LATERAL ST_Dump(ST_GeneratePoints(g.geom, :k, u.id)) d
        JOIN LATERAL (SELECT * FROM unnest(CAST(:cat_ids AS int[]), CAST(:codes AS text[]),
                                           CAST(:levels AS text[]), CAST(:priorities AS text[]))
                      WITH ORDINALITY AS x(id, code, start_level, default_priority, n)
                      WHERE x.n = 1 + abs(hashtext(u.id || ':' || d.path[1])) % :ncat) c ON true
        WHERE u.id = ANY(:ids)
    """), {"k": per_worker, "ids": worker_ids, "ncat": len(categories),
           "cat_ids": [c[0] for c in categories], "codes": [c[1] for c in categories],
           "levels": [c[2] for c in categories], "priorities": [c[3] for c in categories]})
    db.session.commit()


def ensure_report_fixtures(city_id: int, workers: int = WORKERS, per_worker: int = POINTS_PER_WORKER
                           ) -> ReportFixtures:
    """Seed the categories, the bench's grid workers and their report points; reuse what fits."""
    seed_categories()  # idempotent: upserts by code
    worker_ids = _ensure_workers(city_id, workers)
    categories = _report_categories()
    expected = workers * per_worker
    cached = _points_fit(worker_ids, expected)
    if cached:
        say(f"Reusing {workers} bench grid workers and their {expected} report points")
    else:
        say(f"Generating {expected} report points in the cells of {workers} bench grid workers")
        _generate_points(worker_ids, per_worker, categories)
        for table in (POINTS_TABLE, "users", "grid_assignments", "categories"):
            db.session.execute(text(f"ANALYZE {table}"))
        db.session.commit()
    codes = [c[1] for c in categories]
    return ReportFixtures(worker_ids=worker_ids, points=expected, categories=codes, cached=cached)
