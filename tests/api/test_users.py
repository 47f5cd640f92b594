"""Users: listing in scope, creating, changing, and grid assignments (AB岗)."""
import json

import pytest
from sqlalchemy import func, select

from server.models import AuthSession, GridAssignment, User
from tests.builders import PASSWORD, build_tree, make_region, make_user

USERS = "/api/v1/users"
NEW_PASSWORD = "another fine secret"


def _count(db, model=User):
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def _new_user(tree, **overrides):
    body = {"username": "newworker", "display_name": "新网格员", "role": "grid_worker",
            "region_id": tree["K1"].id, "password": NEW_PASSWORD}
    body.update(overrides)
    return body


def _assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text


# --- create ------------------------------------------------------------------------

def test_a_community_creates_a_grid_worker_in_its_community(http, db, client_for):
    tree = build_tree()
    response = client_for(tree["community"]).post(USERS, json=_new_user(tree))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["username"] == "newworker" and body["role"] == "grid_worker"
    assert body["role_label"] == {"zh": "网格员", "en": "Grid worker"}
    assert body["region"]["id"] == tree["K1"].id and body["is_active"] is True and body["version"] == 1
    assert "password" not in body and "password_hash" not in body
    assert http.post("/api/v1/auth/login", json={"username": "NewWorker", "password": NEW_PASSWORD}).status_code == 200


def test_a_street_creates_a_department_handler_of_its_department(http, client_for):
    tree = build_tree()
    response = client_for(tree["street"]).post(USERS, json=_new_user(
        tree, username="police2", role="department", region_id=tree["S1"].id, department_id=tree.department.id))
    assert response.status_code == 201, response.text
    assert response.json()["department"]["id"] == tree.department.id


def test_a_district_creates_a_street_user(http, client_for):
    tree = build_tree()
    response = client_for(tree["district"]).post(USERS, json=_new_user(
        tree, username="street2", role="street", region_id=tree["S2"].id))
    assert response.status_code == 201, response.text


def test_a_street_cannot_create_another_street_user(http, db, client_for):
    tree = build_tree()
    before = _count(db)
    response = client_for(tree["street"]).post(USERS, json=_new_user(
        tree, username="street9", role="street", region_id=tree["S1"].id))
    _assert_error(response, 403, "auth.forbidden")
    assert _count(db) == before


def test_a_street_cannot_create_a_user_in_another_street(http, db, client_for):
    tree = build_tree()
    before = _count(db)
    response = client_for(tree["street"]).post(USERS, json=_new_user(tree, region_id=tree["K2"].id))
    _assert_error(response, 422, "user.invalid_region")
    assert _count(db) == before


def test_an_unknown_region_and_an_out_of_scope_region_give_the_same_answer(http, client_for):
    tree = build_tree()
    street = client_for(tree["street"])
    unknown = street.post(USERS, json=_new_user(tree, region_id=999999))
    foreign = street.post(USERS, json=_new_user(tree, region_id=tree["K2"].id))
    _assert_error(unknown, 422, "user.invalid_region")
    _assert_error(foreign, 422, "user.invalid_region")
    assert unknown.json() == foreign.json()


def test_a_retired_region_cannot_take_new_users(http, db, client_for):
    from server.models._base import utcnow
    tree = build_tree()
    tree["K1"].retired_at = utcnow()
    db.session.commit()
    response = client_for(tree["street"]).post(USERS, json=_new_user(tree))
    _assert_error(response, 422, "user.invalid_region")


def test_grid_workers_and_department_handlers_cannot_create_users(http, db, client_for):
    tree = build_tree()
    before = _count(db)
    for who in ("grid_worker", "department"):
        response = client_for(tree[who]).post(USERS, json=_new_user(tree, region_id=tree["G1"].id))
        _assert_error(response, 403, "auth.forbidden")
    assert _count(db) == before


def test_a_role_at_the_wrong_level_is_invalid_scope(http, db, client_for):
    tree = build_tree()
    before = _count(db)
    district = client_for(tree["district"])
    for role, region in (("street", "K1"), ("community", "S1"), ("grid_worker", "S1")):
        response = district.post(USERS, json=_new_user(tree, username=f"u_{role}", role=role,
                                                        region_id=tree[region].id))
        _assert_error(response, 422, "user.invalid_scope")
    assert _count(db) == before


