"""Functional departments (职能部门): scoped listing, creation, renaming, retiring."""
import pytest
from sqlalchemy import func, select

from server.models import Department
from tests.builders import build_tree, make_department

DEPARTMENTS = "/api/v1/departments"


def _count(db):
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Department))


def _assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text


def _new(tree, **overrides):
    body = {"code": "DEP-S1-CG", "name": "城管中队", "name_en": "Urban management", "region_id": tree["S1"].id}
    body.update(overrides)
    return body


def test_a_street_creates_a_department_in_its_street(http, client_for):
    tree = build_tree()
    response = client_for(tree["street"]).post(DEPARTMENTS, json=_new(tree))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["code"] == "DEP-S1-CG" and body["name"] == "城管中队"
    assert body["region"]["id"] == tree["S1"].id and body["retired_at"] is None and body["version"] == 1


def test_a_street_cannot_create_a_department_in_another_street(http, db, client_for):
    tree = build_tree()
    before = _count(db)
    response = client_for(tree["street"]).post(DEPARTMENTS, json=_new(tree, region_id=tree["S3"].id))
    _assert_error(response, 422, "department.invalid_region")
    unknown = client_for(tree["street"]).post(DEPARTMENTS, json=_new(tree, region_id=999999))
    assert unknown.json() == response.json()
    assert _count(db) == before


def test_workers_and_handlers_cannot_create_departments(http, db, client_for):
    tree = build_tree()
    before = _count(db)
    for who in ("grid_worker", "department"):
        response = client_for(tree[who]).post(DEPARTMENTS, json=_new(tree, region_id=tree["K1"].id))
        _assert_error(response, 403, "auth.forbidden")
    assert _count(db) == before


def test_a_department_code_is_unique(http, db, client_for):
    tree = build_tree()
    before = _count(db)
    response = client_for(tree["city"]).post(DEPARTMENTS, json=_new(tree, code="DEP-S1-POLICE"))
    _assert_error(response, 409, "department.code_taken")
    assert _count(db) == before


@pytest.mark.parametrize("change", [
    {"code": ""}, {"code": "x" * 33}, {"code": "has space"}, {"code": None}, {"name": "  "},
    {"name": "名" * 201}, {"name_en": ""}, {"region_id": 2**31}, {"region_id": "3"}, {"extra": True},
])
def test_bad_department_bodies_are_422_and_write_nothing(http, db, client_for, change):
    tree = build_tree()
    before = _count(db)
    response = client_for(tree["city"]).post(DEPARTMENTS, json=_new(tree, **change))
    _assert_error(response, 422, "request.invalid")
    assert _count(db) == before


def test_the_department_list_is_scoped(http, client_for):
    tree = build_tree()
    make_department("DEP-S3-JUDICIAL", tree["S3"], "司法所")
    city = client_for(tree["city"]).get(DEPARTMENTS).json()
    street = client_for(tree["street"]).get(DEPARTMENTS).json()
    community = client_for(tree["community"]).get(DEPARTMENTS).json()
    assert [d["code"] for d in city["items"]] == ["DEP-S1-POLICE", "DEP-S3-JUDICIAL"] and city["total"] == 2
    assert [d["code"] for d in street["items"]] == ["DEP-S1-POLICE"]
    assert community["items"] == [] and community["total"] == 0


def test_a_handler_sees_its_own_department(http, client_for):
    tree = build_tree()
    handler = client_for(tree["department"])
    assert handler.get(f"{DEPARTMENTS}/{tree.department.id}").status_code == 200
    assert [d["code"] for d in handler.get(DEPARTMENTS).json()["items"]] == ["DEP-S1-POLICE"]


def test_a_department_outside_the_scope_is_404(http, client_for):
    tree = build_tree()
    other = make_department("DEP-S3-JUDICIAL", tree["S3"], "司法所")
    response = client_for(tree["street"]).get(f"{DEPARTMENTS}/{other.id}")
    _assert_error(response, 404, "department.not_found")
    assert "司法所" not in response.text and "DEP-S3" not in response.text
    _assert_error(client_for(tree["street"]).get(f"{DEPARTMENTS}/999999"), 404, "department.not_found")


