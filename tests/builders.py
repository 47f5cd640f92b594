"""Builders for test data: small, explicit, readable. Each commits what it builds."""
from __future__ import annotations

from dataclasses import dataclass

from shapely.geometry import MultiPolygon, box

from geo.geometry import geodesic_area_m2, to_db
from server.domain.territory import child_path
from server.extensions import db
from server.models import Department, GridAssignment, Region, User
from server.services.passwords import hash_password

PASSWORD = "correct horse battery"


def make_region(code: str, level: str, bounds: tuple[float, float, float, float], parent: Region | None = None,
                name: str | None = None) -> Region:
    """A region whose geometry is the lon/lat box ``bounds`` (minx, miny, maxx, maxy)."""
    geom = MultiPolygon([box(*bounds)])
    region = Region(code=code, name=name or f"区域{code}", name_en=f"Region {code}", level=level,
                    parent_id=parent.id if parent else None, geom=to_db(geom), area_m2=geodesic_area_m2(geom))
    db.session.add(region)
    db.session.flush()
    region.path = child_path(parent.path if parent else None, region.id)
    db.session.commit()
    return region


def make_department(code: str, region: Region, name: str | None = None) -> Department:
    department = Department(code=code, name=name or f"部门{code}", name_en=f"Department {code}", region_id=region.id)
    db.session.add(department)
    db.session.commit()
    return department


def make_user(username: str, role: str, region: Region, department: Department | None = None,
              password: str = PASSWORD) -> User:
    user = User(username=username, display_name=username.title(), role=role, region_id=region.id,
                department_id=department.id if department else None, password_hash=hash_password(password))
    db.session.add(user)
    db.session.commit()
    return user


def assign(worker: User, cell: Region, duty: str = "primary") -> GridAssignment:
    assignment = GridAssignment(user_id=worker.id, region_id=cell.id, duty=duty)
    db.session.add(assignment)
    db.session.commit()
    return assignment


@dataclass
class Tree:
    """A small city (near Los Angeles, lon -118.40..-118.20, lat 34.00..34.10):

    city C ── district D1 (west half) ── street S1 ── community K1 ── grids G1, G2
                                     └── street S2
           └── district D2 (east half) ── street S3 ── community K2 ── grid G3
    with one user per role scoped to the matching region, and a department in S1.
    """

    regions: dict
    users: dict
    department: Department

    def __getitem__(self, key):
        return self.regions.get(key) or self.users[key]


def build_tree() -> Tree:
    r = {}
    r["C"] = make_region("440100", "city", (-118.40, 34.00, -118.20, 34.10))
    r["D1"] = make_region("440101", "district", (-118.40, 34.00, -118.30, 34.10), r["C"])
    r["D2"] = make_region("440102", "district", (-118.30, 34.00, -118.20, 34.10), r["C"])
    r["S1"] = make_region("440101001", "street", (-118.40, 34.00, -118.35, 34.10), r["D1"])
    r["S2"] = make_region("440101002", "street", (-118.35, 34.00, -118.30, 34.10), r["D1"])
    r["S3"] = make_region("440102001", "street", (-118.30, 34.00, -118.20, 34.10), r["D2"])
    r["K1"] = make_region("440101001001", "community", (-118.40, 34.00, -118.35, 34.05), r["S1"])
    r["K2"] = make_region("440102001001", "community", (-118.30, 34.00, -118.25, 34.05), r["S3"])
    r["G1"] = make_region("44010100100101", "grid", (-118.40, 34.00, -118.375, 34.05), r["K1"])
    r["G2"] = make_region("44010100100102", "grid", (-118.375, 34.00, -118.35, 34.05), r["K1"])
    r["G3"] = make_region("44010200100101", "grid", (-118.30, 34.00, -118.25, 34.05), r["K2"])
    department = make_department("DEP-S1-POLICE", r["S1"], "派出所")
    u = {
        "admin": make_user("admin", "admin", r["C"]),
        "city": make_user("city", "city", r["C"]),
        "district": make_user("district1", "district", r["D1"]),
        "street": make_user("street1", "street", r["S1"]),
        "community": make_user("community1", "community", r["K1"]),
        "grid_worker": make_user("worker1", "grid_worker", r["K1"]),
        "department": make_user("police1", "department", r["S1"], department),
    }
    assign(u["grid_worker"], r["G1"], "primary")
    return Tree(regions=r, users=u, department=department)


def standard_categories() -> dict:
    """The standard categories (server/seed/categories.json), seeded; by code ("01", "0101", …)."""
    from sqlalchemy import select

    from server.models import Category
    from server.services.categories import seed_categories

    seed_categories()
    return {c.code: c for c in db.session.scalars(select(Category))}
