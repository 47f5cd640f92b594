"""Import the NYC boundaries as city > district (borough) > street (community district) >
community (census tract), then grid cells; check nesting and locate against shapely.

The NYC layers only approximately nest (some tracts straddle community districts):
every child must still get exactly one parent, the one of largest overlap.
"""
import json
import random

import pytest
import shapely
from shapely import STRtree, unary_union
from shapely.geometry import Point, mapping, shape
from sqlalchemy import select, text

from geo.geometry import from_db
from server.config import PROJECT_ROOT
from server.domain.permissions import SYSTEM
from server.errors import NotFound
from server.extensions import db as _db
from server.models import Region
from server.services import regions
from server.services.territory_bulk import GridOptions, ImportOptions, generate_grids, import_regions

NYC = PROJECT_ROOT.parent / "shared" / "data" / "nyc"


def load(name):
    return json.loads((NYC / f"{name}.geojson").read_text())


@pytest.fixture(scope="module")
def nyc(app):
    """The imported tree (module-scoped: the import takes a few seconds)."""
    _db.session.rollback()
    tables = [t.name for t in reversed(_db.metadata.sorted_tables) if t.name not in {"spatial_ref_sys", "alembic_version"}]
    _db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    _db.session.commit()
    boroughs, districts, tracts = load("borough"), load("community_district"), load("census_tract_2010")
    city = unary_union([shape(f["geometry"]) for f in boroughs["features"]])
    reports = {"city": import_regions(SYSTEM, {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": mapping(city), "properties": {"code": "NYC", "name": "纽约市"}}]},
        ImportOptions("city", "code", "name"))}
    reports["district"] = import_regions(SYSTEM, boroughs, ImportOptions("district", "borough_code", "name"))
    reports["street"] = import_regions(SYSTEM, districts, ImportOptions("street", "boro_cd", "name"))
    reports["community"] = import_regions(SYSTEM, tracts, ImportOptions("community", "geoid", "name"))
    return {"reports": reports, "tracts": tracts, "districts": districts}


def by_level(level):
    return _db.session.scalars(select(Region).where(Region.level == level)).all()


def test_every_feature_is_imported_once(nyc):
    reports = nyc["reports"]
    assert reports["community"]["created"] == 2167 and not reports["community"]["refused"]
    assert reports["street"]["created"] == 59 and reports["district"]["created"] == 5
    assert [len(by_level(level)) for level in ("city", "district", "street", "community")] == [1, 5, 59, 2167]


def test_every_region_has_exactly_one_parent_of_the_level_above_and_a_consistent_path(nyc):
    rows = _db.session.execute(text("""
        SELECT c.level, p.level AS parent_level, c.path, p.path AS parent_path, c.id
        FROM regions c LEFT JOIN regions p ON p.id = c.parent_id WHERE c.level <> 'city'
    """)).all()
    expected_parent = {"district": "city", "street": "district", "community": "street"}
    assert all(r.parent_level == expected_parent[r.level] for r in rows)
    assert all(r.path == f"{r.parent_path}{r.id}/" for r in rows)
    assert not nyc["reports"]["community"]["unassigned"]
    # tracts of water or parkland outside the land-only district outlines: nearest district
    nearest = nyc["reports"]["community"]["assigned_to_nearest"]
    assert 0 < len(nearest) < 20 and all(0 < item["distance_m"] <= 5_000 for item in nearest)


@pytest.fixture(scope="module")
def shapely_parents(nyc):
    """shapely's own answer: tract geoid → (district of largest overlap, share of the tract inside it)."""
    districts = {str(f["properties"]["boro_cd"]): shape(f["geometry"]).buffer(0) for f in nyc["districts"]["features"]}
    codes, polygons = list(districts), list(districts.values())
    tree = STRtree(polygons)
    answer = {}
    for feature in nyc["tracts"]["features"]:
        tract = shape(feature["geometry"]).buffer(0)
        overlaps = [(shapely.area(shapely.intersection(tract, polygons[i])), codes[i]) for i in tree.query(tract)]
        overlaps = [o for o in overlaps if o[0] > 0]
        if overlaps:  # (the few that overlap nothing are checked above)
            area, code = max(overlaps)
            answer[feature["properties"]["geoid"]] = (code, area / tract.area)
    return answer


def test_each_tract_goes_to_the_community_district_it_overlaps_most(nyc, shapely_parents):
    actual = dict(_db.session.execute(text(
        "SELECT c.code, p.code FROM regions c JOIN regions p ON p.id = c.parent_id WHERE c.level = 'community'")).all())
    assert {code: actual[code] for code in shapely_parents} == {code: p for code, (p, _) in shapely_parents.items()}


def test_tracts_partly_outside_their_district_are_reported_with_the_share_inside(nyc, shapely_parents):
    reported = {item["code"]: item["share_inside"] for item in nyc["reports"]["community"]["partly_outside_parent"]}
    assert reported and all(share < 0.99 for share in reported.values())
    for code, (_, share) in shapely_parents.items():
        if abs(share - 0.99) < 1e-3:
            continue  # too close to the threshold to call
        if share < 0.99:
            assert reported[code] == pytest.approx(share, abs=1e-3)
        else:
            assert code not in reported


def test_generated_cells_nest_strictly_and_locate_agrees_with_shapely(nyc):
    manhattan_tracts = _db.session.scalars(select(Region).where(
        Region.level == "community", Region.code.like("36061%")).order_by(Region.code).limit(25)).all()
    for tract in manhattan_tracts:
        generate_grids(SYSTEM, tract.id, GridOptions())
    cells = _db.session.execute(select(Region.code, Region.geom).where(Region.level == "grid").order_by(Region.code)).all()
    assert len(cells) > 25 * 5
    # strict nesting: each tract is exactly the union of its cells
    for tract in manhattan_tracts:
        report = regions.coverage(SYSTEM, tract.id)  # pieces under 1 m² are floating-point noise
        assert report["summary"]["ok"], (tract.code, report["summary"])
    codes = [c.code for c in cells]
    geoms = [from_db(c.geom) for c in cells]
    tree = STRtree(geoms)
    rng = random.Random(20261123)
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    points = [(rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(3000)]
    # and points exactly on shared corners and edges of cells
    for geom in rng.sample(geoms, 100):
        ring = geom.geoms[0].exterior.coords
        points.append(ring[0])
        points.append(((ring[0][0] + ring[1][0]) / 2, (ring[0][1] + ring[1][1]) / 2))
    hits = 0
    for lon, lat in points:
        covering = [codes[i] for i in tree.query(Point(lon, lat), predicate="intersects")]
        expected = min(covering) if covering else None
        try:
            actual = regions.locate(SYSTEM, lon, lat).cell["code"]
        except NotFound:
            actual = None
        assert actual == expected, (lon, lat, covering)
        hits += actual is not None
    assert hits > 500  # about a third of the bounding box is covered by the cells
