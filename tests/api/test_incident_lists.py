"""Incident lists over HTTP: filters, sorts, pages, scope; nearby incidents; my tasks."""
from __future__ import annotations

from datetime import timedelta

import pytest
from shapely.geometry import Point
from sqlalchemy import event

from server.extensions import db
from server.models._base import utcnow
from tests.builders import build_tree, make_user
from tests.incident_builders import make_category, make_incident, make_task, point_in

ROLES = ("admin", "city", "district", "street", "community", "grid_worker", "department")
# Written out by hand: which of the incidents in G1, G2 and G3 each role sees. The
# department sees only the one with a task for the department (in G2).
VISIBLE = {
    "admin": {"G1", "G2", "G3"},
    "city": {"G1", "G2", "G3"},
    "district": {"G1", "G2"},
    "street": {"G1", "G2"},
    "community": {"G1", "G2"},
    "grid_worker": {"G1", "G2"},
    "department": {"G2"},
}
INCIDENTS = "/api/v1/incidents"
METRES_PER_DEGREE_LAT = 110_950  # near latitude 34°


@pytest.fixture
def tree(http):
    return build_tree()


@pytest.fixture
def cats(tree):
    group = make_category("90", default_priority="normal")
    other_group = make_category("91", kind="safety")
    return {
        "group": group, "leaf": make_category("9001", group), "sibling": make_category("9002", group),
        "other": make_category("9101", other_group, kind="safety"),
    }


def listed(client, **params) -> list[int]:
    response = client.get(INCIDENTS, params={"page_size": 500, **params})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def north_of(cell, metres: float, *, east: float = 0.0) -> Point:
    centre = point_in(cell)
    return Point(centre.x + east / (METRES_PER_DEGREE_LAT * 0.829), centre.y + metres / METRES_PER_DEGREE_LAT)


# ---------------------------------------------------------------- scope

@pytest.mark.parametrize("role", ROLES)
def test_each_role_lists_exactly_the_incidents_it_may_see(tree, cats, client_for, role):
    by_cell = {key: make_incident(cats["leaf"], tree[key], tree["city"]) for key in ("G1", "G2", "G3")}
    make_task(by_cell["G2"], department=tree.department)

    got = listed(client_for(tree[role]))

    assert sorted(got) == sorted(by_cell[key].id for key in VISIBLE[role])


def test_a_region_outside_my_scope_lists_nothing(tree, cats, client_for):
    inside = make_incident(cats["leaf"], tree["G1"], None)
    make_incident(cats["leaf"], tree["G3"], None)
    community = client_for(tree["community"])

    assert listed(community, region_id=tree["K1"].id) == [inside.id]
    assert listed(community, region_id=tree["G2"].id) == []
    assert listed(community, region_id=tree["K2"].id) == []
    assert listed(community, region_id=tree["C"].id) == []  # an ancestor of my scope is outside it too
    assert listed(community, region_id=999_999) == []


# ---------------------------------------------------------------- filters

def test_filters_narrow_the_list(tree, cats, client_for):
    city = client_for(tree["city"])
    worker = tree["grid_worker"]
    now = utcnow()
    a = make_incident(cats["leaf"], tree["G1"], worker, priority="urgent", source="patrol",
                      reported_at=now - timedelta(days=3))
    b = make_incident(cats["sibling"], tree["G2"], tree["community"], status="accepted", level="community",
                      priority="low", reported_at=now - timedelta(days=1))
    c = make_incident(cats["other"], tree["G3"], tree["city"], status="closed", reported_at=now - timedelta(hours=1))
    d = make_incident(cats["leaf"], tree["G3"], worker, status="rejected", source="hotline")

    assert set(listed(city)) == {a.id, b.id, c.id, d.id}
    assert set(listed(city, status_group="open")) == {a.id, b.id}
    assert set(listed(city, status_group="closed")) == {c.id, d.id}
    assert set(listed(city, status=["accepted", "closed"])) == {b.id, c.id}
    assert listed(city, level="community") == [b.id]
    assert set(listed(city, region_id=tree["K1"].id)) == {a.id, b.id}
    assert listed(city, region_id=tree["G2"].id) == [b.id]
    assert set(listed(city, region_id=tree["D2"].id)) == {c.id, d.id}
    assert set(listed(city, category="9001")) == {a.id, d.id}
    assert set(listed(city, category="90")) == {a.id, b.id, d.id}  # a group takes all its leaves
    assert listed(city, category="nope") == []
    assert listed(city, priority="urgent") == [a.id]
    assert listed(city, source="hotline") == [d.id]
    assert set(listed(city, reported_from=(now - timedelta(days=2)).isoformat())) == {b.id, c.id, d.id}
    assert set(listed(city, reported_to=(now - timedelta(hours=2)).isoformat())) == {a.id, b.id}
    assert listed(city, reported_from=(now - timedelta(days=2)).isoformat(),
                  reported_to=(now - timedelta(hours=2)).isoformat()) == [b.id]
    assert set(listed(city, bbox="-118.40,34.00,-118.35,34.05")) == {a.id, b.id}
    assert set(listed(city, bbox="-118.30,34.00,-118.25,34.05")) == {c.id, d.id}
    assert listed(city, bbox="-118.20,34.06,-118.10,34.10") == []
    assert set(listed(city, status_group="open", category="90", region_id=tree["G1"].id)) == {a.id}