def test_a_department_handler_needs_a_department_of_the_scope_region(http, db, client_for):
    tree = build_tree()
    other = make_region("440101002001", "community", (-118.35, 34.00, -118.30, 34.05), tree["S2"])
    before = _count(db)
    street = client_for(tree["district"])
    missing = street.post(USERS, json=_new_user(tree, role="department", region_id=tree["S1"].id))
    _assert_error(missing, 422, "user.department_required")
    wrong_region = street.post(USERS, json=_new_user(tree, role="department", region_id=other.id,
                                                     department_id=tree.department.id))
    _assert_error(wrong_region, 422, "user.invalid_department")
    unknown = street.post(USERS, json=_new_user(tree, role="department", region_id=tree["S1"].id,
                                                department_id=123456))
    _assert_error(unknown, 422, "user.invalid_department")
    not_a_handler = street.post(USERS, json=_new_user(tree, department_id=tree.department.id))
    _assert_error(not_a_handler, 422, "user.invalid_department")
    assert _count(db) == before


def test_a_user_name_is_unique_ignoring_case(http, db, client_for):
    tree = build_tree()
    before = _count(db)
    response = client_for(tree["admin"]).post(USERS, json=_new_user(tree, username="Worker1"))
    _assert_error(response, 409, "user.username_taken")
    assert _count(db) == before


def test_a_weak_password_is_refused(http, db, client_for):
    tree = build_tree()
    before = _count(db)
    for password in ("short", "x" * 257):
        response = client_for(tree["community"]).post(USERS, json=_new_user(tree, password=password))
        _assert_error(response, 422, "user.weak_password")
    assert _count(db) == before


@pytest.mark.parametrize("change", [
    {"surprise": 1},                              # unknown field
    {"username": None},
    {"username": ""},
    {"username": "ab"},                           # too short
    {"username": "x" * 65},                       # too long
    {"username": "has space"},
    {"username": 42},                             # wrong type
    {"display_name": ""},
    {"display_name": "   "},                      # blank
    {"display_name": "名" * 101},
    {"role": "mayor"},
    {"role": ["grid_worker"]},
    {"region_id": "12"},                          # string, not an integer
    {"region_id": 1.5},
    {"region_id": 0},
    {"region_id": -3},
    {"region_id": 2**31},                         # beyond PostgreSQL's integer
    {"region_id": 10**30},
    {"department_id": 2**31},
    {"password": "p" * 1025},
    {"password": 1234567890123},
])
def test_bad_create_bodies_are_422_and_write_nothing(http, db, client_for, change):
    tree = build_tree()
    before = _count(db)
    response = client_for(tree["admin"]).post(USERS, json=_new_user(tree, **change))
    _assert_error(response, 422, "request.invalid")
    assert response.json()["errors"]
    assert _count(db) == before


@pytest.mark.parametrize("missing", ["username", "display_name", "role", "region_id", "password"])
def test_a_create_without_a_required_field_is_422(http, db, client_for, missing):
    tree = build_tree()
    body = _new_user(tree)
    del body[missing]
    response = client_for(tree["admin"]).post(USERS, json=body)
    _assert_error(response, 422, "request.invalid")
    assert missing in response.json()["errors"]


