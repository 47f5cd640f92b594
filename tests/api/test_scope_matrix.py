"""The scope matrix: every role against regions, users and departments inside and outside
its subtree. Expectations are written out by hand (not derived from the permission code):
inside → allowed (or 403 where the role may look but not act), outside → 404 with
nothing of the object in the body."""
import pytest

from server.extensions import db
from server.models import Region
from tests.builders import build_tree

ROLES = ("admin", "city", "district", "street", "community", "grid_worker", "department")
ALL_REGIONS = ("C", "D1", "D2", "S1", "S2", "S3", "K1", "K2", "G1", "G2", "G3")
VISIBLE = {
    "admin": set(ALL_REGIONS),
    "city": set(ALL_REGIONS),
    "district": {"D1", "S1", "S2", "K1", "G1", "G2"},
    "street": {"S1", "K1", "G1", "G2"},
    "department": {"S1", "K1", "G1", "G2"},
    "community": {"K1", "G1", "G2"},
    "grid_worker": {"K1", "G1", "G2"},
}
# may rename/retire (strictly below one's own scope region; administrators everywhere)
MANAGEABLE = {
    "admin": set(ALL_REGIONS),
    "city": set(ALL_REGIONS) - {"C"},
    "district": {"S1", "S2", "K1", "G1", "G2"},
    "street": {"K1", "G1", "G2"},
    "community": {"G1", "G2"},
    "grid_worker": set(),
    "department": set(),
}
USERS = ("admin", "city", "district", "street", "community", "grid_worker", "department")
VISIBLE_USERS = {
    "admin": set(USERS),
    "city": set(USERS),
    "district": {"district", "street", "community", "grid_worker", "department"},
    "street": {"street", "community", "grid_worker", "department"},
    "community": {"community", "grid_worker"},
    "grid_worker": {"grid_worker"},
    "department": {"department"},
}
SEES_DEPARTMENT = {"admin", "city", "district", "street", "department"}


@pytest.fixture
def tree(http):
    return build_tree()


def assert_hidden(response, *secrets, code=None):
    assert response.status_code == 404, response.text
    assert response.json()["code"] == code if code else response.json()["code"].endswith("not_found")
    for secret in secrets:
        assert secret not in response.text


@pytest.mark.parametrize("role", ROLES)
def test_region_reads_follow_the_subtree(tree, client_for, role):
    client = client_for(tree[role])
    listed = client.get("/api/v1/regions", params={"page_size": 500}).json()
    assert {item["code"] for item in listed["items"]} == {tree[k].code for k in VISIBLE[role]}
    for key in ALL_REGIONS:
        region = tree[key]
        for path in (f"/api/v1/regions/{region.id}", f"/api/v1/regions/{region.id}/coverage"):
            response = client.get(path)
            if key in VISIBLE[role]:
                assert response.status_code == 200, (role, key, path)
            else:
                assert_hidden(response, region.code, region.name)


@pytest.mark.parametrize("role", ROLES)
def test_region_changes_follow_the_subtree_and_the_role(tree, client_for, role):
    client = client_for(tree[role])
    for key in ALL_REGIONS:
        region = tree[key]
        db.session.rollback()
        version = db.session.get(Region, region.id).version
        response = client.patch(f"/api/v1/regions/{region.id}", json={"name": f"改名{key}", "version": version})
        if key in MANAGEABLE[role]:
            assert response.status_code == 200, (role, key, response.text)
        elif key in VISIBLE[role]:
            assert (response.status_code, response.json()["code"]) == (403, "auth.forbidden"), (role, key)
        else:
            assert_hidden(response, region.code, region.name)
        grids = client.post(f"/api/v1/regions/{region.id}/grids", json={"target_area_m2": 5_000_000})
        if key not in VISIBLE[role]:
            assert_hidden(grids, region.code)
        elif role in ("grid_worker", "department"):
            assert grids.status_code == 403
        elif key.startswith("G"):
            assert (grids.status_code, grids.json()["code"]) == (422, "region.wrong_level")
        elif key.startswith("K"):  # K1 and K2 already have cells
            assert (grids.status_code, grids.json()["code"]) == (409, "region.grids_exist")
        else:  # above communities: communities with cells are skipped and reported
            assert grids.status_code == 200 and grids.json()["communities"] == 0, (role, key)


@pytest.mark.parametrize("role", ROLES)
def test_locate_only_finds_cells_inside_the_subtree(tree, client_for, role):
    client = client_for(tree[role])
    for key, (lon, lat) in {"G1": (-118.39, 34.02), "G2": (-118.36, 34.02), "G3": (-118.28, 34.02)}.items():
        response = client.get("/api/v1/regions/locate", params={"lon": lon, "lat": lat})
        if key in VISIBLE[role]:
            assert response.json()["cell"]["code"] == tree[key].code
        else:
            assert_hidden(response, tree[key].code, code="region.no_cell_at_point")


@pytest.mark.parametrize("role", ROLES)
def test_user_and_department_reads_follow_the_subtree(tree, client_for, role):
    client = client_for(tree[role])
    for key in USERS:
        user = tree.users[key]
        response = client.get(f"/api/v1/users/{user.id}")
        if key in VISIBLE_USERS[role]:
            assert response.status_code == 200 and response.json()["username"] == user.username
        else:
            assert_hidden(response, user.username)
    department = client.get(f"/api/v1/departments/{tree.department.id}")
    if role in SEES_DEPARTMENT:
        assert department.status_code == 200
    else:
        assert_hidden(department, tree.department.code, tree.department.name)