def test_overdue_means_open_with_the_clock_running_and_past_the_deadline(tree, cats, client_for):
    past, future = utcnow() - timedelta(hours=1), utcnow() + timedelta(hours=1)
    late = make_incident(cats["leaf"], tree["G1"], None, status="dispatched", due_at=past)
    make_incident(cats["leaf"], tree["G1"], None, status="suspended", due_at=past)  # timers stopped
    make_incident(cats["leaf"], tree["G1"], None, status="closed", due_at=past)
    in_time = make_incident(cats["leaf"], tree["G1"], None, status="accepted", due_at=future)
    no_deadline = make_incident(cats["leaf"], tree["G1"], None)
    community = client_for(tree["community"])

    assert listed(community, overdue="true") == [late.id]
    assert late.id not in listed(community, overdue="false")
    assert {in_time.id, no_deadline.id} <= set(listed(community, overdue="false"))
    assert len(listed(community, overdue="false")) == 4


def test_mine_lists_what_i_reported(tree, cats, client_for):
    worker = tree["grid_worker"]
    my_report = make_incident(cats["leaf"], tree["G1"], worker)
    theirs = make_incident(cats["leaf"], tree["G1"], tree["community"])
    anonymous = make_incident(cats["leaf"], tree["G2"], None, source="hotline")
    client = client_for(worker)

    assert listed(client, mine="true") == [my_report.id]
    assert set(listed(client, mine="false")) == {theirs.id, anonymous.id}


# ---------------------------------------------------------------- sorts and pages

def test_sorts(tree, cats, client_for):
    now = utcnow()
    low = make_incident(cats["leaf"], tree["G1"], None, priority="low", reported_at=now - timedelta(hours=4),
                        due_at=now + timedelta(hours=1))
    urgent = make_incident(cats["leaf"], tree["G1"], None, priority="urgent", reported_at=now - timedelta(hours=3))
    normal = make_incident(cats["leaf"], tree["G1"], None, priority="normal", reported_at=now - timedelta(hours=2),
                           due_at=now + timedelta(hours=3))
    high = make_incident(cats["leaf"], tree["G1"], None, priority="high", reported_at=now - timedelta(hours=1),
                         due_at=now + timedelta(hours=2))
    client = client_for(tree["community"])

    assert listed(client) == [high.id, normal.id, urgent.id, low.id]  # newest first by default
    assert listed(client, sort="reported_at") == [low.id, urgent.id, normal.id, high.id]
    assert listed(client, sort="-priority") == [urgent.id, high.id, normal.id, low.id]
    assert listed(client, sort="priority") == [low.id, normal.id, high.id, urgent.id]
    assert listed(client, sort="due_at") == [low.id, high.id, normal.id, urgent.id]  # no deadline last
    assert listed(client, sort="-due_at") == [normal.id, high.id, low.id, urgent.id]  # …both ways
    db.session.rollback()
    assert listed(client, sort="-updated_at")[0] == high.id


def test_pages_are_stable_when_sort_keys_tie(tree, cats, client_for):
    same_time = utcnow() - timedelta(hours=1)
    made = [make_incident(cats["leaf"], tree["G1"], None, priority="high", reported_at=same_time).id
            for _ in range(12)]
    client = client_for(tree["community"])

    for sort in ("-reported_at", "reported_at", "-priority", "due_at"):
        pages = [client.get(INCIDENTS, params={"sort": sort, "page": n, "page_size": 5}).json() for n in (1, 2, 3)]
        walked = [item["id"] for page in pages for item in page["items"]]
        assert sorted(walked) == sorted(made), sort
        assert [p["total"] for p in pages] == [12, 12, 12]
    assert [i for p in (1, 2, 3) for i in listed(client, sort="-priority", page=p, page_size=5)] == sorted(
        made, reverse=True)


