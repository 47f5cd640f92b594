"""Input crafted to break things: every answer is a 4xx with a code, nothing is written,
and concurrent or repeated requests neither fail nor duplicate."""
import threading

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from server import create_app
from server.extensions import db
from server.models import GridAssignment, Region
from tests.builders import PASSWORD, build_tree, make_region, make_user

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def tree(http):
    return build_tree()


def count(model) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


def box(x0, y0, x1, y1):
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


@pytest.mark.parametrize("raw", [
    b'{"username": "a\\u0000b", "password": "xxxxxxxxxxxx"}',  # NUL: PostgreSQL text cannot hold it
    b'{"username": "\\ud800", "password": "xxxxxxxxxxxx"}',  # a lone surrogate cannot be encoded
])
def test_unstorable_characters_in_a_body_are_422(http, raw):
    response = http.post("/api/v1/auth/login", data=raw, headers=JSON)
    assert (response.status_code, response.json()["code"]) == (422, "request.invalid_characters")


@pytest.mark.parametrize("raw", [
    b"[" * 100_000,  # deeper than the JSON parser recurses
    b'{"username": 1' + b"0" * 5000 + b', "password": "x"}',  # more digits than Python converts
    b'{"username": NaN, "password": "x"}',
    b'{"username": Infinity, "password": "x"}',
])
def test_json_python_cannot_or_should_not_parse_is_400(http, raw):
    response = http.post("/api/v1/auth/login", data=raw, headers=JSON)
    assert (response.status_code, response.json()["code"]) == (400, "request.malformed_json")


def test_unstorable_characters_in_query_strings_and_nested_properties_write_nothing(tree, client_for):
    admin = client_for(tree["admin"])
    listed = admin.get("/api/v1/regions", params={"q": "a\x00b"})
    assert (listed.status_code, listed.json()["code"]) == (422, "request.invalid_characters")
    before = count(Region)
    created = admin.post("/api/v1/regions", json={
        "code": "440101002001", "name": "社区", "level": "community", "parent_id": tree["S2"].id,
        "geometry": box(-118.35, 34.00, -118.30, 34.05), "properties": {"note": ["ok", {"deep": "x\x00"}]}})
    assert (created.status_code, created.json()["code"]) == (422, "request.invalid_characters")
    assert count(Region) == before


def test_a_user_name_that_grows_when_lowercased_is_just_a_failed_sign_in(http):
    response = http.post("/api/v1/auth/login", json={"username": "İ" * 64, "password": "x" * 12})
    assert (response.status_code, response.json()["code"]) == (401, "auth.invalid_credentials")


def test_a_greek_user_name_ending_in_sigma_signs_in(http, tree):
    make_user("ΑΒΣ", "grid_worker", tree["K1"])
    response = http.post("/api/v1/auth/login", json={"username": "ΑΒΣ", "password": PASSWORD})
    assert response.status_code == 200
    assert http.post("/api/v1/auth/login", json={"username": "αβσ", "password": PASSWORD}).status_code == 200


def test_anonymous_clients_get_401_before_their_body_is_read(http):
    response = http.post("/api/v1/regions/import", params={"level": "grid", "code_field": "c", "name_field": "n"},
                         json={"type": "not a collection"})
    assert (response.status_code, response.json()["code"]) == (401, "auth.required")


def test_concurrent_identical_assignments_all_succeed_once(tree, client_for):
    community = client_for(tree["community"])
    path = f"/api/v1/users/{tree['grid_worker'].id}/cells/{tree['G2'].id}"  # (ids read here: threads have no app context)
    cell_id = tree["G2"].id
    statuses = []

    def put():
        statuses.append(community.put(path, json={"duty": "backup"}).status_code)

    threads = [threading.Thread(target=put) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 12
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(GridAssignment)
                             .where(GridAssignment.region_id == cell_id)) == 1


def test_generated_codes_never_take_over_cells_of_another_community(tree, client_for):
    admin = client_for(tree["admin"])
    # community "B10" (in district D2) gets cells B1001…; community "B1" (in D1) with
    # more than 99 cells would number B1001… too
    b10 = make_region("B10", "community", (-118.25, 34.05, -118.24, 34.06), tree["S3"])
    assert admin.post(f"/api/v1/regions/{b10.id}/grids", json={"target_area_m2": 100_000}).status_code == 200
    b10_cells = admin.get("/api/v1/regions", params={"parent_id": b10.id, "page_size": 500}).json()["items"]
    b1 = make_region("B1", "community", (-118.35, 34.05, -118.34, 34.06), tree["S2"])
    refused = client_for(tree["district"]).post(f"/api/v1/regions/{b1.id}/grids", json={"target_area_m2": 7_000})
    assert (refused.status_code, refused.json()["code"]) == (409, "region.code_taken")
    after = admin.get("/api/v1/regions", params={"parent_id": b10.id, "page_size": 500}).json()["items"]
    assert [(c["code"], c["path"], c["version"]) for c in after] == [(c["code"], c["path"], c["version"]) for c in b10_cells]


def test_codes_that_would_overflow_are_refused(tree, client_for):
    long = make_region("C" * 31, "community", (-118.25, 34.05, -118.24, 34.06), tree["S3"])
    response = client_for(tree["admin"]).post(f"/api/v1/regions/{long.id}/grids", json={})
    assert (response.status_code, response.json()["code"]) == (422, "region.code_too_long")


def test_a_hand_drawn_region_must_lie_inside_its_parent(tree, client_for):
    before = count(Region)
    response = client_for(tree["community"]).post("/api/v1/regions", json={
        "code": "00000", "name": "越界网格", "level": "grid", "parent_id": tree["K1"].id,
        "geometry": box(-118.40, 34.00, -118.20, 34.05)})  # K1 and all of K2 beside it
    assert (response.status_code, response.json()["code"]) == (422, "region.outside_parent")
    assert count(Region) == before


def test_concurrent_imports_of_the_same_level_both_finish_without_duplicates(tree, client_for):
    admin = client_for(tree["admin"])
    features = [{"type": "Feature", "geometry": box(-118.35 + i * 0.001, 34.06, -118.349 + i * 0.001, 34.061),
                 "properties": {"code": f"K{i:03d}", "name": f"社区{i}"}} for i in range(40)]
    args = {"level": "community", "code_field": "code", "name_field": "name"}
    statuses = []

    def post(order):
        response = admin.post("/api/v1/regions/import", params=args,
                              json={"type": "FeatureCollection", "features": order})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post, args=(list(f),)) for f in (features, features[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200, 200]
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Region).where(Region.code.like("K%"))) == 40


def test_reimporting_without_a_parent_keeps_the_parent_a_region_has(tree, client_for):
    admin = client_for(tree["admin"])
    k1 = tree["K1"]
    collection = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": box(
        -118.40, 34.00, -118.35, 34.05), "properties": {"code": k1.code, "name": "改名社区", "up": "no-such-street"}}]}
    report = admin.post("/api/v1/regions/import", json=collection, params={
        "level": "community", "code_field": "code", "name_field": "name", "parent_code_field": "up"}).json()
    assert report["kept_parent"] == [k1.code] and report["unassigned"] == []
    again = admin.get(f"/api/v1/regions/{k1.id}").json()
    assert (again["parent_id"], again["path"], again["name"]) == (tree["S1"].id, k1.path, "改名社区")


def test_healthz_answers_while_the_database_is_unreachable():
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://nobody@/none?host=/nonexistent"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert requests.get(base + "/healthz", timeout=10).status_code == 200
        ready = requests.get(base + "/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    finally:
        server.shutdown()
