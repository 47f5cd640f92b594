"""Object-level authorisation (OWASP API1, BOLA): every route that takes an object's id,
for every role, with an object inside the actor's scope and one outside it.

The world is built once for the module: the small city of ``tests.builders`` (its west
half, side "A", is inside every role's scope; its east half, side "B", is outside all but
the administrator's and the city's), a second city (side "Z", outside the city role's), and
objects of other people (side "X": another user's export, phone, inbox). Expectations are
written out by hand in ``CASES``, one status per role (``ROLES`` order):

- inside: the status written (2xx, or 403 where the role may look but not act);
- outside: 404 with the code written, the same status, code and message as for an id
  that does not exist at all (nothing tells the two apart), and nothing of the object
  in the body;
- each id of a route with two (a photo of an incident, a task of a campaign, a worker's
  cell or leave) is put outside on its own, the other inside.

``test_the_table_covers_every_route_with_a_path_parameter`` fails for a new route that
takes an id until it has its line here.
"""
from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Callable

import mapbox_vector_tile
import pytest
import requests
from sqlalchemy import func, select, text

from server.extensions import db
from server.models import (
    Category, Department, EscalationOverride, GridAssignment, Incident, IncidentPhoto, Leave, Mediation, Notification,
    Open311Request, Patrol, Region, User,
)
from server.models._base import utcnow
from server.services import export_jobs
from server.services.calendar import forget_cached_entries
from server.services.deadlines import forget_cached_overrides
from server.services.photos import blob_store
from server.storage import photo_key
from tests.builders import PASSWORD, assign, build_tree, make_department, make_region, make_user, standard_categories
from tests.conftest import KEEP_TABLES, ApiClient
from tests.images import jpeg
from tests.incident_builders import make_incident, make_task, point_in

ROLES = ("admin", "city", "district", "street", "community", "grid_worker", "department")
NOWHERE = 2_147_483_000  # an id no object has (within the 32-bit range the routes take)
# kinds of objects that belong to a person rather than a region: outside is someone else's
PERSONAL = frozenset({"export", "device", "notification"})


def outside_side(kind: str, role: str) -> str | None:
    """Where an object of ``kind`` outside ``role``'s reach lives (None: nowhere)."""
    if kind in PERSONAL:
        return "X"
    return {"admin": None, "city": "Z"}.get(role, "B")


# ---------------------------------------------------------------- the world

@dataclass
class World:
    base: str
    objects: dict = field(default_factory=dict)  # kind → side (or "side:role") → id
    clients: dict = field(default_factory=dict)  # role (or user name) → ApiClient
    secrets: list = field(default_factory=list)  # strings of objects outside A: never in a refusal
    fresh: dict = field(default_factory=dict)  # kind → id made by a case's prepare, for one request

    def add(self, kind: str, side: str, obj_id: int) -> int:
        self.objects.setdefault(kind, {})[side] = obj_id
        return obj_id

    def id(self, kind: str, role: str, side: str) -> int | None:
        if side == "none":
            return NOWHERE
        if side == "in" and kind in self.fresh:
            return self.fresh[kind]
        sides = self.objects.get(kind, {})
        if side == "in":
            return sides.get(f"A:{role}") or sides["A"]
        where = sides.get(f"out:{role}") and f"out:{role}" or outside_side(kind, role)
        return None if where is None else sides.get(where)


def _truncate() -> None:
    db.session.rollback()
    tables = [t.name for t in reversed(db.metadata.sorted_tables) if t.name not in KEEP_TABLES]
    db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    db.session.commit()
    forget_cached_entries()
    forget_cached_overrides()


def _photo(incident: Incident, image: bytes) -> int:
    sha = hashlib.sha256(image).hexdigest()
    for variant in ("orig", "public"):
        blob_store().put(photo_key(sha, variant), image, "image/jpeg")
    photo = IncidentPhoto(incident_id=incident.id, kind="report", content_type="image/jpeg", size_bytes=len(image),
                          sha256=sha, width=64, height=48)
    db.session.add(photo)
    db.session.commit()
    return photo.id