def test_a_page_of_fifty_takes_a_flat_number_of_statements(tree, cats, client_for):
    reporters = [tree["grid_worker"], tree["community"], tree["street"], None]
    categories = [cats["leaf"], cats["sibling"], cats["other"]]
    for n in range(60):
        make_incident(categories[n % 3], tree["G1" if n % 2 else "G2"], reporters[n % 4])
    client = client_for(tree["city"])
    client.get(INCIDENTS, params={"page_size": 1})  # warm: the actor is cached

    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    counts = {}
    for size in (5, 50):
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            response = client.get(INCIDENTS, params={"page_size": size})
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert response.status_code == 200
        assert len(response.json()["items"]) == size
        counts[size] = len(statements)

    assert counts[50] == counts[5] <= 4, counts


# ---------------------------------------------------------------- refusals

@pytest.mark.parametrize("params", [
    {"colour": "red"},
    {"bbox": "1,2,3"},
    {"bbox": "-118.3,34.1,-118.4,34.0"},
    {"bbox": "a,b,c,d"},
    {"sort": "name"},
    {"status": "lost"},
    {"status_group": "some"},
    {"reported_from": "2024-01-01T00:00:00"},  # no zone
])
def test_bad_query_parameters_are_refused(tree, client_for, params):
    response = client_for(tree["city"]).get(INCIDENTS, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "request.invalid"


def test_lists_need_a_sign_in(http):
    for path in (INCIDENTS, INCIDENTS + "/nearby?lon=0&lat=0&category=x", "/api/v1/me/tasks"):
        response = http.get(path)
        assert response.status_code == 401
        assert response.json()["code"] == "auth.required"


# ---------------------------------------------------------------- nearby

def near(client, cell, **params):
    centre = point_in(cell)
    response = client.get(INCIDENTS + "/nearby", params={"lon": centre.x, "lat": centre.y, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_nearby_finds_open_incidents_of_the_category_nearest_first(tree, cats, client_for):
    leaf, g1 = cats["leaf"], tree["G1"]
    ten = make_incident(leaf, g1, None, at=north_of(g1, 10))
    fifty = make_incident(leaf, g1, None, at=north_of(g1, -50), status="dispatched")
    make_incident(leaf, g1, None, at=north_of(g1, 300))  # beyond the radius
    sibling = make_incident(cats["sibling"], g1, None, at=north_of(g1, 20))  # same group, other leaf
    make_incident(cats["other"], g1, None, at=north_of(g1, 5))  # other group
    make_incident(leaf, g1, None, at=north_of(g1, 5), status="closed")
    make_incident(leaf, g1, None, at=north_of(g1, 5), status="merged")
    old = make_incident(leaf, g1, None, at=north_of(g1, 1), reported_at=utcnow() - timedelta(days=10))
    client = client_for(tree["grid_worker"])

    items = near(client, g1, category="9001")
    assert [i["id"] for i in items] == [ten.id, fifty.id]
    assert items[0]["distance_m"] == pytest.approx(10, abs=0.5)
    assert items[1]["distance_m"] == pytest.approx(50, abs=1)
    assert items[0]["category"]["code"] == "9001" and items[0]["location"]["type"] == "Point"

    assert [i["id"] for i in near(client, g1, category="90")] == [ten.id, sibling.id, fifty.id]
    assert [i["id"] for i in near(client, g1, category="9001", radius=30)] == [ten.id]
    assert [i["id"] for i in near(client, g1, category="9001", days=30)] == [old.id, ten.id, fifty.id]
    assert [i["id"] for i in near(client, g1, category="9001", limit=1)] == [ten.id]
    # outside mainland China GCJ-02 is WGS84: accepted, same answer
    assert [i["id"] for i in near(client, g1, category="9001", crs="gcj02")] == [ten.id, fifty.id]
    assert [i["id"] for i in near(client, g1, category="9001", crs="bd09")] == [ten.id, fifty.id]


def test_nearby_keeps_to_my_scope(tree, cats, client_for):
    g3 = tree["G3"]
    there = make_incident(cats["leaf"], g3, None, at=north_of(g3, 10))

    assert near(client_for(tree["community"]), g3, category="9001") == []
    assert [i["id"] for i in near(client_for(tree["city"]), g3, category="9001")] == [there.id]


def test_nearby_refuses_an_unknown_category_and_bad_points(tree, client_for):
    client = client_for(tree["grid_worker"])
    response = client.get(INCIDENTS + "/nearby", params={"lon": -118.39, "lat": 34.02, "category": "nope"})
    assert response.status_code == 422
    assert response.json()["code"] == "incident.invalid_category"
    assert "category" in response.json()["errors"]
    for params in ({"lon": 200, "lat": 34, "category": "x"}, {"lon": -118, "lat": 34},
                   {"lon": -118, "lat": 34, "category": "x", "radius": 5000},
                   {"lon": -118, "lat": 34, "category": "x", "crs": "utm"}):
        response = client.get(INCIDENTS + "/nearby", params=params)
        assert response.status_code == 422, params
        assert response.json()["code"] == "request.invalid"


# ---------------------------------------------------------------- my tasks

def task_ids(client) -> list[int]:
    response = client.get("/api/v1/me/tasks")
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_my_tasks_come_most_urgent_first(tree, cats, client_for):
    worker, now = tree["grid_worker"], utcnow()

    def task_on(priority, *, ack_in=None, due_in=None, acknowledged=False, status=None):
        incident = make_incident(cats["leaf"], tree["G1"], None, status="dispatched", priority=priority,
                                 due_at=now + due_in if due_in else None)
        return make_task(incident, assignee=worker, ack_deadline=now + (ack_in or timedelta(hours=1)),
                         status=status or ("acknowledged" if acknowledged else "open"),
                         acknowledged_at=now if acknowledged else None)

    later_ack = task_on("low", ack_in=timedelta(hours=2))
    sooner_ack = task_on("normal", ack_in=timedelta(minutes=30))
    urgent_due_late = task_on("urgent", acknowledged=True, due_in=timedelta(days=1))
    urgent_due_soon = task_on("urgent", acknowledged=True, due_in=timedelta(hours=2))
    urgent_no_due = task_on("urgent", acknowledged=True)
    high = task_on("high", acknowledged=True, due_in=timedelta(hours=1))
    task_on("urgent", status="done")
    task_on("urgent", status="cancelled")
    task_on("urgent", status="declined")
    other_worker = make_user("worker2", "grid_worker", tree["K1"])
    make_task(make_incident(cats["leaf"], tree["G1"], None, status="dispatched"), assignee=other_worker)

    response = client_for(worker).get("/api/v1/me/tasks")

    assert [item["id"] for item in response.json()["items"]] == [
        sooner_ack.id, later_ack.id, urgent_due_soon.id, urgent_due_late.id, urgent_no_due.id, high.id]
    first = response.json()["items"][0]
    assert first["incident"]["id"] == sooner_ack.incident_id
    assert first["incident"]["category"]["code"] == "9001"
    assert first["assignee"]["id"] == worker.id
    assert response.json()["total"] == 6
    page_two = client_for(worker).get("/api/v1/me/tasks", params={"page": 2, "page_size": 4}).json()
    assert [item["id"] for item in page_two["items"]] == [urgent_no_due.id, high.id]


def test_department_handlers_see_their_departments_tasks(tree, cats, client_for):
    dispatched = make_incident(cats["leaf"], tree["G2"], None, status="dispatched")
    for_department = make_task(dispatched, department=tree.department)
    for_worker = make_task(make_incident(cats["leaf"], tree["G1"], None, status="dispatched"),
                           assignee=tree["grid_worker"])
    second_handler = make_user("police2", "department", tree["S1"], tree.department)

    assert task_ids(client_for(tree["department"])) == [for_department.id]
    assert task_ids(client_for(second_handler)) == [for_department.id]
    assert task_ids(client_for(tree["grid_worker"])) == [for_worker.id]
    assert task_ids(client_for(tree["community"])) == []


def test_my_tasks_refuse_unknown_parameters(tree, client_for):
    response = client_for(tree["grid_worker"]).get("/api/v1/me/tasks", params={"status": "open"})
    assert response.status_code == 422
    assert response.json()["code"] == "request.invalid"