def test_the_department_list_filters_by_region_and_hides_retired_ones(http, db, client_for):
    from server.models._base import utcnow
    tree = build_tree()
    make_department("DEP-S3-JUDICIAL", tree["S3"], "司法所")
    old = make_department("DEP-S1-OLD", tree["S1"])
    old.retired_at = utcnow()
    db.session.commit()
    city = client_for(tree["city"])
    assert [d["code"] for d in city.get(DEPARTMENTS, params={"region_id": tree["D2"].id}).json()["items"]] == [
        "DEP-S3-JUDICIAL"]
    assert "DEP-S1-OLD" not in [d["code"] for d in city.get(DEPARTMENTS).json()["items"]]
    everything = city.get(DEPARTMENTS, params={"include_retired": "true"}).json()
    assert "DEP-S1-OLD" in [d["code"] for d in everything["items"]]
    _assert_error(city.get(DEPARTMENTS, params={"region_id": "x"}), 422, "request.invalid")


def test_renaming_a_department_with_the_right_version(http, client_for):
    tree = build_tree()
    street = client_for(tree["street"])
    url = f"{DEPARTMENTS}/{tree.department.id}"
    response = street.patch(url, json={"name": "派出所（新）", "version": 1})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "派出所（新）" and response.json()["version"] == 2
    stale = street.patch(url, json={"name": "又改了", "version": 1})
    _assert_error(stale, 409, "department.version_conflict")
    assert street.get(url).json()["name"] == "派出所（新）"


def test_a_department_rename_needs_a_version_and_no_unknown_fields(http, client_for):
    tree = build_tree()
    street = client_for(tree["street"])
    url = f"{DEPARTMENTS}/{tree.department.id}"
    _assert_error(street.patch(url, json={"name": "X"}), 422, "request.invalid")
    _assert_error(street.patch(url, json={"code": "NEW", "version": 1}), 422, "request.invalid")


def test_a_community_cannot_rename_the_streets_department(http, client_for):
    tree = build_tree()
    response = client_for(tree["community"]).patch(f"{DEPARTMENTS}/{tree.department.id}", json={"name": "X", "version": 1})
    _assert_error(response, 404, "department.not_found")


def test_a_handler_cannot_rename_its_own_department(http, client_for):
    tree = build_tree()
    response = client_for(tree["department"]).patch(f"{DEPARTMENTS}/{tree.department.id}", json={"name": "X", "version": 1})
    _assert_error(response, 403, "auth.forbidden")


def test_retiring_a_department_keeps_it_and_the_first_date(http, db, client_for):
    tree = build_tree()
    street = client_for(tree["street"])
    url = f"{DEPARTMENTS}/{tree.department.id}/retire"
    first = street.post(url)
    assert first.status_code == 200, first.text
    assert first.json()["retired_at"] is not None
    again = street.post(url)
    assert again.status_code == 200 and again.json()["retired_at"] == first.json()["retired_at"]
    assert _count(db) == 1


def test_a_retired_department_takes_no_new_handlers(http, client_for):
    tree = build_tree()
    street = client_for(tree["street"])
    street.post(f"{DEPARTMENTS}/{tree.department.id}/retire")
    response = street.post("/api/v1/users", json={
        "username": "police2", "display_name": "警员", "role": "department", "region_id": tree["S1"].id,
        "department_id": tree.department.id, "password": "another fine secret"})
    _assert_error(response, 422, "user.invalid_department")


def test_a_worker_cannot_retire_a_department(http, client_for):
    tree = build_tree()
    response = client_for(tree["department"]).post(f"{DEPARTMENTS}/{tree.department.id}/retire")
    _assert_error(response, 403, "auth.forbidden")
