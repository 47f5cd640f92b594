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


# ---------------------------------------------------------------- incidents, photos, tasks

INCIDENT_CELLS = ("G1", "G2", "G3")
SEES_INCIDENT = {
    "admin": {"G1", "G2", "G3"},
    "city": {"G1", "G2", "G3"},
    "district": {"G1", "G2"},
    "street": {"G1", "G2"},
    "community": {"G1", "G2"},
    "grid_worker": {"G1", "G2"},
    "department": {"G2"},  # only what was dispatched to its department
}
# supervisors of a case at grid level: managers at community level or above, in scope
SUPERVISES = {
    "admin": {"G1", "G2", "G3"},
    "city": {"G1", "G2", "G3"},
    "district": {"G1", "G2"},
    "street": {"G1", "G2"},
    "community": {"G1", "G2"},
    "grid_worker": set(),
    "department": set(),
}
CAN_REPORT_AT = {
    "admin": {"G1", "G2", "G3"},
    "city": {"G1", "G2", "G3"},
    "district": {"G1", "G2"},
    "street": {"G1", "G2"},
    "community": {"G1", "G2"},
    "grid_worker": {"G1", "G2"},
    "department": set(),
}


@pytest.fixture
def incidents(tree):
    import hashlib

    from server.models import IncidentPhoto
    from server.services.photos import blob_store
    from server.storage import photo_key
    from tests.images import jpeg
    from tests.incident_builders import make_category, make_incident, make_task

    leaf = make_category("9901", make_category("99"))
    made = {}
    image = jpeg()
    for key in INCIDENT_CELLS:
        incident = make_incident(leaf, tree[key], tree["admin"], status="accepted", description=f"秘密{key}")
        made[key] = incident
    make_task(made["G2"], department=tree.department)
    # a photo on each, stored as an upload stores it
    sha = hashlib.sha256(image).hexdigest()
    blob_store().put(photo_key(sha, "orig"), image, "image/jpeg")
    blob_store().put(photo_key(sha, "public"), image, "image/jpeg")
    for incident in made.values():
        db.session.add(IncidentPhoto(incident_id=incident.id, kind="report", content_type="image/jpeg",
                                     size_bytes=len(image), sha256=sha, width=64, height=48))
    db.session.commit()
    return {key: (incident.id, incident.version) for key, incident in made.items()}


@pytest.mark.parametrize("role", ROLES)
def test_incident_reads_photos_and_actions_follow_the_scope(tree, incidents, client_for, role):
    client = client_for(tree[role])
    listed = client.get("/api/v1/incidents", params={"page_size": 500}).json()["items"]
    assert {item["cell"]["code"] for item in listed} == {tree[k].code for k in SEES_INCIDENT[role]}
    for key, (incident_id, version) in incidents.items():
        detail = client.get(f"/api/v1/incidents/{incident_id}")
        photos = detail.json().get("photos", [])
        photo = client.get(f"/api/v1/incidents/{incident_id}/photos/{photos[0]['id']}" if photos
                           else f"/api/v1/incidents/{incident_id}/photos/1")
        comment = client.post(f"/api/v1/incidents/{incident_id}/actions/comment", json={"note": "看过"})
        if key in SEES_INCIDENT[role]:
            assert detail.status_code == 200 and photo.status_code == 200 and comment.status_code == 200, (role, key)
        else:
            for response in (detail, photo, comment):
                assert_hidden(response, f"秘密{key}", code="incident.not_found")
        if comment.status_code == 200:
            version = comment.json()["version"]  # the comment made a new version
        suspend = client.post(f"/api/v1/incidents/{incident_id}/actions/suspend",
                              json={"version": version, "note": "等待"})
        if key in SUPERVISES[role]:
            assert suspend.status_code == 200, (role, key, suspend.text)
        elif key in SEES_INCIDENT[role]:
            assert (suspend.status_code, suspend.json()["code"]) == (403, "auth.forbidden"), (role, key)
        else:
            assert_hidden(suspend, f"秘密{key}", code="incident.not_found")


@pytest.mark.parametrize("role", ROLES)
def test_reports_are_taken_only_inside_the_scope(tree, client_for, role):
    from tests.builders import standard_categories

    standard_categories()
    client = client_for(tree[role])
    for key, (lon, lat) in {"G1": (-118.39, 34.02), "G2": (-118.36, 34.02), "G3": (-118.28, 34.02)}.items():
        response = client.post("/api/v1/incidents", json={
            "category": "0702", "description": "打架", "location": {"type": "Point", "coordinates": [lon, lat]}})
        if key in CAN_REPORT_AT[role]:
            assert response.status_code == 201, (role, key, response.text)
        elif role == "department":
            assert (response.status_code, response.json()["code"]) == (403, "auth.forbidden")
        else:
            assert (response.status_code, response.json()["code"]) == (422, "incident.outside_grid"), (role, key)