def test_a_create_body_that_is_not_json_is_415(http, db, client_for):
    tree = build_tree()
    before = _count(db)
    admin = client_for(tree["admin"])
    response = admin.post(USERS, data="username=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    _assert_error(response, 415, "request.unsupported_media_type")
    response = admin.post(USERS, data=json.dumps(_new_user(tree)), headers={"Content-Type": "text/plain"})
    _assert_error(response, 415, "request.unsupported_media_type")
    assert _count(db) == before


def test_malformed_json_is_400(http, db, client_for):
    tree = build_tree()
    before = _count(db)
    response = client_for(tree["admin"]).post(USERS, data='{"username": "x",', headers={"Content-Type": "application/json"})
    _assert_error(response, 400, "request.malformed_json")
    assert _count(db) == before


def test_a_json_array_body_is_422(http, client_for):
    tree = build_tree()
    response = client_for(tree["admin"]).post(USERS, json=[_new_user(tree)])
    _assert_error(response, 422, "request.invalid")


def test_an_empty_body_is_422(http, client_for):
    tree = build_tree()
    admin = client_for(tree["admin"])
    response = admin.post(USERS, data=b"", headers={"Content-Type": "application/json"})
    _assert_error(response, 422, "request.invalid")
    assert "username" in response.json()["errors"]
    _assert_error(admin.post(USERS, data=b"null", headers={"Content-Type": "application/json"}), 422, "request.invalid")


def test_a_body_over_one_mebibyte_is_413(http, db, client_for):
    tree = build_tree()
    before = _count(db)
    body = json.dumps(_new_user(tree, display_name="x" * (1024 * 1024 + 10)))
    response = client_for(tree["admin"]).post(USERS, data=body, headers={"Content-Type": "application/json"})
    _assert_error(response, 413, "request.too_large")
    assert _count(db) == before


def test_creating_users_needs_a_token(http, db):
    tree = build_tree()
    response = http.post(USERS, json=_new_user(tree))
    _assert_error(response, 401, "auth.required")


# --- read and list -----------------------------------------------------------------

def test_a_street_sees_a_user_of_its_subtree(http, client_for):
    tree = build_tree()
    response = client_for(tree["street"]).get(f"{USERS}/{tree['grid_worker'].id}")
    assert response.status_code == 200
    assert response.json()["username"] == "worker1"


def test_an_out_of_scope_user_is_404_without_data(http, client_for):
    tree = build_tree()
    foreign = make_user("community2", "community", tree["K2"])
    response = client_for(tree["street"]).get(f"{USERS}/{foreign.id}")
    _assert_error(response, 404, "user.not_found")
    assert set(response.json()) == {"code", "status", "message"}
    assert "community2" not in response.text


def test_an_unknown_and_a_foreign_user_look_the_same(http, client_for):
    tree = build_tree()
    foreign = make_user("community2", "community", tree["K2"])
    street = client_for(tree["street"])
    unknown = street.get(f"{USERS}/999999")
    hidden = street.get(f"{USERS}/{foreign.id}")
    assert unknown.status_code == hidden.status_code == 404
    assert unknown.json() == hidden.json()


def test_a_grid_worker_sees_only_itself(http, client_for):
    tree = build_tree()
    worker = client_for(tree["grid_worker"])
    assert worker.get(f"{USERS}/{tree['grid_worker'].id}").status_code == 200
    _assert_error(worker.get(f"{USERS}/{tree['community'].id}"), 404, "user.not_found")
    listing = worker.get(USERS).json()
    assert [u["username"] for u in listing["items"]] == ["worker1"]


def test_a_user_id_beyond_32_bits_is_404_not_500(http, client_for):
    tree = build_tree()
    response = client_for(tree["admin"]).get(f"{USERS}/{2**31}")
    _assert_error(response, 404, "http.not_found")
    response = client_for(tree["admin"]).get(f"{USERS}/-1")
    _assert_error(response, 404, "http.not_found")


def test_the_user_list_is_scoped_to_the_actors_subtree(http, client_for):
    tree = build_tree()
    make_user("community2", "community", tree["K2"])
    listing = client_for(tree["street"]).get(USERS)
    assert listing.status_code == 200
    body = listing.json()
    assert {u["username"] for u in body["items"]} == {"street1", "community1", "worker1", "police1"}
    assert body["total"] == 4 and body["page"] == 1 and body["page_size"] == 50


def test_the_user_list_filters_by_role_region_text_and_activity(http, db, client_for):
    tree = build_tree()
    make_user("community2", "community", tree["K2"])
    idle = make_user("idle_worker", "grid_worker", tree["K1"])
    idle.is_active = False
    db.session.commit()
    city = client_for(tree["city"])

    def names(**params):
        response = city.get(USERS, params=params)
        assert response.status_code == 200, response.text
        return sorted(u["username"] for u in response.json()["items"])

    assert names(role="community") == ["community1", "community2"]
    assert names(region_id=tree["K1"].id) == ["community1", "idle_worker", "worker1"]
    assert names(region_id=tree["D2"].id) == ["community2"]
    assert names(q="WORK") == ["idle_worker", "worker1"]
    assert names(q="%") == []  # wildcards are literal
    assert names(active="false") == ["idle_worker"]
    assert names(role="grid_worker", active="true") == ["worker1"]


def test_the_user_list_paginates(http, client_for):
    tree = build_tree()
    admin = client_for(tree["admin"])
    first = admin.get(USERS, params={"page_size": 3}).json()
    last = admin.get(USERS, params={"page_size": 3, "page": 3}).json()
    assert first["total"] == 7 and len(first["items"]) == 3
    assert len(last["items"]) == 1


@pytest.mark.parametrize("params", [
    {"role": "mayor"}, {"region_id": 2**31}, {"region_id": "abc"}, {"page": 0}, {"page_size": 501},
    {"q": ""}, {"q": "x" * 65}, {"active": "perhaps"}, {"page": "first"},
])
def test_bad_list_filters_are_422(http, client_for, params):
    tree = build_tree()
    response = client_for(tree["admin"]).get(USERS, params=params)
    _assert_error(response, 422, "request.invalid")


# --- change ------------------------------------------------------------------------

def _patch(client, user, **changes):
    changes.setdefault("version", 1)
    return client.patch(f"{USERS}/{user.id}", json=changes)


def test_a_community_renames_its_worker_and_the_version_moves(http, client_for):
    tree = build_tree()
    response = _patch(client_for(tree["community"]), tree["grid_worker"], display_name="  王小明 ")
    assert response.status_code == 200, response.text
    assert response.json()["display_name"] == "王小明"
    assert response.json()["version"] == 2


def test_a_stale_version_is_409_and_changes_nothing(http, db, client_for):
    tree = build_tree()
    community = client_for(tree["community"])
    assert _patch(community, tree["grid_worker"], display_name="First").status_code == 200
    response = _patch(community, tree["grid_worker"], display_name="Second", version=1)
    _assert_error(response, 409, "user.version_conflict")
    db.session.expire_all()
    assert db.session.get(User, tree["grid_worker"].id).display_name == "First"


def test_a_patch_without_a_version_is_422(http, client_for):
    tree = build_tree()
    response = client_for(tree["community"]).patch(f"{USERS}/{tree['grid_worker'].id}", json={"display_name": "X"})
    _assert_error(response, 422, "request.invalid")
    assert "version" in response.json()["errors"]


@pytest.mark.parametrize("change", [
    {"display_name": ""}, {"role": "boss"}, {"region_id": 2**40}, {"is_active": "perhaps"}, {"is_active": None},
    {"version": "1"}, {"username": "renamed"}, {"password_hash": "x"},
])
def test_bad_patch_bodies_are_422_and_change_nothing(http, db, client_for, change):
    tree = build_tree()
    response = _patch(client_for(tree["community"]), tree["grid_worker"], **change)
    _assert_error(response, 422, "request.invalid")
    db.session.expire_all()
    assert db.session.get(User, tree["grid_worker"].id).version == 1


def test_a_community_cannot_manage_a_peer_community(http, db, client_for):
    tree = build_tree()
    peer = make_user("community_b", "community", tree["K1"])
    response = _patch(client_for(tree["community"]), peer, display_name="Taken over")
    _assert_error(response, 403, "auth.forbidden")
    assert "community_b" not in response.text


def test_a_community_cannot_manage_an_admin_scoped_inside_it(http, client_for):
    tree = build_tree()
    local_admin = make_user("local_admin", "admin", tree["K1"])
    response = _patch(client_for(tree["community"]), local_admin, display_name="Demoted")
    _assert_error(response, 403, "auth.forbidden")


def test_a_street_cannot_see_or_manage_its_district(http, client_for):
    tree = build_tree()
    response = _patch(client_for(tree["street"]), tree["district"], display_name="Boss")
    _assert_error(response, 404, "user.not_found")
    assert "district1" not in response.text


def test_nobody_manages_themselves_through_the_users_resource(http, client_for):
    tree = build_tree()
    response = _patch(client_for(tree["street"]), tree["street"], display_name="Me")
    _assert_error(response, 403, "auth.forbidden")


def test_a_street_cannot_promote_a_worker_to_its_own_rank(http, db, client_for):
    tree = build_tree()
    response = _patch(client_for(tree["street"]), tree["community"], role="street", region_id=tree["S1"].id)
    _assert_error(response, 403, "auth.forbidden")
    db.session.expire_all()
    assert db.session.get(User, tree["community"].id).role == "community"


def test_a_street_cannot_move_a_user_out_of_its_scope(http, client_for):
    tree = build_tree()
    response = _patch(client_for(tree["street"]), tree["community"], region_id=tree["K2"].id)
    _assert_error(response, 422, "user.invalid_region")


def test_changing_role_checks_the_scope_level(http, client_for):
    tree = build_tree()
    user = make_user("helper", "grid_worker", tree["K1"])
    response = _patch(client_for(tree["street"]), user, role="community", region_id=tree["G1"].id)
    _assert_error(response, 422, "user.invalid_scope")


def test_turning_a_handler_into_a_worker_clears_the_department(http, client_for):
    tree = build_tree()
    response = _patch(client_for(tree["district"]), tree["department"], role="grid_worker", region_id=tree["K1"].id)
    assert response.status_code == 200, response.text
    assert response.json()["department"] is None and response.json()["role"] == "grid_worker"


def test_turning_a_worker_into_a_handler_needs_a_department(http, client_for):
    tree = build_tree()
    user = make_user("helper", "grid_worker", tree["K1"])
    district = client_for(tree["district"])
    _assert_error(_patch(district, user, role="department"), 422, "user.department_required")
    response = _patch(district, user, role="department", region_id=tree["S1"].id, department_id=tree.department.id)
    assert response.status_code == 200, response.text


def test_moving_a_worker_away_from_its_cells_is_refused(http, client_for):
    tree = build_tree()
    street = client_for(tree["city"])
    response = _patch(street, tree["grid_worker"], region_id=tree["K2"].id)
    _assert_error(response, 409, "user.has_assignments")
    response = _patch(street, tree["grid_worker"], role="community")
    _assert_error(response, 409, "user.has_assignments")
    response = _patch(street, tree["grid_worker"], region_id=tree["G1"].id)  # G1 is still inside
    assert response.status_code == 200, response.text


def test_deactivating_a_user_ends_all_their_sessions(http, db, client_for):
    tree = build_tree()
    worker = client_for(tree["grid_worker"])
    response = _patch(client_for(tree["community"]), tree["grid_worker"], is_active=False)
    assert response.status_code == 200 and response.json()["is_active"] is False
    _assert_error(worker.get("/api/v1/me"), 401, "auth.session_ended")
    login = http.post("/api/v1/auth/login", json={"username": "worker1", "password": PASSWORD})
    _assert_error(login, 401, "auth.invalid_credentials")
    reasons = db.session.scalars(select(AuthSession.revoked_reason)).all()
    assert "deactivated" in reasons


def test_a_manager_resets_a_password_and_the_user_is_signed_out(http, client_for):
    tree = build_tree()
    worker = client_for(tree["grid_worker"])
    response = _patch(client_for(tree["community"]), tree["grid_worker"], password=NEW_PASSWORD)
    assert response.status_code == 200, response.text
    _assert_error(worker.get("/api/v1/me"), 401, "auth.session_ended")
    assert http.post("/api/v1/auth/login", json={"username": "worker1", "password": NEW_PASSWORD}).status_code == 200


def test_a_weak_reset_password_is_422(http, client_for):
    tree = build_tree()
    response = _patch(client_for(tree["community"]), tree["grid_worker"], password="short")
    _assert_error(response, 422, "user.weak_password")


# --- grid assignments (AB岗) ---------------------------------------------------------

def _cell_url(user, cell):
    return f"{USERS}/{user.id}/cells/{cell.id}"


def test_a_community_assigns_a_backup_worker_idempotently(http, db, client_for):
    tree = build_tree()
    community = client_for(tree["community"])
    for _ in range(2):
        response = community.put(_cell_url(tree["grid_worker"], tree["G2"]), json={"duty": "backup"})
        assert response.status_code == 200, response.text
        assert response.json()["duty"] == "backup"
        assert response.json()["region"]["code"] == "44010100100102"
    assert _count(db, GridAssignment) == 2
    cells = community.get(f"{USERS}/{tree['grid_worker'].id}/cells")
    assert cells.status_code == 200
    assert [(c["region"]["code"], c["duty"]) for c in cells.json()] == [
        ("44010100100101", "primary"), ("44010100100102", "backup")]


def test_a_second_primary_on_a_cell_is_409(http, db, client_for):
    tree = build_tree()
    other = make_user("worker2", "grid_worker", tree["K1"])
    community = client_for(tree["community"])
    response = community.put(_cell_url(other, tree["G1"]), json={"duty": "primary"})
    _assert_error(response, 409, "assignment.primary_taken")
    assert _count(db, GridAssignment) == 1
    backup = community.put(_cell_url(other, tree["G1"]), json={"duty": "backup"})
    assert backup.status_code == 200


def test_switching_duty_to_primary_respects_the_one_primary_rule(http, client_for):
    tree = build_tree()
    other = make_user("worker2", "grid_worker", tree["K1"])
    community = client_for(tree["community"])
    community.put(_cell_url(other, tree["G1"]), json={"duty": "backup"})
    _assert_error(community.put(_cell_url(other, tree["G1"]), json={"duty": "primary"}), 409,
                  "assignment.primary_taken")
    assert community.put(_cell_url(tree["grid_worker"], tree["G1"]), json={"duty": "backup"}).status_code == 200
    assert community.put(_cell_url(other, tree["G1"]), json={"duty": "primary"}).status_code == 200


def test_only_grid_workers_cover_cells(http, client_for):
    tree = build_tree()
    response = client_for(tree["street"]).put(_cell_url(tree["community"], tree["G1"]), json={"duty": "backup"})
    _assert_error(response, 422, "assignment.not_a_worker")


def test_only_live_grid_cells_inside_the_workers_scope_can_be_covered(http, db, client_for):
    from server.models._base import utcnow
    tree = build_tree()
    city = client_for(tree["city"])
    for region in (tree["K1"], tree["G3"], tree["S1"]):
        response = city.put(_cell_url(tree["grid_worker"], region), json={"duty": "backup"})
        _assert_error(response, 422, "assignment.not_a_cell")
    tree["G2"].retired_at = utcnow()
    db.session.commit()
    _assert_error(city.put(_cell_url(tree["grid_worker"], tree["G2"]), json={"duty": "backup"}), 422,
                  "assignment.not_a_cell")
    _assert_error(city.put(f"{USERS}/{tree['grid_worker'].id}/cells/999999", json={"duty": "backup"}), 422,
                  "assignment.not_a_cell")


def test_a_bad_duty_is_422(http, client_for):
    tree = build_tree()
    community = client_for(tree["community"])
    for body in ({"duty": "chief"}, {}, {"duty": "backup", "extra": 1}):
        _assert_error(community.put(_cell_url(tree["grid_worker"], tree["G2"]), json=body), 422, "request.invalid")


def test_a_worker_cannot_assign_itself(http, client_for):
    tree = build_tree()
    response = client_for(tree["grid_worker"]).put(_cell_url(tree["grid_worker"], tree["G2"]), json={"duty": "backup"})
    _assert_error(response, 403, "auth.forbidden")


def test_another_communitys_worker_is_404(http, client_for):
    tree = build_tree()
    foreign = make_user("worker_k2", "grid_worker", tree["K2"])
    community = client_for(tree["community"])
    _assert_error(community.put(_cell_url(foreign, tree["G3"]), json={"duty": "backup"}), 404, "user.not_found")
    _assert_error(community.get(f"{USERS}/{foreign.id}/cells"), 404, "user.not_found")


def test_releasing_a_cell(http, db, client_for):
    tree = build_tree()
    community = client_for(tree["community"])
    response = community.delete(_cell_url(tree["grid_worker"], tree["G1"]))
    assert response.status_code == 204
    assert _count(db, GridAssignment) == 0
    _assert_error(community.delete(_cell_url(tree["grid_worker"], tree["G1"])), 404, "assignment.not_found")


# --- the command line ----------------------------------------------------------------

def test_the_cli_creates_a_user_with_the_password_from_stdin(app, http, db):
    tree = build_tree()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "--username", "ops", "--role", "admin",
                                 "--region-code", tree["C"].code, "--password-stdin"],
                           input=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert NEW_PASSWORD not in result.output
    assert http.post("/api/v1/auth/login", json={"username": "ops", "password": NEW_PASSWORD}).status_code == 200
    listing = runner.invoke(args=["users", "list"])
    assert "ops\tadmin\t440100\tactive" in listing.output


def test_the_cli_reports_domain_errors_with_their_code(app, http, db):
    tree = build_tree()
    result = app.test_cli_runner().invoke(
        args=["users", "create", "--username", "ops", "--role", "street", "--region-code", tree["C"].code],
        input=NEW_PASSWORD + "\n")
    assert result.exit_code != 0
    assert "user.invalid_scope" in result.output
    result = app.test_cli_runner().invoke(
        args=["users", "create", "--username", "ops", "--role", "admin", "--region-code", "nope"],
        input="short\n")
    assert "user.invalid_region" in result.output


def test_the_cli_has_no_password_argument(app):
    result = app.test_cli_runner().invoke(args=["users", "create", "--help"])
    assert "--password " not in result.output and "--password-stdin" in result.output
