"""Function-level authorisation (OWASP API5): the functions that take no object's id — issuing
keys, importing a level, the taxonomy, the calendar, creating people, places, campaigns,
patrols, reports, exports — for every role. The expected status of each role is written by
hand (``ROLES`` order); a refusal is 403 auth.forbidden and changes nothing."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server.extensions import db
from server.models import Category, Department, Open311Client, PatrolPlace, Region, User
from server.models._base import utcnow
from tests.builders import build_tree, standard_categories

ROLES = ("admin", "city", "district", "street", "community", "grid_worker", "department")
IN_G1 = [-118.39, 34.02]


def square(x: float, y: float, side: float = 0.001) -> dict:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + side, y], [x + side, y + side], [x, y + side], [x, y]]]}


# (method, path, request, what it would add, the status of each role)
FUNCTIONS = [
    ("GET", "/api/v1/open311/clients", lambda t, r: {}, None, "200 403 403 403 403 403 403"),
    ("POST", "/api/v1/open311/clients", lambda t, r: {"json": {"name": f"app-{r}"}}, Open311Client,
     "201 403 403 403 403 403 403"),
    ("GET", "/api/v1/open311/unlocated", lambda t, r: {}, None, "200 200 403 403 403 403 403"),
    ("POST", "/api/v1/regions/import", lambda t, r: {
        "params": {"level": "grid", "code_field": "code", "name_field": "name"},
        "json": {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": square(-118.399, 34.001),
                                                             "properties": {"code": f"IMP-{r}", "name": "导入"}}]}},
     Region, "200 403 403 403 403 403 403"),
    ("POST", "/api/v1/regions", lambda t, r: {"json": {"code": f"CITY-{r}", "name": "新城市", "level": "city",
                                                       "geometry": square(10, 10, 1)}},
     Region, "201 403 403 403 403 403 403"),
    ("POST", "/api/v1/categories", lambda t, r: {"json": {
        "code": f"99{r[:2]}", "name": "新分类", "name_en": "New", "kind": "event"}}, Category,
     "201 403 403 403 403 403 403"),
    ("PUT", "/api/v1/calendar/days/2031-01-03", lambda t, r: {"json": {"is_workday": False, "name": "停工"}}, None,
     "200 403 403 403 403 403 403"),
    ("POST", "/api/v1/users", lambda t, r: {"json": {
        "username": f"new-{r}", "display_name": "新网格员", "role": "grid_worker", "region_id": t["K1"].id,
        "password": "a long enough password"}}, User, "201 201 201 201 201 403 403"),
    ("POST", "/api/v1/departments", lambda t, r: {"json": {"code": f"DEP-{r}", "name": "新部门",
                                                           "region_id": t["K1"].id}},
     Department, "201 201 201 201 201 403 403"),
    ("POST", "/api/v1/patrol-places", lambda t, r: {"json": {
        "name": f"点-{r}", "location": {"type": "Point", "coordinates": IN_G1}, "radius_m": 30}},
     PatrolPlace, "201 201 201 201 201 403 403"),
    ("POST", "/api/v1/campaigns", lambda t, r: {"json": {
        "client_uuid": str(uuid.uuid4()), "region_id": t["K1"].id, "title": "排查", "category_groups": ["05"],
        "deadline": (utcnow() + timedelta(days=2)).isoformat()}}, None,
     "201 201 201 201 201 403 422"),  # campaigns are no department's: the region is not theirs to name
    ("POST", "/api/v1/exports", lambda t, r: {"json": {
        "kind": "metrics", "format": "csv", "filters": {"region_id": t["K1"].id, "from": "2026-01-01",
                                                        "to": "2026-02-01"}}},
     None, "202 202 202 202 202 403 403"),
    ("POST", "/api/v1/patrols", lambda t, r: {"json": {"client_uuid": str(uuid.uuid4())}}, None,
     "403 403 403 403 403 201 403"),
    ("POST", "/api/v1/me/duty", lambda t, r: {"json": {"on_duty": True}}, None, "403 403 403 403 403 200 403"),
    ("POST", "/api/v1/incidents", lambda t, r: {"json": {
        "category": "0101", "description": "路边垃圾", "location": {"type": "Point", "coordinates": IN_G1}}},
     None, "201 201 201 201 201 201 403"),
]


def count(model) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("role", ROLES)
def test_each_function_is_open_to_the_roles_written_and_refused_to_the_others(http, client_for, role):
    tree = build_tree()
    standard_categories()
    client = client_for(tree[role])
    for method, path, request, adds, statuses in FUNCTIONS:
        expected = int(statuses.split()[ROLES.index(role)])
        before = count(adds) if adds else None
        response = client.request(method, path, **request(tree, role))
        assert response.status_code == expected, (role, method, path, response.text)
        if expected == 403:
            assert response.json()["code"] == "auth.forbidden", (role, path)
            if adds:
                assert count(adds) == before, (role, path)
