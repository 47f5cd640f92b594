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
from sqlalchemy import select, text

from geo.geometry import as_multipolygon
from server.config import PROJECT_ROOT
from server.domain.permissions import SYSTEM, Actor
from server.extensions import db
from server.models import Department, GridAssignment, Incident, Region, User

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
    say("Demo incidents through the closed loop …")
    incidents = _incidents()
    say("A patrol with a check-in, and a safety inspection campaign …")
    field = _field_work()
    say("An Open311 client app and two citizens' requests …")
    citizens = _citizens()
    return {"created": True, "users": users, "categories": categories, "incidents": incidents, **field, **citizens}


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


# (category, description) of the demo's reports; the stages they are taken to cycle.
_DEMO_REPORTS = (
    ("0101", "路口垃圾桶旁堆放生活垃圾"), ("0109", "围墙上有新的涂鸦"), ("0202", "路灯夜间不亮"),
    ("0303", "机动车占用人行道停放"), ("0201", "井盖缺失，存在安全隐患"), ("0701", "夜间商铺音响噪声扰民"),
    ("0601", "楼上漏水引发邻里纠纷"), ("0402", "大风后树木倒伏"), ("0907", "空地被倾倒建筑垃圾"),
    ("0802", "独居老人需要探访"), ("0504", "楼道内电动自行车充电"), ("1002", "工地未覆盖产生扬尘"),
)
_DEMO_ATTRIBUTES = {"0201": {"damage": "missing"}, "0601": {"parties_count": 2, "dispute_type": "water_leak"},
                    "0701": {"source": "shop"}}
_DEMO_STAGES = ("reported", "accepted", "dispatched", "acknowledged", "resolved", "closed", "closed", "in_progress")


def _actor(user: User) -> Actor:
    return Actor(user_id=user.id, role=user.role, scope_path=user.region.path, department_id=user.department_id)


