"""The demo city: Los Angeles read as a Chinese-style territory tree.

city 洛杉矶 (Los Angeles) > 12 service regions as districts > 99 neighbourhood councils as
streets (from ``shared/data/la``); inside three central councils, communities of about
1 km² and unit grids of about 10,000 m² are generated. Departments (with their kinds),
demo users for every role and the standard categories (``server/seed/categories.json``)
come with it. Loading is idempotent and resumable: every step is an upsert or skips what
exists, so a second run (or a run after an interrupted one) only finishes.
"""
from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

from shapely import unary_union
from shapely.geometry import mapping, shape
from sqlalchemy import select

from geo.geometry import as_multipolygon
from server.config import PROJECT_ROOT
from server.domain.permissions import SYSTEM
from server.extensions import db
from server.models import Department, GridAssignment, Region, User

from . import territory_bulk
from .categories import seed_categories
from .passwords import hash_password

COUNCILS = PROJECT_ROOT.parent / "shared" / "data" / "la" / "la-neighborhood-councils-2019.geojson"
CITY_CODE = "LA"
# Councils that get communities and grid cells: downtown and its neighbours.
DETAILED = ("DOWNTOWN LOS ANGELES", "HISTORIC CULTURAL NC", "PICO UNION NC")


def _title(name: str) -> str:
    """LA data is in capitals: "HISTORIC CULTURAL NC" → "Historic Cultural NC"."""
    return re.sub(r"\b(Nc|Cc|Ndc|La)\b", lambda m: m.group(0).upper(), name.title())


def _district_code(service_region: str) -> str:
    number = int(re.search(r"REGION (\d+)", service_region).group(1))
    return f"{CITY_CODE}{number:02d}"


def _street_code(district_code: str, nc_id: str) -> str:
    return f"{district_code}{int(nc_id):03d}"


def _collection(features: list[dict]) -> dict:
    return {"type": "FeatureCollection", "features": features}


def _feature(geom, **props) -> dict:
    return {"type": "Feature", "geometry": mapping(as_multipolygon(geom)), "properties": props}


def load_demo(councils_path: Path = COUNCILS, say=print) -> dict:
    """Load the demo city; returns {"created": bool, "users": [(username, role, password)], "categories": report}."""
    say("Standard categories …")
    categories = seed_categories()  # idempotent, so also brings an older demo database up to date
    if db.session.scalar(select(User.id).where(User.username == "admin")):
        return {"created": False, "users": [], "categories": categories}
    if not councils_path.exists():
        raise FileNotFoundError(f"Demo data not found: {councils_path} (the project's shared/data folder)")
    source = json.loads(councils_path.read_text())
    councils = source["features"]
    shapes = [shape(f["geometry"]).buffer(0) for f in councils]

    say("City and 12 districts (unions of the councils) …")
    by_region: dict[str, list] = {}
    for feature, geom in zip(councils, shapes):
        by_region.setdefault(feature["properties"]["service_re"], []).append(geom)
    city = _feature(unary_union(shapes), code=CITY_CODE, name="洛杉矶市", name_en="Los Angeles")
    territory_bulk.import_regions(SYSTEM, _collection([city]),
                                  territory_bulk.ImportOptions("city", "code", "name", "name_en"))
    districts = [_feature(unary_union(parts), code=_district_code(name), name=_title(name), name_en=_title(name))
                 for name, parts in sorted(by_region.items())]
    territory_bulk.import_regions(SYSTEM, _collection(districts),
                           territory_bulk.ImportOptions("district", "code", "name", "name_en"))

    say("99 neighbourhood councils as streets …")
    streets = []
    for feature, geom in zip(councils, shapes):
        p = feature["properties"]
        streets.append(_feature(geom, code=_street_code(_district_code(p["service_re"]), p["nc_id"]),
                                name=_title(p["name"]), name_en=_title(p["name"]),
                                district=_district_code(p["service_re"]), nc_id=p["nc_id"], website=p.get("waddress")))
    territory_bulk.import_regions(SYSTEM, _collection(streets), territory_bulk.ImportOptions(
        "street", "code", "name", "name_en", parent_code_field="district"))

    detailed = db.session.scalars(select(Region).where(
        Region.level == "street", Region.name.in_([_title(n) for n in DETAILED])).order_by(Region.code)).all()
    for street in detailed:
        say(f"Communities and grid cells in {street.name} …")
        if not db.session.scalar(select(Region.id).where(Region.parent_id == street.id).limit(1)):
            territory_bulk.generate_communities(SYSTEM, street.id, target_area_m2=1_000_000)
        territory_bulk.generate_grids(SYSTEM, street.id, territory_bulk.GridOptions())  # skips communities with cells
    users = _people(detailed)
    return {"created": True, "users": users, "categories": categories}


def _people(streets: list[Region]) -> list[tuple[str, str, str]]:
    """Departments and one or more demo users per role, with fresh random passwords."""
    city = db.session.scalar(select(Region).where(Region.code == CITY_CODE))
    first = streets[0]
    district = db.session.get(Region, first.parent_id)
    communities = db.session.scalars(select(Region).where(
        Region.parent_id == first.id, Region.retired_at.is_(None)).order_by(Region.code).limit(2)).all()
    departments = []
    for street in streets:
        for suffix, zh, en, kind in (("PS", "派出所", "Police station", "police"),
                                     ("CG", "城管中队", "Urban management squad", "urban_management"),
                                     ("SF", "司法所", "Judicial office", "judicial")):
            departments.append(Department(code=f"{street.code}-{suffix}", name=f"{street.name}{zh}",
                                          name_en=f"{street.name_en} {en}", kind=kind, region_id=street.id))
    db.session.add_all(departments)
    db.session.flush()
    people = [("admin", "admin", city, None), ("city", "city", city, None), ("district", "district", district, None),
              ("street", "street", first, None), ("police", "department", first, departments[0])]
    for i, community in enumerate(communities, 1):
        people.append((f"community{i}", "community", community, None))
        people.append((f"worker{i}", "grid_worker", community, None))
    created = []
    for username, role, region, department in people:
        password = secrets.token_urlsafe(9)
        user = User(username=username, display_name=f"Demo {role.replace('_', ' ')}", role=role, region_id=region.id,
                    department_id=department.id if department else None, password_hash=hash_password(password))
        db.session.add(user)
        created.append((user, password))
    db.session.flush()
    # grid workers: the first cells of their community as primary, the next as backup (AB岗)
    workers = [u for u, _ in created if u.role == "grid_worker"]
    for worker, community in zip(workers, communities):
        cells = db.session.scalars(select(Region).where(Region.parent_id == community.id,
                                                        Region.retired_at.is_(None)).order_by(Region.code).limit(6)).all()
        for cell in cells[:4]:
            db.session.add(GridAssignment(user_id=worker.id, region_id=cell.id, duty="primary"))
        other = workers[1 - workers.index(worker)] if len(workers) > 1 else None
        for cell in cells[4:6]:
            if other is not None:
                db.session.add(GridAssignment(user_id=other.id, region_id=cell.id, duty="backup"))
    db.session.commit()
    return [(u.username, u.role, pw) for u, pw in created]