def _ok(response: requests.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json() if response.content else {}


def _client(base: str, user: User) -> ApiClient:
    return ApiClient(base).login(user.username, PASSWORD)


@pytest.fixture(scope="module")
def world(app, live_server):
    _truncate()
    w = World(live_server)
    tree = build_tree()
    categories = standard_categories()
    r, u = tree.regions, tree.users
    # the east half: people and a department of their own
    worker2 = make_user("worker2", "grid_worker", r["K1"])  # the same community as worker1, another person
    assign(worker2, r["G2"], "primary")
    worker3 = make_user("worker3-east", "grid_worker", r["K2"])
    assign(worker3, r["G3"], "primary")
    dep3 = make_department("DEP-EAST-SECRET", r["S3"], "东区秘密部门")
    make_user("police3-east", "department", r["S3"], dep3)
    dep_k1 = make_department("DEP-K1", r["K1"], "社区调解室")
    # a second city
    z = {"C": make_region("449900", "city", (-117.40, 34.00, -117.20, 34.10), name="外市秘密")}
    z["D"] = make_region("449901", "district", (-117.40, 34.00, -117.30, 34.10), z["C"], name="外市区")
    z["S"] = make_region("449901001", "street", (-117.40, 34.00, -117.35, 34.10), z["D"], name="外市街道")
    z["K"] = make_region("449901001001", "community", (-117.40, 34.00, -117.35, 34.05), z["S"], name="外市社区")
    z["G"] = make_region("44990100100101", "grid", (-117.40, 34.00, -117.375, 34.05), z["K"], name="外市网格")
    worker9 = make_user("worker9-other-city", "grid_worker", z["K"])
    assign(worker9, z["G"], "primary")
    dep9 = make_department("DEP-Z-SECRET", z["S"], "外市秘密部门")
    make_user("police9-other-city", "department", z["S"], dep9)
    w.secrets += [worker2.username, worker3.username, worker9.username, "police3-east", "police9-other-city",
                  dep3.code, dep3.name, dep9.code, dep9.name]
    for key in ("D2", "S3", "K2", "G3"):
        w.secrets += [r[key].code, r[key].name]
    for region in z.values():
        w.secrets += [region.code, region.name]

    for side, k, g in (("A", r["K1"], r["G1"]), ("B", r["K2"], r["G3"]), ("Z", z["K"], z["G"])):
        w.add("K", side, k.id)
        w.add("G", side, g.id)
    # a cell of K1 for giving worker1 and taking it back (nothing else there)
    w.add("cell", "A", make_region("44010100100199", "grid", (-118.36, 34.04, -118.35, 34.05), r["K1"]).id)
    w.add("cell", "B", r["G3"].id)
    w.add("cell", "Z", z["G"].id)
    for side, user in (("A", u["grid_worker"]), ("A:department", u["department"]), ("B", worker3), ("Z", worker9)):
        w.add("user", side, user.id)
    for side, department in (("A", tree.department), ("A:community", dep_k1), ("A:grid_worker", dep_k1),
                             ("B", dep3), ("Z", dep9)):
        w.add("department", side, department.id)
    w.add("category", "A", categories["0101"].id)
    # regions outside have an override a DELETE without authorisation would remove
    for k in (r["K2"], z["K"]):
        db.session.add(EscalationOverride(region_id=k.id, category_id=None, policy={"yellow_ratio": 0.8}))
    db.session.commit()

    # incidents: each side's case dispatched to its side's department, with a photo; a dispute likewise
    event, dispute = categories["0101"], categories["0601"]
    sides = {"A": (r["G1"], u["grid_worker"], tree.department), "B": (r["G3"], worker3, dep3),
             "Z": (z["G"], worker9, dep9)}
    for n, (side, (cell, reporter, department)) in enumerate(sides.items()):
        secret = "" if side == "A" else f"秘密{side}"
        for kind, category in (("incident", event), ("dispute", dispute)):
            incident = make_incident(category, cell, reporter, status="dispatched",
                                     description=f"{secret}描述{kind}", address=f"{secret}地址{kind}")
            make_task(incident, department=department)
            w.add(kind, side, incident.id)
            if secret:
                w.secrets += [incident.description, incident.address]
        w.add("photo", side, _photo(db.session.get(Incident, w.objects["incident"][side]), jpeg(colour=(n, 1, 1))))
    other = make_incident(event, r["G2"], worker2, status="accepted", description="同社区另一案件")
    w.add("incident", "out:department", other.id)  # in the department's street, never dispatched to it
    w.add("photo", "A2", _photo(other, jpeg(colour=(9, 9, 9))))

    # people's clients
    for role in ROLES:
        w.clients[role] = _client(w.base, u[role])
    for user in (worker2, worker3, worker9):
        w.clients[user.username] = _client(w.base, user)
    admin, street, community = w.clients["admin"], w.clients["street"], w.clients["community"]

    # inspection campaigns: S1 (A) by its street, S3 (B) and the other city's street (Z) by the administrator;
    # each cell's worker answers "nothing found" with a photo
    from tests.campaign_builders import campaign_body

    for side, client, region, answerer in (("A", street, r["S1"], "grid_worker"),
                                           ("B", admin, r["S3"], worker3.username),
                                           ("Z", admin, z["S"], worker9.username)):
        title = "排查" if side == "A" else f"秘密排查{side}"
        campaign = _ok(client.post("/api/v1/campaigns", json=campaign_body(region, title=title)), 201)
        w.add("campaign", side, campaign["id"])
        tasks = _ok(client.get(f"/api/v1/campaigns/{campaign['id']}/tasks", params={"page_size": 500}))["items"]
        by_cell = {t["cell"]["code"]: t["id"] for t in tasks}
        cell = {"A": r["G1"], "B": r["G3"], "Z": z["G"]}[side]
        w.add("task", side, by_cell[cell.code])
        if side == "A":
            w.add("task", "out:grid_worker", by_cell[r["G2"].code])  # worker2's task of the same campaign
        else:
            w.secrets.append(title)
        task_url = f"/api/v1/campaigns/{campaign['id']}/tasks/{by_cell[cell.code]}"
        _ok(w.clients[answerer].post(task_url + "/nothing-found",
                                     files={"photo": ("cell.jpg", jpeg(colour=(1, 2, 3)), "image/jpeg")}))

    # patrols, ended: worker1's (A), worker2's (the same community), worker3's (B), worker9's (Z)
    t0 = utcnow() - timedelta(hours=3)
    for side, name in (("A", "grid_worker"), ("out:grid_worker", worker2.username), ("B", worker3.username),
                       ("Z", worker9.username)):
        client = w.clients[name]
        patrol = _ok(client.post("/api/v1/patrols", json={"client_uuid": str(uuid.uuid4()),
                                                          "started_at": t0.isoformat()}), 201)
        _ok(client.post(f"/api/v1/patrols/{patrol['id']}/end",
                        json={"ended_at": (t0 + timedelta(hours=1)).isoformat()}))
        w.add("patrol", side, patrol["id"])
    for side, client, cell in (("A", community, r["G1"]), ("B", admin, r["G3"]), ("Z", admin, z["G"])):
        centre = point_in(cell)
        place = _ok(client.post("/api/v1/patrol-places", json={
            "name": "打卡点" if side == "A" else f"秘密打卡点{side}",
            "location": {"type": "Point", "coordinates": [centre.x, centre.y]}, "radius_m": 50}), 201)
        w.add("place", side, place["id"])

    # leave: worker1's (A, recorded by the community), worker3's and worker9's (by the administrator)
    start = utcnow() + timedelta(days=200)
    for side, client, user in (("A", community, u["grid_worker"]), ("B", admin, worker3), ("Z", admin, worker9)):
        leave = _ok(client.post(f"/api/v1/users/{user.id}/leaves", json={
            "starts_at": start.isoformat(), "ends_at": (start + timedelta(days=1)).isoformat(),
            "reason": "事假" if side == "A" else f"秘密事由{side}"}), 201)
        w.add("leave", side, leave["id"])

    # people's own things: an export job (done, so an inbox entry too) and a phone, for each role and worker3
    for name in (*ROLES, worker3.username):
        client = w.clients[name]
        side = "X" if name == worker3.username else f"A:{name}"
        job = _ok(client.post("/api/v1/exports", json={"kind": "incidents", "format": "csv"}), 202)
        w.add("export", side, job["id"])
        device = _ok(client.post("/api/v1/me/devices", json={
            "token": f"token-of-{name}-{uuid.uuid4()}", "platform": "android"}), 201)
        w.add("device", side, device["id"])
    while export_jobs.work().done:
        pass
    db.session.rollback()
    for name, user_id in [(role, u[role].id) for role in ROLES] + [("X", worker3.id)]:
        side = "X" if name == "X" else f"A:{name}"
        w.add("notification", side, db.session.scalar(select(Notification.id).where(Notification.user_id == user_id)))

    # Open311: a client app (for the unlocated queue)
    w.open311_key = _ok(admin.post("/api/v1/open311/clients", json={"name": "随手拍"}), 201)["api_key"]
    w.add("client", "A", db.session.scalar(text("SELECT max(id) FROM open311_clients")))
    w.tree, w.z = tree, z
    yield w


# ---------------------------------------------------------------- preparations (a fresh object for a case)

def fresh_cell(w: World, role: str) -> dict:
    k1 = db.session.get(Region, w.objects["K"]["A"])
    cell = make_region(f"TMP{uuid.uuid4().hex[:10]}", "grid", (-118.40, 34.00, -118.39, 34.01), k1)
    return {"G": cell.id}


def fresh_department(w: World, role: str) -> dict:
    k1 = db.session.get(Region, w.objects["K"]["A"])
    return {"department": make_department(f"TMP-{uuid.uuid4().hex[:8]}", k1).id}


def fresh_category(w: World, role: str) -> dict:
    from tests.incident_builders import make_category

    return {"category": make_category(f"T{uuid.uuid4().hex[:6]}", db.session.get(Category, w.objects["category"]["A"])
                                      .parent).id}


def fresh_override(w: World, role: str) -> dict:
    db.session.rollback()
    k1 = w.objects["K"]["A"]
    if db.session.scalar(select(EscalationOverride.id).where(EscalationOverride.region_id == k1)) is None:
        db.session.add(EscalationOverride(region_id=k1, category_id=None, policy={"yellow_ratio": 0.7}))
        db.session.commit()
    forget_cached_overrides()
    return {}


def fresh_backup_cell(w: World, role: str) -> dict:
    db.session.rollback()
    worker, cell = w.objects["user"]["A"], w.objects["cell"]["A"]
    if db.session.get(GridAssignment, (worker, cell)) is None:
        db.session.add(GridAssignment(user_id=worker, region_id=cell, duty="backup"))
        db.session.commit()
    return {}


def fresh_campaign(w: World, role: str) -> dict:
    from tests.campaign_builders import campaign_body

    made = _ok(w.clients["admin"].post("/api/v1/campaigns", json=campaign_body(w.tree["K1"])), 201)
    return {"campaign": made["id"]}


def fresh_device(w: World, role: str) -> dict:
    made = _ok(w.clients[role].post("/api/v1/me/devices", json={"token": f"fresh-{uuid.uuid4()}",
                                                                 "platform": "ios"}), 201)
    return {"device": made["id"]}


def fresh_place(w: World, role: str) -> dict:
    centre = point_in(w.tree["G1"], 0.2, 0.2)
    made = _ok(w.clients["admin"].post("/api/v1/patrol-places", json={
        "name": "临时", "location": {"type": "Point", "coordinates": [centre.x, centre.y]}, "radius_m": 20}), 201)
    return {"place": made["id"]}


def fresh_unlocated(w: World, role: str) -> dict:
    answer = requests.post(f"{w.base}/open311/v2/requests.json", timeout=30, data={
        "api_key": w.open311_key, "service_code": "0201", "attribute[damage]": "missing",
        "address_string": f"解放路 {uuid.uuid4().hex[:6]} 号"})
    token = answer.json()[0]["token"]
    db.session.rollback()
    return {"unlocated": db.session.scalar(select(Open311Request.id).where(Open311Request.token == uuid.UUID(token)))}


def fresh_client(w: World, role: str) -> dict:
    made = _ok(w.clients["admin"].post("/api/v1/open311/clients", json={"name": "临时客户端"}), 201)
    return {"client": made["id"]}


def fresh_mediation(w: World, role: str) -> dict:
    db.session.rollback()
    dispute = w.objects["dispute"]["A"]
    if db.session.get(Mediation, dispute) is None:
        db.session.add(Mediation(incident_id=dispute, mode="people", parties_count=2))
        db.session.commit()
    return {}


# ---------------------------------------------------------------- bodies (a valid body, so the check is reached)

def version_of(model, obj_id: int | None) -> int:
    db.session.rollback()
    found = db.session.get(model, obj_id) if obj_id else None
    return found.version if found is not None else 1


def same_name(model):
    """A change of name to the name it has (so nothing changes but the version)."""
    attribute = "display_name" if model is User else "name"

    def body(w, role, ids):
        db.session.rollback()
        found = db.session.get(model, ids[0])
        return {"json": {attribute: getattr(found, attribute) if found is not None else "名称",
                         "version": version_of(model, ids[0])}}
    return body


def incident_version(w, role, ids):
    return version_of(Incident, ids[0])


def leave_period(w, role, ids):
    start = utcnow() + timedelta(days=10 + 3 * ROLES.index(role))
    return {"json": {"starts_at": start.isoformat(), "ends_at": (start + timedelta(days=1)).isoformat()}}


def photo_upload(w, role, ids):
    return {"data": {"kind": "report"},
            "files": {"file": ("p.jpg", jpeg(colour=(ROLES.index(role) * 30, 200, 7)), "image/jpeg")}}


def checkin(w, role, ids):
    centre = point_in(w.tree["G1"])
    return {"json": {"client_uuid": str(uuid.uuid4()), "place_id": w.objects["place"]["A"],
                     "t": (utcnow() - timedelta(hours=2, minutes=30)).isoformat(),
                     "location": {"type": "Point", "coordinates": [centre.x, centre.y]}, "accuracy_m": 5}}


def points(w, role, ids):
    t = utcnow() - timedelta(hours=2, minutes=50)
    return {"json": {"points": [{"t": t.isoformat(), "lon": -118.39, "lat": 34.02, "accuracy_m": 5}]}}


def place_body(w, role, ids):
    centre = point_in(w.tree["G1"])
    return {"json": {"location": {"type": "Point", "coordinates": [centre.x, centre.y]}}}


def json_body(body: dict):
    return lambda w, role, ids: {"json": body}


def query(params: dict):
    return lambda w, role, ids: {"params": params}


LAST_QUARTER = (date.today().replace(day=1) - timedelta(days=95))
PERIOD = {"from": (date.today() - timedelta(days=30)).isoformat(), "to": date.today().isoformat()}


# ---------------------------------------------------------------- the table

@dataclass(frozen=True)
class Case:
    method: str
    rule: str  # the route as the URL map writes it
    kinds: tuple  # what each path parameter is: an object kind, or "=value" for a fixed one
    inside: str  # the status for each role, in ROLES order; "422:code" where it is not a plain status
    outside: str | None  # the not-found code of the first id outside; None: no object has a scope
    body: Callable | None = None
    prepare: Callable | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.rule

    def expected(self, role: str) -> tuple[int, str | None]:
        status, _, code = self.inside.split()[ROLES.index(role)].partition(":")
        return int(status), code or None


R = "/api/v1/regions/<id:region_id>"
S = "/api/v1/stats/regions/<id:region_id>"
U = "/api/v1/users/<id:user_id>"
C = "/api/v1/campaigns/<id:campaign_id>"
T = C + "/tasks/<id:task_id>"
I = "/api/v1/incidents/<id:incident_id>"
P = "/api/v1/patrols/<id:patrol_id>"
EVERYONE = "200 200 200 200 200 200 200"
MANAGERS = "200 200 200 200 200 403 403"
STATS = dict(kinds=("K",), inside=MANAGERS, outside="region.not_found")
#     roles: admin city district street community grid_worker department
CASES = [
    # regions (K: a community, G: a grid cell)
    Case("GET", R, ("K",), EVERYONE, "region.not_found"),
    Case("PATCH", R, ("G",), MANAGERS, "region.not_found", same_name(Region)),
    Case("POST", R + "/retire", ("G",), MANAGERS, "region.not_found", json_body({}), fresh_cell),
    Case("POST", R + "/grids", ("G",), " ".join(["422:region.wrong_level"] * 5 + ["403", "403"]), "region.not_found",
         json_body({"target_area_m2": 5_000_000})),
    Case("GET", R + "/coverage", ("K",), EVERYONE, "region.not_found"),
    Case("GET", R + "/escalation-overrides", ("K",), EVERYONE, "region.not_found"),
    Case("PUT", R + "/escalation-overrides", ("K",), MANAGERS, "region.not_found",
         json_body({"policy": {"yellow_ratio": 0.7}})),
    Case("DELETE", R + "/escalation-overrides", ("K",), "204 204 204 204 204 403 403", "region.not_found",
         prepare=fresh_override),
    Case("GET", R + "/escalation-policy", ("K",), EVERYONE, "region.not_found", query({"category": "0101"})),
    Case("GET", R + "/patrol-coverage", ("K",), MANAGERS, "region.not_found"),
    Case("GET", R + "/patrol-coverage.geojson", ("K",), MANAGERS, "region.not_found"),
    Case("GET", R + "/workload", ("K",), MANAGERS, "region.not_found"),
    Case("GET", "/api/v1/reports/regions/<id:region_id>/quarterly", ("K",), MANAGERS, "region.not_found",
         query({"year": LAST_QUARTER.year, "quarter": (LAST_QUARTER.month - 1) // 3 + 1, "format": "html"})),
    Case("GET", S, body=query(PERIOD), **STATS),
    Case("GET", S + "/export.csv", body=query(PERIOD), **STATS),
    Case("GET", S + "/export.xlsx", body=query(PERIOD), **STATS),
    Case("GET", S + "/departments", body=query(PERIOD), **STATS),
    Case("GET", S + "/departments/export.csv", body=query(PERIOD), **STATS),
    Case("GET", S + "/workers", body=query(PERIOD), **STATS),
    Case("GET", S + "/workers/export.csv", body=query(PERIOD), **STATS),
    Case("GET", S + "/hotspots", body=query({"level": "grid"}), **STATS),
    Case("GET", S + "/trends", body=query(PERIOD), **STATS),
    Case("GET", S + "/missed-reports", body=query(PERIOD), **STATS),
    # people (a grid worker of the community; a department handler is shown only themselves)
    Case("GET", U, ("user",), EVERYONE, "user.not_found"),
    Case("PATCH", U, ("user",), MANAGERS, "user.not_found", same_name(User)),
    Case("GET", U + "/cells", ("user",), EVERYONE, "user.not_found"),
    Case("PUT", U + "/cells/<id:region_id>", ("user", "cell"), MANAGERS, "user.not_found",
         json_body({"duty": "backup"})),
    Case("DELETE", U + "/cells/<id:region_id>", ("user", "cell"), "204 204 204 204 204 403 403", "user.not_found",
         prepare=fresh_backup_cell),
    Case("GET", U + "/leaves", ("user",), EVERYONE, "user.not_found"),
    Case("POST", U + "/leaves", ("user",), "201 201 201 201 201 403 403", "user.not_found", leave_period),
    Case("DELETE", U + "/leaves/<id:leave_id>", ("user", "leave"), "204 204 204 204 204 403 403", "user.not_found"),
    Case("GET", "/api/v1/departments/<id:department_id>", ("department",), EVERYONE, "department.not_found"),
    Case("PATCH", "/api/v1/departments/<id:department_id>", ("department",), MANAGERS, "department.not_found",
         same_name(Department)),
    Case("POST", "/api/v1/departments/<id:department_id>/retire", ("department",), MANAGERS, "department.not_found",
         prepare=fresh_department),
    Case("DELETE", "/api/v1/patrol-places/<id:place_id>", ("place",), "204 204 204 204 204 403 403",
         "place.not_found", prepare=fresh_place),
    # the taxonomy and the calendar are the city's: function-level rights, no scope
    Case("GET", "/api/v1/categories/<id:category_id>", ("category",), EVERYONE, None),
    Case("PATCH", "/api/v1/categories/<id:category_id>", ("category",), "200 403 403 403 403 403 403", None,
         same_name(Category)),
    Case("POST", "/api/v1/categories/<id:category_id>/retire", ("category",), "200 403 403 403 403 403 403", None,
         prepare=fresh_category),
    Case("PUT", "/api/v1/calendar/days/<date:day>", ("=2031-01-02",), "200 403 403 403 403 403 403", None,
         json_body({"is_workday": False, "name": "本地停工"})),
    Case("DELETE", "/api/v1/calendar/days/<date:day>", ("=2031-01-02",), "200 403 403 403 403 403 403", None),
    # incidents (each side's case is dispatched to that side's department)
    Case("GET", I, ("incident",), EVERYONE, "incident.not_found"),
    Case("POST", I + "/actions/<string:action>", ("incident", "=comment"), EVERYONE, "incident.not_found",
         json_body({"note": "看过"})),
    Case("GET", I + "/dispatch-targets", ("incident",), MANAGERS, "incident.not_found"),
    Case("PUT", I + "/mediation", ("dispute",), "200 200 200 200 200 403 200", "incident.not_found",
         lambda w, role, ids: {"json": {"mode": "people", "parties_count": 2,
                                        "version": incident_version(w, role, ids)}}),
    Case("POST", I + "/mediation/sessions", ("dispute",), "200 200 200 200 200 403 200", "incident.not_found",
         lambda w, role, ids: {"json": {"held_on": date.today().isoformat(), "outcome": "adjourned",
                                        "version": incident_version(w, role, ids)}}, fresh_mediation),
    Case("POST", I + "/photos", ("incident",), "201 201 201 201 201 201 201", "incident.not_found", photo_upload),
    Case("GET", I + "/photos/<id:photo_id>", ("incident", "photo"), EVERYONE, "incident.not_found"),
    # inspection campaigns (A: the street's; a department handler takes no part)
    Case("GET", C, ("campaign",), "200 200 200 200 200 200 404", "campaign.not_found"),
    Case("GET", C + "/cells.geojson", ("campaign",), "200 200 200 200 200 200 404", "campaign.not_found"),
    Case("GET", C + "/tasks", ("campaign",), "200 200 200 200 200 200 404", "campaign.not_found"),
    Case("POST", C + "/close", ("campaign",), "200 200 200 200 200 403 404", "campaign.not_found",
         prepare=fresh_campaign),
    Case("GET", T, ("campaign", "task"), "200 200 200 200 200 200 404", "campaign.task_not_found"),
    Case("GET", T + "/photo", ("campaign", "task"), "200 200 200 200 200 200 404", "campaign.task_not_found"),
    Case("POST", T + "/nothing-found", ("campaign", "task"), "403 403 403 403 403 200 404", "campaign.task_not_found",
         lambda w, role, ids: {"files": {"photo": ("cell.jpg", jpeg(colour=(1, 2, 3)), "image/jpeg")}}),
    # patrols (ended an hour after they began: late points and check-ins of that hour are still taken)
    Case("GET", P, ("patrol",), "200 200 200 200 200 200 404", "patrol.not_found"),
    Case("POST", P + "/end", ("patrol",), "403 403 403 403 403 200 404", "patrol.not_found", json_body({})),
    Case("POST", P + "/points", ("patrol",), "403 403 403 403 403 200 404", "patrol.not_found", points),
    Case("POST", P + "/checkins", ("patrol",), "403 403 403 403 403 201 404", "patrol.not_found",
         checkin),
    # one's own things
    Case("GET", "/api/v1/exports/<id:job_id>", ("export",), EVERYONE, "export.not_found"),
    Case("GET", "/api/v1/exports/<id:job_id>/file", ("export",), EVERYONE, "export.not_found"),
    Case("DELETE", "/api/v1/me/devices/<id:device_id>", ("device",), "204 204 204 204 204 204 204",
         "device.not_found", prepare=fresh_device),
    Case("POST", "/api/v1/me/notifications/<id:notification_id>/read", ("notification",), EVERYONE,
         "notification.not_found"),
    # Open311's staff side: administrators (keys), the city's command centre (the unlocated queue)
    Case("DELETE", "/api/v1/open311/clients/<id:client_id>", ("client",), "200 403 403 403 403 403 403", None,
         prepare=fresh_client),
    Case("POST", "/api/v1/open311/unlocated/<id:request_id>/place", ("unlocated",), "201 201 403 403 403 403 403", None,
         place_body, fresh_unlocated),
    Case("POST", "/api/v1/open311/unlocated/<id:request_id>/dismiss", ("unlocated",), "200 200 403 403 403 403 403",
         None, json_body({"reason": "地址不详"}), fresh_unlocated),
]

# Routes with path parameters that are not objects of the table, and where they are tested.
ELSEWHERE = {
    ("GET", "/api/v1/map/tiles/<int(signed=True):z>/<int(signed=True):x>/<int(signed=True):y>.mvt"):
        "test_tiles_draw_nothing_outside_the_scope",
    ("GET", "/open311/v2/requests/<name>"): "test_open311_reads_a_request_by_number_as_its_kind_allows",
    ("GET", "/open311/v2/services/<name>"): "test_open311_defines_only_public_services",
    ("GET", "/open311/v2/tokens/<name>"): "test_open311_tokens_give_only_the_number",
    ("GET", "/open311/v2/<name>"): "a resource name (discovery, services, requests…), not an object",
    ("POST", "/open311/v2/<name>"): "a resource name (requests, servicerequestupdates), not an object",
    ("GET", "/static/<path:filename>"): "static files",
    ("GET", "/static/vendor/<lib>/<path:filename>"): "static files",
    ("GET", "/static/web/<path:filename>"): "static files",
}


def path_of(case: Case, w: World, role: str, sides: tuple[str, ...]) -> tuple[str | None, tuple]:
    """The case's URL with each parameter's object on its side; None when a side has no object."""
    ids, values = [], iter(case.kinds)
    for kind, side in zip(case.kinds, sides):
        if kind.startswith("="):
            continue
        ids.append(w.id(kind, role, side))
    if None in ids:
        return None, tuple(ids)
    numbers = iter(ids)

    def fill(match):
        kind = next(values)
        return kind[1:] if kind.startswith("=") else str(next(numbers))

    return re.sub(r"<[^>]+>", fill, case.rule), tuple(ids)


def call(case: Case, w: World, role: str, sides: tuple[str, ...]):
    path, ids = path_of(case, w, role, sides)
    if path is None:
        return None
    kwargs = case.body(w, role, ids) if case.body else {}
    return w.clients[role].request(case.method, path, **kwargs)


def summary(response) -> tuple:
    body = response.json()
    return response.status_code, body.get("code"), body.get("message")


# ---------------------------------------------------------------- the matrix

@pytest.mark.parametrize(("case", "role"), [(c, r) for c in CASES for r in ROLES],
                         ids=[f"{c.method} {c.rule} {r}" for c in CASES for r in ROLES])
def test_objects_inside_answer_as_written_and_outside_are_not_there(world, case, role):
    w = world
    object_ids = [i for i, kind in enumerate(case.kinds) if not kind.startswith("=")]
    # outside first (a case may change the object inside)
    for position in object_ids:
        sides = tuple("out" if i == position else "in" for i in range(len(case.kinds)))
        nowhere = tuple("none" if i == position else "in" for i in range(len(case.kinds)))
        w.fresh = case.prepare(w, role) if case.prepare else {}
        absent = call(case, w, role, nowhere)
        refused = call(case, w, role, sides) if case.outside is not None or position > 0 else None
        w.fresh = {}
        if refused is None:
            continue
        if position == object_ids[0] and case.outside is not None:
            assert (refused.status_code, refused.json()["code"]) == (404, case.outside), (role, refused.text)
        assert summary(refused) == summary(absent), (role, position, refused.text, absent.text)
        for secret in w.secrets:
            assert secret not in refused.text, (role, secret)
    w.fresh = case.prepare(w, role) if case.prepare else {}
    inside = call(case, w, role, tuple("in" for _ in case.kinds))
    w.fresh = {}
    status, code = case.expected(role)
    assert inside.status_code == status, (role, inside.text[:500])
    if code:
        assert inside.json()["code"] == code
    if status == 403:
        assert inside.json()["code"] == "auth.forbidden"


def test_the_table_covers_every_route_with_a_path_parameter(app, world):
    """A new route taking an id fails here until CASES (or ELSEWHERE) has it."""
    routed = {(method, rule.rule) for rule in app.url_map.iter_rules() if rule.arguments
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    covered = {case.key for case in CASES} | set(ELSEWHERE)
    assert routed == covered
    spec = requests.get(world.base + "/api/v1/openapi.json", timeout=30).json()
    documented = {(method.upper(), path) for path, item in spec["paths"].items() if "{" in path
                  for method in item if method in ("get", "post", "put", "patch", "delete")}
    as_openapi = {(m, re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)) for m, rule in covered
                  if rule.startswith("/api/v1/")}
    assert documented == as_openapi


def test_a_photo_is_served_only_under_its_own_incident(world):
    """A photo id of another incident under an incident one may see: 404, even when the
    other incident is visible too."""
    w = world
    for role in ROLES:
        client = w.clients[role]
        incident = w.id("incident", role, "in")
        for photo in (w.objects["photo"]["B"], w.objects["photo"]["Z"], w.objects["photo"]["A2"]):
            response = client.get(f"/api/v1/incidents/{incident}/photos/{photo}")
            assert (response.status_code, response.json()["code"]) == (404, "photo.not_found"), role
        # and a task of another campaign under a campaign one may see
        if role != "department":
            campaign = w.objects["campaign"]["A"]
            for task in (w.objects["task"]["B"], w.objects["task"]["Z"]):
                response = client.get(f"/api/v1/campaigns/{campaign}/tasks/{task}/photo")
                assert (response.status_code, response.json()["code"]) == (404, "campaign.task_not_found"), role


def test_lists_and_reads_of_one_own_things_never_show_anothers(world):
    w = world
    for role in ROLES:
        client = w.clients[role]
        exports = {j["id"] for j in client.get("/api/v1/exports").json()["items"]}
        devices = {d["id"] for d in client.get("/api/v1/me/devices").json()}
        inbox = {n["id"] for n in client.get("/api/v1/me/notifications").json()["items"]}
        assert w.objects["export"]["X"] not in exports and w.objects["export"][f"A:{role}"] in exports
        assert w.objects["device"]["X"] not in devices
        assert w.objects["notification"]["X"] not in inbox and w.objects["notification"][f"A:{role}"] in inbox


# ---------------------------------------------------------------- tiles

def _tile(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    import math

    n = 2 ** z
    return z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


@pytest.mark.parametrize("role", ROLES)
def test_tiles_draw_nothing_outside_the_scope(world, role):
    """Every layer of every tile over both cities, at the zooms of each level and of single
    cases: regions and labels only of the scope, incidents only those the role may read."""
    w = world
    db.session.rollback()
    user = w.tree.users[role]
    scope = "/" if role == "admin" else db.session.get(Region, user.region_id).path
    regions = set(db.session.scalars(select(Region.id).where(Region.path.startswith(scope))))
    if role == "department":
        readable = {w.objects[k]["A"] for k in ("incident", "dispute")}
    else:
        readable = set(db.session.scalars(select(Incident.id).where(Incident.region_path.startswith(scope))))
    seen_regions, seen_incidents = set(), set()
    for lon, lat in ((-118.39, 34.02), (-118.36, 34.02), (-118.28, 34.02), (-117.39, 34.02)):
        for z in (8, 10, 12, 13, 15):
            response = w.clients[role].get("/api/v1/map/tiles/{}/{}/{}.mvt".format(*_tile(lon, lat, z)),
                                           params={"status_group": "all"})
            assert response.status_code == 200
            layers = mapbox_vector_tile.decode(response.content) if response.content else {}
            for name in ("regions", "labels"):
                seen_regions |= {f["properties"].get("region_id", f.get("id"))
                                 for f in layers.get(name, {}).get("features", [])}
            seen_incidents |= {f["id"] for f in layers.get("incidents", {}).get("features", [])}
    assert seen_regions and seen_regions <= regions, seen_regions - regions
    assert seen_incidents <= readable, seen_incidents - readable


# ---------------------------------------------------------------- Open311: what a number shows

def _open311(w: World, path: str, **params) -> requests.Response:
    return requests.get(f"{w.base}/open311/v2/{path}", params=params, timeout=30)


def test_open311_reads_a_request_by_number_as_its_kind_allows(world):
    w = world
    db.session.rollback()
    fight = db.session.scalar(select(Category).where(Category.code == "0702"))  # not public
    cell = w.tree["G1"]
    hidden = make_incident(fight, cell, w.tree.users["grid_worker"], status="accepted", description="秘密打架")
    public = _open311(w, f"requests/{w.objects['incident']['A']}.json")
    assert public.status_code == 200 and public.json()[0]["description"] is None  # staff wrote it: not shown
    personal = _open311(w, f"requests/{w.objects['dispute']['B']}.json").json()[0]
    assert (personal["lat"], personal["long"], personal["address"], personal["description"]) == (None,) * 4
    for kind in ("dispute", "incident"):
        xml = _open311(w, f"requests/{w.objects[kind]['B']}.xml").text
        assert f"秘密B描述{kind}" not in xml and f"秘密B地址{kind}" not in xml
    for number in (hidden.id, NOWHERE, "0", "1e3", "１"):
        response = _open311(w, f"requests/{number}.json")
        assert response.status_code == 404 and "秘密" not in response.text
    listed = _open311(w, "requests.json", service_request_id=f"{hidden.id},{w.objects['dispute']['A']}").json()
    assert [r["service_request_id"] for r in listed] == [str(w.objects["dispute"]["A"])]
    listed = _open311(w, "requests.json").text
    assert not any(f"秘密{side}{what}" in listed for side in "BZ" for what in ("描述", "地址"))


def test_open311_defines_only_public_services(world):
    w = world
    assert _open311(w, "services/0101.json").status_code == 200
    for code in ("0702", "07", "0602", "nope", "%27"):  # not public, a group, a personal private one, unknown
        assert _open311(w, f"services/{code}.json").status_code == 404


def test_open311_tokens_give_only_the_number(world):
    w = world
    made = fresh_unlocated(w, "city")["unlocated"]
    token = str(db.session.get(Open311Request, made).token)
    answer = _open311(w, f"tokens/{token}.json")
    assert answer.status_code == 200 and answer.json() == [{"service_request_id": None, "token": token}]
    assert "解放路" not in answer.text
    assert _open311(w, f"tokens/{uuid.uuid4()}.json").status_code == 404


def test_a_patrols_track_is_the_workers_and_their_managers_only(world):
    """Patrols are personal data: another worker of the same community gets 404, as does a
    list filtered by that worker."""
    w = world
    worker = w.clients["grid_worker"]
    other = w.objects["patrol"]["out:grid_worker"]
    response = worker.get(f"/api/v1/patrols/{other}")
    assert (response.status_code, response.json()["code"]) == (404, "patrol.not_found")
    db.session.rollback()
    worker2 = db.session.scalar(select(Patrol.user_id).where(Patrol.id == other))
    listed = worker.get("/api/v1/patrols", params={"user_id": worker2})
    assert listed.status_code in (200, 404) and (listed.status_code == 404 or listed.json()["items"] == [])


def test_leave_of_another_worker_is_not_reached_through_ones_own(world):
    w = world
    community = w.clients["community"]
    worker1 = w.objects["user"]["A"]
    for leave in (w.objects["leave"]["B"], w.objects["leave"]["Z"]):
        response = community.delete(f"/api/v1/users/{worker1}/leaves/{leave}")
        assert (response.status_code, response.json()["code"]) == (404, "leave.not_found")
    db.session.rollback()
    assert all(db.session.get(Leave, w.objects["leave"][side]).cancelled_at is None for side in ("B", "Z"))



# ---------------------------------------------------------------- ids in bodies and filters

def _ids_elsewhere(w: World) -> list[tuple]:
    """(role, method, path, how the id is sent, the outside id): an id of an object outside the
    role's reach, in a body or a filter, answers as an id that does not exist."""
    o, r = w.objects, w.tree
    incident = o["incident"]["out:department"]  # accepted in G2: it may be merged or dispatched
    version = lambda: version_of(Incident, incident)  # noqa: E731
    t0 = utcnow() - timedelta(hours=2, minutes=30)
    centre = point_in(r["G1"])
    here = {"type": "Point", "coordinates": [centre.x, centre.y]}
    box = {"type": "Polygon", "coordinates": [[[-118.36, 34.0], [-118.355, 34.0], [-118.355, 34.005], [-118.36, 34.0]]]}
    return [
        ("community", "POST", f"/api/v1/incidents/{incident}/actions/merge",
         lambda x: {"json": {"version": version(), "original_id": x}}, o["incident"]["B"]),
        ("community", "POST", f"/api/v1/incidents/{incident}/actions/dispatch",
         lambda x: {"json": {"version": version(), "assignee_id": x}}, o["user"]["B"]),
        ("community", "POST", f"/api/v1/incidents/{incident}/actions/dispatch",
         lambda x: {"json": {"version": version(), "department_id": x}}, o["department"]["B"]),
        ("district", "PATCH", f"/api/v1/users/{o['user']['A']}",
         lambda x: {"json": {"version": version_of(User, o["user"]["A"]), "region_id": x}}, o["K"]["B"]),
        ("street", "POST", "/api/v1/users", lambda x: {"json": {
            "username": "new-handler", "display_name": "新人", "role": "department", "region_id": r["S1"].id,
            "department_id": x, "password": "a long enough password"}}, o["department"]["B"]),
        ("street", "POST", "/api/v1/departments", lambda x: {"json": {"code": "NEW", "name": "新部门",
                                                                      "region_id": x}}, r["S3"].id),
        ("community", "POST", "/api/v1/regions", lambda x: {"json": {
            "code": "NEWCELL", "name": "新网格", "level": "grid", "parent_id": x, "geometry": box}}, o["K"]["B"]),
        ("street", "POST", "/api/v1/campaigns", lambda x: {"json": {
            "client_uuid": str(uuid.uuid4()), "region_id": x, "title": "排查", "category_groups": ["05"],
            "deadline": (utcnow() + timedelta(days=2)).isoformat()}}, r["S3"].id),
        ("community", "POST", "/api/v1/exports", lambda x: {"json": {
            "kind": "metrics", "format": "csv", "filters": {"region_id": x, **PERIOD}}}, o["K"]["B"]),
        ("grid_worker", "POST", f"/api/v1/patrols/{o['patrol']['A']}/checkins", lambda x: {"json": {
            "client_uuid": str(uuid.uuid4()), "place_id": x, "t": t0.isoformat(), "location": here,
            "accuracy_m": 5}}, o["place"]["B"]),
        ("grid_worker", "POST", "/api/v1/incidents", lambda x: {"json": {
            "category": "0501", "location": here, "description": "发现隐患", "campaign_task_id": x}},
         o["task"]["B"]),
        # filters: nothing of the object is listed
        ("community", "GET", "/api/v1/incidents", lambda x: {"params": {"region_id": x}}, o["K"]["B"]),
        ("community", "GET", "/api/v1/incidents/export.csv", lambda x: {"params": {"region_id": x}}, o["K"]["B"]),
        ("community", "GET", "/api/v1/users", lambda x: {"params": {"region_id": x}}, o["K"]["B"]),
        ("community", "GET", "/api/v1/regions", lambda x: {"params": {"within_id": x}}, o["K"]["B"]),
        ("community", "GET", "/api/v1/regions", lambda x: {"params": {"parent_id": x}}, o["K"]["B"]),
        ("district", "GET", "/api/v1/patrols", lambda x: {"params": {"user_id": x}}, o["user"]["B"]),
        ("community", "GET", "/api/v1/patrol-places", lambda x: {"params": {"region_id": x}}, o["K"]["B"]),
        ("community", "GET", f"/api/v1/campaigns/{o['campaign']['A']}/tasks",
         lambda x: {"params": {"cell_id": x}}, o["G"]["B"]),
        ("community", "GET", f"/api/v1/campaigns/{o['campaign']['A']}/tasks",
         lambda x: {"params": {"assignee_id": x}}, o["user"]["B"]),
    ]


def test_ids_in_bodies_and_filters_answer_as_ids_that_do_not_exist(world):
    w = world
    for role, method, path, send, outside in _ids_elsewhere(w):
        client = w.clients[role]
        refused = client.request(method, path, **send(outside))
        absent = client.request(method, path, **send(NOWHERE))
        assert refused.status_code != 500 and refused.status_code == absent.status_code, (path, refused.text)
        if refused.headers["Content-Type"].startswith("application/json"):
            a, b = refused.json(), absent.json()
            if "code" in a:
                assert (a["code"], a.get("message")) == (b["code"], b.get("message")), (path, a, b)
                assert refused.status_code >= 400
            else:
                assert a == b, path
        else:
            assert refused.content == absent.content, path
        for secret in w.secrets:
            assert secret not in refused.text, (path, secret)


def test_reads_near_or_over_the_other_side_show_nothing_of_it(world):
    """What is found by place or by change rather than by id: the cases near a point, in a
    box, changed since a cursor, to sync — none of another district's or another city's."""
    w = world
    db.session.rollback()
    for role in ROLES:
        side = outside_side("incident", role)
        if side is None:
            continue
        client = w.clients[role]
        hidden = {w.objects[kind][side] for kind in ("incident", "dispute")}
        at = db.session.get(Incident, w.objects["incident"][side])
        where = db.session.execute(select(func.ST_X(Incident.geom), func.ST_Y(Incident.geom))
                                   .where(Incident.id == at.id)).one()
        near = client.get("/api/v1/incidents/nearby", params={"lon": where[0], "lat": where[1], "category": "0101",
                                                               "radius": 2000})
        assert near.status_code == 200 and not {i["id"] for i in near.json()["items"]} & hidden, role
        box = f"{where[0] - 0.01},{where[1] - 0.01},{where[0] + 0.01},{where[1] + 0.01}"
        mapped = client.get("/api/v1/map/incidents", params={"bbox": box, "status_group": "all"})
        assert mapped.status_code == 200 and not {f["id"] for f in mapped.json()["features"]} & hidden, role
        listed = client.get("/api/v1/incidents", params={"bbox": box, "page_size": 500})
        assert not {i["id"] for i in listed.json()["items"]} & hidden, role
        synced = client.get("/api/v1/sync")
        assert synced.status_code == 200 and not {i["id"] for i in synced.json()["incidents"]} & hidden, role
        for response in (near, mapped, listed, synced):
            assert f"秘密{side}" not in response.text, role


def test_an_open311_client_updates_only_the_requests_it_sent(world):
    """Another client app's citizens' requests are as unknown: its key may not add notes
    ("[CLOSED] …") to them nor send their supervisors messages."""
    w = world
    base = f"{w.base}/open311/v2"
    mine = requests.post(f"{base}/requests.json", timeout=30, data={
        "api_key": w.open311_key, "service_code": "0201", "attribute[damage]": "missing", "lat": "34.02",
        "long": "-118.39", "description": "井盖丢了"}).json()[0]["service_request_id"]
    other_key = _ok(w.clients["admin"].post("/api/v1/open311/clients", json={"name": "别的应用"}), 201)["api_key"]
    db.session.rollback()
    told = db.session.scalar(select(func.count()).select_from(Notification))
    update = {"service_request_id": mine, "update_id": "u-1", "status": "CLOSED", "description": "已修好",
              "updated_datetime": utcnow().isoformat()}
    foreign = requests.post(f"{base}/servicerequestupdates.json", data={"api_key": other_key, **update}, timeout=30)
    nowhere = requests.post(f"{base}/servicerequestupdates.json", timeout=30,
                            data={"api_key": other_key, **update, "service_request_id": str(NOWHERE)})
    assert foreign.status_code == nowhere.status_code == 404
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Notification)) == told
    own = requests.post(f"{base}/servicerequestupdates.json", data={"api_key": w.open311_key, **update}, timeout=30)
    assert own.status_code == 201