def _incidents(per_worker: int = 24) -> int:
    """Report incidents at points in the demo workers' cells and take them through the
    closed loop with the real use cases, so lists, tasks and the map have something to show."""
    from . import incidents

    made = 0
    workers = db.session.scalars(select(User).where(User.role == "grid_worker").order_by(User.username)).all()
    for n, worker in enumerate(workers, 1):
        supervisor = db.session.scalar(select(User).where(User.role == "community", User.region_id == worker.region_id))
        cells = [a.region_id for a in db.session.scalars(select(GridAssignment).where(
            GridAssignment.user_id == worker.id, GridAssignment.duty == "primary").order_by(GridAssignment.region_id))]
        points = db.session.execute(text(
            "SELECT ST_X(p.geom), ST_Y(p.geom) FROM regions r, "
            "LATERAL ST_Dump(ST_GeneratePoints(r.geom, :n, :seed)) p WHERE r.id = ANY(:cells) ORDER BY r.id, p.path"
        ), {"n": per_worker // len(cells) + 1, "seed": n, "cells": cells}).all()[:per_worker]
        for i, (lon, lat) in enumerate(points):
            code, description = _DEMO_REPORTS[i % len(_DEMO_REPORTS)]
            report = {"client_uuid": None, "category": code, "description": description,
                      "location": {"type": "Point", "coordinates": [lon, lat]}, "crs": "wgs84", "occurred_at": None,
                      "priority": None, "attributes": _DEMO_ATTRIBUTES.get(code, {}), "address": None,
                      "source": "phone", "contact": None, "resolve_on_spot": False, "resolution_note": None}
            body, _ = incidents.report_incident(_actor(worker), report, [], None, render=lambda view: {"id": view.id})
            _take_to(_DEMO_STAGES[i % len(_DEMO_STAGES)], body["id"], worker, supervisor)
            made += 1
    return made


def _take_to(stage: str, incident_id: int, worker: User, supervisor: User) -> None:
    from . import incidents, photos

    steps = {
        "reported": [], "accepted": [("accept", {})],
        "dispatched": [("accept", {}), ("dispatch", {"assignee_id": worker.id})],
        "acknowledged": [("accept", {}), ("dispatch", {"assignee_id": worker.id}), ("acknowledge", {})],
        "in_progress": [("accept", {}), ("dispatch", {"assignee_id": worker.id}), ("acknowledge", {}), ("start", {})],
    }
    path = steps.get(stage, steps["in_progress"])
    for action, data in path:
        who = worker if action in ("acknowledge", "start") else supervisor
        _step(incidents, who, incident_id, action, data)
    if stage in ("resolved", "closed"):
        if db.session.get(Incident, incident_id).category.requires_after_photo:
            photos.upload_photo(_actor(worker), incident_id, "after", _demo_photo())
        _step(incidents, worker, incident_id, "resolve", {"note": "已处置"})
        if stage == "closed":
            _step(incidents, supervisor, incident_id, "verify", {})


def _demo_photo() -> bytes:
    """A plain 320×240 JPEG standing in for a worker's after photo."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 140, 90)).save(out, "JPEG", quality=80)
    return out.getvalue()


def _step(incidents, user: User, incident_id: int, action: str, data: dict) -> None:
    version = db.session.get(Incident, incident_id).version
    incidents.act(_actor(user), incident_id, action, {"version": version, **data})


def _field_work() -> dict:
    """The first worker's patrol of the last two hours through their cells (a fix every 10
    seconds, with a check-in at a place in the first cell), and a safety-hazard campaign
    (排查) for the first street, one of its cells already answered "nothing found"."""
    import uuid
    from datetime import timedelta

    from server.models._base import utcnow

    from . import campaigns, patrol_places, patrols

    now = utcnow()
    worker = db.session.scalar(select(User).where(User.username == "worker1"))
    community = db.session.scalar(select(User).where(User.username == "community1"))
    street = db.session.scalar(select(User).where(User.username == "street"))
    cells = [a.region_id for a in db.session.scalars(select(GridAssignment).where(
        GridAssignment.user_id == worker.id, GridAssignment.duty == "primary").order_by(GridAssignment.region_id))]
    # a walk from cell to cell through points inside each, 720 fixes over two hours
    walk = db.session.execute(text(
        "SELECT ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat FROM (SELECT ST_MakeLine(ST_PointOnSurface(geom) "
        "ORDER BY id) AS line FROM regions WHERE id = ANY(:cells)) w, "
        "LATERAL ST_Dump(ST_LineInterpolatePoints(w.line, 1.0 / 720)) p ORDER BY p.path"), {"cells": cells}).all()
    started = now - timedelta(hours=2)
    patrol, _ = patrols.start_patrol(_actor(worker), {"client_uuid": uuid.uuid4(), "started_at": started})
    fixes = [{"t": started + timedelta(seconds=10 * (i + 1)), "lon": lon, "lat": lat, "accuracy_m": 6.0}
             for i, (lon, lat) in enumerate(walk)]
    for first in range(0, len(fixes), 500):
        patrols.add_points(_actor(worker), patrol.id, fixes[first:first + 500])
    gate = fixes[len(fixes) // (2 * max(1, len(cells)))]
    place = patrol_places.create_place(_actor(community), {
        "name": "社区服务中心门口", "name_en": "Community service centre gate", "radius_m": 50,
        "location": {"type": "Point", "coordinates": [gate["lon"], gate["lat"]]}})
    patrol_places.check_in(_actor(worker), patrol.id, {
        "client_uuid": uuid.uuid4(), "place_id": place.id, "t": gate["t"], "accuracy_m": 6.0,
        "location": {"type": "Point", "coordinates": [gate["lon"], gate["lat"]]}})
    patrols.end_patrol(_actor(worker), patrol.id, now - timedelta(minutes=1))
    campaign, _ = campaigns.launch_campaign(_actor(street), {
        "client_uuid": uuid.uuid4(), "region_id": street.region_id, "title": "燃气与消防安全隐患排查",
        "category_groups": ["05"], "deadline": now + timedelta(days=3)})
    task_id = db.session.scalar(text(
        "SELECT id FROM campaign_tasks WHERE campaign_id = :c AND assignee_id = :w ORDER BY cell_id LIMIT 1"),
        {"c": campaign.id, "w": worker.id})
    if task_id is not None:
        campaigns.report_nothing_found(_actor(worker), campaign.id, task_id, _demo_photo(), "已逐户排查，未发现隐患")
    return {"patrol_points": len(fixes), "campaign_id": campaign.id}


def _citizens() -> dict:
    """An Open311 client app (its key printed with the demo users) and two citizens' requests
    through it: one at a point in the first worker's first cell, one with an address only,
    waiting in the command centre's queue (docs/OPEN311.md)."""
    from werkzeug.datastructures import MultiDict

    from server.models._base import utcnow

    from . import open311_clients, open311_intake

    app = open311_clients.issue(SYSTEM, {"name": "随手拍（演示）", "contact": None, "rate_per_minute": 60})
    client = open311_clients.authenticate(app["api_key"], utcnow())
    worker = db.session.scalar(select(User).where(User.username == "worker1"))
    point = db.session.execute(text(
        "SELECT ST_X(ST_PointOnSurface(r.geom)) AS lon, ST_Y(ST_PointOnSurface(r.geom)) AS lat FROM regions r "
        "JOIN grid_assignments a ON a.region_id = r.id WHERE a.user_id = :w ORDER BY r.id LIMIT 1"),
        {"w": worker.id}).one()
    located, _ = open311_intake.submit_request(client, MultiDict({
        "service_code": "0101", "lat": str(point.lat), "long": str(point.lon), "description": "小区门口垃圾桶满了，没人清",
        "first_name": "小红", "last_name": "王", "phone": "13800000001"}), utcnow())
    waiting, _ = open311_intake.submit_request(client, MultiDict({
        "service_code": "0201", "address_string": "第五街与百老汇交叉口东北角", "attribute[damage]": "broken",
        "description": "井盖松动，踩上去会晃"}), utcnow())
    return {"open311_key": app["api_key"], "open311_request_id": located[0]["service_request_id"],
            "open311_token": waiting[0]["token"]}
