"""The bench territory: New York City as city > boroughs > community districts > census
tracts, then unit grid cells of 10,000 m², built through the real service functions.

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
from server.services import territory_bulk

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
