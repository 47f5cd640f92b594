"""Regions over HTTP: scope, filters, GeoJSON, create/rename/retire, locate, import, grids, coverage."""
import pytest
from sqlalchemy import func, select

from geo.crs import wgs84_to_bd09, wgs84_to_gcj02
from server.extensions import db
from server.models import Region
from tests.builders import build_tree, make_region


def region_count() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Region))


@pytest.fixture
def tree(http):
    return build_tree()


def box(x0, y0, x1, y1):
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def codes(response):
    return sorted(item["code"] for item in response.json()["items"])


def test_a_street_lists_only_its_own_subtree(tree, client_for):
    street = client_for(tree["street"])
    response = street.get("/api/v1/regions", params={"page_size": 100})
    assert response.status_code == 200
    assert codes(response) == sorted(r.code for k, r in tree.regions.items() if k in ("S1", "K1", "G1", "G2"))
    assert response.json()["total"] == 4


def test_an_admin_lists_everything_filtered_by_level_and_parent(tree, client_for):
    admin = client_for(tree["admin"])
    assert admin.get("/api/v1/regions", params={"page_size": 500}).json()["total"] == 11
    grids = admin.get("/api/v1/regions", params={"level": "grid"})
    assert codes(grids) == sorted([tree["G1"].code, tree["G2"].code, tree["G3"].code])
    children = admin.get("/api/v1/regions", params={"parent_id": tree["D1"].id})
    assert codes(children) == sorted([tree["S1"].code, tree["S2"].code])
    subtree = admin.get("/api/v1/regions", params={"within_id": tree["K1"].id})
    assert codes(subtree) == sorted([tree["K1"].code, tree["G1"].code, tree["G2"].code])
    in_box = admin.get("/api/v1/regions", params={"level": "grid", "bbox": "-118.29,34.01,-118.26,34.02"})
    assert codes(in_box) == [tree["G3"].code]
    page = admin.get("/api/v1/regions", params={"page": 2, "page_size": 5}).json()
    assert (page["page"], page["page_size"], page["total"], len(page["items"])) == (2, 5, 11, 5)


def test_lists_carry_bilingual_level_labels(tree, client_for):
    item = client_for(tree["admin"]).get("/api/v1/regions", params={"level": "street"}).json()["items"][0]
    assert item["level_label"] == {"zh": "街道/乡镇", "en": "Street"}


def test_geojson_list_is_a_feature_collection_with_geometries(tree, client_for):
    response = client_for(tree["community"]).get("/api/v1/regions", params={"format": "geojson"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/geo+json")
    body = response.json()
    assert body["type"] == "FeatureCollection" and body["numberMatched"] == 3
    feature = next(f for f in body["features"] if f["properties"]["code"] == tree["G1"].code)
    assert feature["geometry"]["type"] == "MultiPolygon"
    xs = [x for x, _ in feature["geometry"]["coordinates"][0][0]]
    assert min(xs) == pytest.approx(-118.40) and max(xs) == pytest.approx(-118.375)


@pytest.mark.parametrize("params", [
    {"level": "planet"}, {"page": 0}, {"page_size": 501}, {"bbox": "1,2,3"}, {"bbox": "a,b,c,d"},
    {"bbox": "10,10,0,0"}, {"parent_id": "x"}, {"parent_id": 2**40}, {"format": "kml"}, {"unknown": 1},
])
def test_bad_list_arguments_are_422(tree, client_for, params):
    response = client_for(tree["admin"]).get("/api/v1/regions", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "request.invalid"


def test_a_region_outside_scope_is_404_and_not_described(tree, client_for):
    response = client_for(tree["street"]).get(f"/api/v1/regions/{tree['S3'].id}")
    assert response.status_code == 404
    assert response.json()["code"] == "region.not_found"
    assert tree["S3"].code not in response.text and tree["S3"].name not in response.text


def test_a_region_inside_scope_is_returned_as_json_or_feature(tree, client_for):
    street = client_for(tree["street"])
    assert street.get(f"/api/v1/regions/{tree['K1'].id}").json()["code"] == tree["K1"].code
    feature = street.get(f"/api/v1/regions/{tree['K1'].id}", params={"format": "geojson"})
    assert feature.headers["Content-Type"].startswith("application/geo+json")
    assert feature.json()["type"] == "Feature"


@pytest.mark.parametrize("segment", [str(2**40), str(2**31), "0", "-1", "\u0669", "\uff19", "1.0"])
def test_an_id_that_is_not_a_plain_32_bit_number_is_a_plain_404(tree, client_for, segment):
    response = client_for(tree["admin"]).get(f"/api/v1/regions/{segment}")
    assert (response.status_code, response.json()["code"]) == (404, "http.not_found")


def test_a_street_creates_a_community_inside_its_street(tree, client_for):
    response = client_for(tree["street"]).post("/api/v1/regions", json={
        "code": "440101001002", "name": "新社区", "level": "community", "parent_id": tree["S1"].id,
        "geometry": box(-118.40, 34.05, -118.35, 34.10)})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["path"] == f"{tree['S1'].path}{body['id']}/"
    # 0.05° of latitude ≈ 5.55 km; 0.05° of longitude at 34.075°N ≈ 4.61 km
    assert body["area_m2"] == pytest.approx(5_546 * 4_608, rel=0.01)


@pytest.mark.parametrize("change,status,code", [
    ({"parent_id": None}, 422, "region.invalid_parent"),
    ({"level": "grid"}, 422, "region.invalid_parent"),  # S1 is a street, not a community
    ({"code": "440100"}, 409, "region.code_taken"),
    ({"code": "bad code!"}, 422, "request.invalid"),
    ({"name": ""}, 422, "request.invalid"),
    ({"name": "x" * 201}, 422, "request.invalid"),
    ({"geometry": {"type": "Point", "coordinates": [0, 0]}}, 422, "geometry.wrong_type"),
    ({"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}}, 422, "geometry.invalid"),
    ({"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [1, 1], [0, 0]]]}}, 422, "geometry.out_of_range"),
    ({"geometry": {"type": "Polygon", "coordinates": [[["a", 0], [1, 0], [1, 1], ["a", 0]]]}}, 422, "geometry.malformed"),
    ({"geometry": {"type": "Polygon", "coordinates": "nope"}}, 422, "geometry.malformed"),
    ({"geometry": "POLYGON((0 0,1 0,1 1,0 0))"}, 422, "request.invalid"),
    ({"extra": 1}, 422, "request.invalid"),
    ({"parent_id": "1"}, 422, "request.invalid"),
    ({"parent_id": 2**31}, 422, "request.invalid"),
])
def test_bad_region_creation_is_refused_and_writes_nothing(tree, client_for, change, status, code):
    body = {"code": "440101001009", "name": "社区", "level": "community", "parent_id": tree["S1"].id,
            "geometry": box(-118.40, 34.05, -118.35, 34.10), **change}
    before = region_count()
    response = client_for(tree["street"]).post("/api/v1/regions", json=body)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert region_count() == before


def test_creating_under_a_parent_outside_scope_does_not_reveal_it(tree, client_for):
    response = client_for(tree["street"]).post("/api/v1/regions", json={
        "code": "440102001009", "name": "社区", "level": "community", "parent_id": tree["S3"].id,
        "geometry": box(-118.25, 34.05, -118.20, 34.10)})
    assert (response.status_code, response.json()["code"]) == (422, "region.invalid_parent")
    assert tree["S3"].code not in response.text


def test_a_grid_worker_cannot_create_regions(tree, client_for):
    response = client_for(tree["grid_worker"]).post("/api/v1/regions", json={
        "code": "44010100100109", "name": "格", "level": "grid", "parent_id": tree["K1"].id,
        "geometry": box(-118.40, 34.00, -118.39, 34.01)})
    assert (response.status_code, response.json()["code"]) == (403, "auth.forbidden")


def test_non_json_and_malformed_and_oversized_bodies(tree, client_for):
    admin = client_for(tree["admin"])
    before = region_count()
    wrong_type = admin.post("/api/v1/regions", data="code=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (wrong_type.status_code, wrong_type.json()["code"]) == (415, "request.unsupported_media_type")
    malformed = admin.post("/api/v1/regions", data="{not json", headers={"Content-Type": "application/json"})
    assert (malformed.status_code, malformed.json()["code"]) == (400, "request.malformed_json")
    huge = admin.post("/api/v1/regions", data=b"[" + b"0," * 600_000 + b"0]", headers={"Content-Type": "application/json"})
    assert (huge.status_code, huge.json()["code"]) == (413, "request.too_large")
    assert region_count() == before


def test_rename_needs_the_current_version(tree, client_for):
    street = client_for(tree["street"])
    k1 = street.get(f"/api/v1/regions/{tree['K1'].id}").json()
    renamed = street.patch(f"/api/v1/regions/{tree['K1'].id}", json={"name": "幸福社区", "version": k1["version"]})
    assert renamed.status_code == 200 and renamed.json()["name"] == "幸福社区"
    assert renamed.json()["version"] == k1["version"] + 1
    stale = street.patch(f"/api/v1/regions/{tree['K1'].id}", json={"name": "别的", "version": k1["version"]})
    assert (stale.status_code, stale.json()["code"]) == (409, "region.version_conflict")
    taken = street.patch(f"/api/v1/regions/{tree['K1'].id}", json={"code": tree["G1"].code, "version": k1["version"] + 1})
    assert (taken.status_code, taken.json()["code"]) == (409, "region.code_taken")
    missing_version = street.patch(f"/api/v1/regions/{tree['K1'].id}", json={"name": "x"})
    assert (missing_version.status_code, missing_version.json()["code"]) == (422, "request.invalid")


def test_a_street_cannot_rename_itself_but_the_district_can(tree, client_for):
    version = tree["S1"].version
    own = client_for(tree["street"]).patch(f"/api/v1/regions/{tree['S1'].id}", json={"name": "x", "version": version})
    assert (own.status_code, own.json()["code"]) == (403, "auth.forbidden")
    above = client_for(tree["district"]).patch(f"/api/v1/regions/{tree['S1'].id}", json={"name": "新街道", "version": version})
    assert above.status_code == 200


def test_retire_refuses_live_children_unless_cascading(tree, client_for):
    street = client_for(tree["street"])
    refused = street.post(f"/api/v1/regions/{tree['K1'].id}/retire", json={})
    assert (refused.status_code, refused.json()["code"]) == (409, "region.has_live_children")
    done = street.post(f"/api/v1/regions/{tree['K1'].id}/retire", json={"cascade": True})
    assert done.status_code == 200 and done.json()["retired_at"]
    assert codes(street.get("/api/v1/regions")) == [tree["S1"].code]
    with_retired = street.get("/api/v1/regions", params={"include_retired": "true"})
    assert len(with_retired.json()["items"]) == 4
    located = street.get("/api/v1/regions/locate", params={"lon": -118.39, "lat": 34.02})
    assert (located.status_code, located.json()["code"]) == (404, "region.no_cell_at_point")
    assert region_count() == 11  # retired, never deleted
    assert street.get(f"/api/v1/users/{tree['grid_worker'].id}/cells").json() == []  # G1's worker released


def test_locate_returns_the_cell_and_its_chain(tree, client_for):
    response = client_for(tree["grid_worker"]).get("/api/v1/regions/locate", params={"lon": -118.39, "lat": 34.02})
    assert response.status_code == 200
    body = response.json()
    assert body["cell"]["code"] == tree["G1"].code
    assert [r["code"] for r in body["chain"]] == [tree[k].code for k in ("C", "D1", "S1", "K1", "G1")]
    assert [r["level"] for r in body["chain"]] == ["city", "district", "street", "community", "grid"]


def test_a_point_on_a_shared_border_belongs_to_the_cell_with_the_smaller_code(tree, client_for):
    admin = client_for(tree["admin"])
    for _ in range(3):  # the same answer every time
        response = admin.get("/api/v1/regions/locate", params={"lon": -118.375, "lat": 34.02})
        assert response.json()["cell"]["code"] == min(tree["G1"].code, tree["G2"].code)


def test_locate_is_scoped_to_the_actor(tree, client_for):
    response = client_for(tree["street"]).get("/api/v1/regions/locate", params={"lon": -118.28, "lat": 34.02})
    assert (response.status_code, response.json()["code"]) == (404, "region.no_cell_at_point")
    assert tree["G3"].code not in response.text


@pytest.mark.parametrize("convert,crs", [(wgs84_to_gcj02, "gcj02"), (wgs84_to_bd09, "bd09")])
def test_locate_converts_chinese_phone_coordinates(tree, client_for, convert, crs):
    beijing = make_region("110101", "city", (116.39, 39.90, 116.41, 39.92))
    make_region("11010100100101", "grid", (116.40, 39.91, 116.401, 39.911), beijing)
    lon, lat = convert(116.4005, 39.9105)  # what AMap/Baidu report at that WGS84 spot: ~hundreds of m away
    admin = client_for(tree["admin"])
    as_wgs84 = admin.get("/api/v1/regions/locate", params={"lon": lon, "lat": lat})
    assert as_wgs84.status_code == 404  # read as GPS coordinates, the point misses the 100 m cell
    response = admin.get("/api/v1/regions/locate", params={"lon": lon, "lat": lat, "crs": crs})
    assert response.status_code == 200
    assert response.json()["cell"]["code"] == "11010100100101"
    assert response.json()["lon"] == pytest.approx(116.4005, abs=1e-5)


@pytest.mark.parametrize("params", [
    {"lon": 181, "lat": 0}, {"lon": 0, "lat": -91}, {"lon": "abc", "lat": 1}, {"lon": 1}, {},
    {"lon": "nan", "lat": 1}, {"lon": "inf", "lat": 1}, {"lon": 1, "lat": 1, "crs": "epsg3857"},
])
def test_bad_locate_arguments_are_422(tree, client_for, params):
    response = client_for(tree["admin"]).get("/api/v1/regions/locate", params=params)
    assert (response.status_code, response.json()["code"]) == (422, "request.invalid"), response.text


def test_locate_needs_a_token(tree, http):
    response = http.get("/api/v1/regions/locate", params={"lon": -118.39, "lat": 34.02})
    assert (response.status_code, response.json()["code"]) == (401, "auth.required")


def feature(code, name, geometry, **props):
    return {"type": "Feature", "geometry": geometry, "properties": {"code": code, "name": name, **props}}


IMPORT_ARGS = {"level": "community", "code_field": "code", "name_field": "name"}


def test_admin_imports_a_level_with_parents_by_largest_overlap(tree, client_for):
    collection = {"type": "FeatureCollection", "features": [
        # mostly in S2 (-118.35..-118.30), a sliver in S1
        feature("440101002001", "甲社区", box(-118.352, 34.00, -118.32, 34.05)),
        feature("440101002002", "乙社区", box(-118.32, 34.00, -118.30, 34.05)),
        feature("bad", "无几何", None),
        feature("440101002003", "自交社区", {"type": "Polygon", "coordinates": [
            [[-118.34, 34.06], [-118.31, 34.09], [-118.31, 34.06], [-118.34, 34.09], [-118.34, 34.06]]]}),
        feature("440199999001", "城外社区", box(-117.0, 33.0, -116.9, 33.1)),
        feature("440101002004", "丙社区", box(-118.31, 34.04, -118.30, 34.06)),  # overlaps 乙 by 0.01°²
    ]}
    admin = client_for(tree["admin"])
    response = admin.post("/api/v1/regions/import", params=IMPORT_ARGS, json=collection)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["updated"], report["unchanged"]) == (5, 0, 0)
    assert [r["code"] for r in report["refused"]] == ["bad"]
    assert [r["code"] for r in report["repaired"]] == ["440101002003"]
    assert [r["code"] for r in report["unassigned"]] == ["440199999001"]
    assert [r["code"] for r in report["partly_outside_parent"]] == ["440101002001"]
    assert report["overlapping_siblings"] == [
        {"codes": ["440101002002", "440101002004"], "area_m2": pytest.approx(1_110 * 922, rel=0.01)}]
    imported = {r["code"]: r for r in admin.get("/api/v1/regions", params={"level": "community", "page_size": 50}).json()["items"]}
    assert imported["440101002001"]["parent_id"] == tree["S2"].id
    assert imported["440101002002"]["parent_id"] == tree["S2"].id
    again = admin.post("/api/v1/regions/import", params=IMPORT_ARGS, json=collection).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 5)


def test_import_is_for_administrators_only_and_checks_its_input(tree, client_for):
    collection = {"type": "FeatureCollection", "features": [feature("X1", "X", box(-118.39, 34.06, -118.38, 34.07))]}
    before = region_count()
    city = client_for(tree["city"])
    refused = city.post("/api/v1/regions/import", params=IMPORT_ARGS, json=collection)
    assert (refused.status_code, refused.json()["code"]) == (403, "auth.forbidden")
    admin = client_for(tree["admin"])
    for args, body, status, code in [
        (IMPORT_ARGS, {"type": "Feature"}, 422, "request.invalid"),
        (IMPORT_ARGS, {"type": "FeatureCollection", "features": []}, 422, "request.invalid"),
        (IMPORT_ARGS, [1, 2], 422, "request.invalid"),
        ({"level": "galaxy", "code_field": "c", "name_field": "n"}, collection, 422, "request.invalid"),
        ({"level": "community"}, collection, 422, "request.invalid"),
    ]:
        response = admin.post("/api/v1/regions/import", params=args, json=body)
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    geojson_type = admin.post("/api/v1/regions/import", params=IMPORT_ARGS, data=b"x",
                              headers={"Content-Type": "text/plain"})
    assert geojson_type.status_code == 415
    assert region_count() == before


def test_grid_generation_refuses_a_community_with_cells_unless_replacing(tree, client_for):
    street = client_for(tree["street"])
    refused = street.post(f"/api/v1/regions/{tree['K1'].id}/grids", json={})
    assert (refused.status_code, refused.json()["code"]) == (409, "region.grids_exist")
    report = street.post(f"/api/v1/regions/{tree['K1'].id}/grids",
                         json={"replace": True, "target_area_m2": 2_000_000}).json()
    # 25.6 km² in cells of 2 km²; the two old codes come back as the first two serials
    assert report["communities"] == 1 and report["updated"] == 2 and report["retired"] == 0
    assert 11 <= report["created"] + 2 <= 14
    cells = street.get("/api/v1/regions", params={"parent_id": tree["K1"].id, "page_size": 500}).json()
    assert cells["total"] == report["created"] + 2
    assert all(item["code"].startswith(tree["K1"].code) for item in cells["items"])
    coverage = street.get(f"/api/v1/regions/{tree['K1'].id}/coverage").json()
    assert coverage["summary"]["ok"], coverage["features"][:3]


@pytest.mark.parametrize("body", [{"target_area_m2": 0}, {"target_area_m2": "big"}, {"sliver_ratio": 1.5},
                                  {"replace": "maybe"}, {"cells": 3}])
def test_bad_grid_options_are_422(tree, client_for, body):
    before = region_count()
    response = client_for(tree["admin"]).post(f"/api/v1/regions/{tree['K2'].id}/grids", json=body)
    assert (response.status_code, response.json()["code"]) == (422, "request.invalid")
    assert region_count() == before


def test_grids_cannot_be_generated_inside_a_grid_cell(tree, client_for):
    response = client_for(tree["admin"]).post(f"/api/v1/regions/{tree['G1'].id}/grids", json={})
    assert (response.status_code, response.json()["code"]) == (422, "region.wrong_level")


def test_coverage_reports_gaps_outside_parts_and_overlaps(tree, client_for):
    admin = client_for(tree["admin"])
    ok = admin.get(f"/api/v1/regions/{tree['K1'].id}/coverage")
    assert ok.status_code == 200 and ok.headers["Content-Type"].startswith("application/geo+json")
    assert ok.json()["summary"]["ok"] is True
    gap = admin.get(f"/api/v1/regions/{tree['S1'].id}/coverage").json()  # K1 covers only the south half
    assert [f["properties"]["kind"] for f in gap["features"]] == ["gap"]
    assert gap["features"][0]["properties"]["area_m2"] == pytest.approx(tree["S1"].area_m2 / 2, rel=0.01)
    make_region("44010100100103", "grid", (-118.36, 34.04, -118.34, 34.06), tree["K1"])  # overlaps G2, leaks out
    bad = admin.get(f"/api/v1/regions/{tree['K1'].id}/coverage").json()
    kinds = sorted(f["properties"]["kind"] for f in bad["features"])
    assert kinds == ["outside", "overlap"]
    assert bad["summary"] == {"outside": 1, "overlap": 1, "gap": 0, "ok": False, "min_area_m2": 1.0}
