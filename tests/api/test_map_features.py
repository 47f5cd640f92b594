"""The map's GeoJSON (docs/MAP.md): regions of a box with their counts, incidents of a box,
pages by cursor, simplified geometry, filters and scope."""
from __future__ import annotations

from shapely.geometry import shape

from tests.api.test_map_tiles import CITY

GEOJSON = "application/geo+json"
BOX = ",".join(str(v) for v in CITY)


def collection(client, path: str, **params) -> dict:
    response = client.get(f"/api/v1/map/{path}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith(GEOJSON)
    body = response.json()
    assert body["type"] == "FeatureCollection" and body["numberReturned"] == len(body["features"])
    return body


def test_regions_of_a_box_at_a_zoom_with_their_counts(tree, cases, client_for):
    admin = client_for(tree["admin"])
    cells = {f["id"]: f for f in collection(admin, "regions", bbox=BOX, zoom=15)["features"]}
    assert set(cells) == {tree[k].id for k in ("G1", "G2", "G3")}
    g1 = cells[tree["G1"].id]
    assert g1["properties"].items() >= {"code": tree["G1"].code, "level": "grid", "open": 2, "yellow": 0, "red": 1,
                                        "light": "red"}.items()
    assert shape(g1["geometry"]).equals(shape({"type": "Polygon", "coordinates": [[
        [-118.40, 34.00], [-118.375, 34.00], [-118.375, 34.05], [-118.40, 34.05], [-118.40, 34.00]]]}))
    streets = collection(admin, "regions", bbox=BOX, zoom=10)["features"]
    assert {f["properties"]["level"] for f in streets} == {"street"}
    communities = collection(admin, "regions", bbox=BOX, zoom=15, level="community")["features"]
    assert {f["id"] for f in communities} == {tree["K1"].id, tree["K2"].id}


def test_incidents_of_a_box_filtered_and_paged(tree, cases, client_for):
    admin = client_for(tree["admin"])
    everything = collection(admin, "incidents", bbox=BOX, status_group="all")
    assert {f["id"] for f in everything["features"]} == {c.id for c in cases.values()}
    assert everything["next_cursor"] is None
    late = next(f for f in everything["features"] if f["id"] == cases["late"].id)
    assert late["geometry"]["type"] == "Point" and late["properties"]["light"] == "red"
    assert late["properties"]["category"] == "0702" and late["properties"]["reported_at"]
    seen, cursor = [], 0
    while cursor is not None:
        page = collection(admin, "incidents", bbox=BOX, status_group="all", limit=2, cursor=cursor)
        assert len(page["features"]) <= 2
        seen += [f["id"] for f in page["features"]]
        cursor = page["next_cursor"]
    assert seen == sorted(c.id for c in cases.values())  # every one once, in id order
    red = collection(admin, "incidents", bbox=BOX, light="red")
    assert {f["id"] for f in red["features"]} == {cases["late"].id, cases["elsewhere"].id}
    k1_only = collection(admin, "incidents", bbox="-118.40,34.00,-118.35,34.05")
    assert cases["elsewhere"].id not in {f["id"] for f in k1_only["features"]}


def test_scope_and_bad_arguments(tree, cases, client_for):
    community = client_for(tree["community"])
    regions = collection(community, "regions", bbox=BOX, zoom=9)["features"]
    assert regions == []  # its district is above its scope: nothing of that level in it
    cells = collection(community, "regions", bbox=BOX, zoom=15)["features"]
    assert {f["id"] for f in cells} == {tree["G1"].id, tree["G2"].id}
    mine = {f["id"] for f in collection(community, "incidents", bbox=BOX, status_group="all")["features"]}
    assert mine == {cases[k].id for k in ("late", "on_time", "soon", "closed", "police")}
    police = client_for(tree["department"])
    assert {f["id"] for f in collection(police, "incidents", bbox=BOX)["features"]} == {cases["police"].id}
    for params in ({"zoom": 15}, {"bbox": BOX}, {"bbox": "1,2,3", "zoom": 3}, {"bbox": BOX, "zoom": 23},
                   {"bbox": BOX, "zoom": 3, "limit": 2001}, {"bbox": BOX, "zoom": 3, "cursor": -1},
                   {"bbox": BOX, "zoom": 3, "level": "planet"}):
        response = community.get("/api/v1/map/regions", params=params)
        assert response.status_code == 422, (params, response.text)


def test_the_map_config_names_the_basemap_if_there_is_one(tree, client_for, app, monkeypatch):
    community = client_for(tree["community"])
    assert community.get("/api/v1/map/config").json() == {"basemap": None, "incidents_from_zoom": 13, "max_zoom": 22}
    url = "https://webrd01.example.cn/appmaptile?x={x}&y={y}&z={z}"
    monkeypatch.setitem(app.config, "MAP_BASEMAP_URL", url)
    monkeypatch.setitem(app.config, "MAP_BASEMAP_CRS", "gcj02")
    monkeypatch.setitem(app.config, "MAP_BASEMAP_ATTRIBUTION", "© 高德")
    assert community.get("/api/v1/map/config").json()["basemap"] == {"url": url, "crs": "gcj02",
                                                                     "attribution": "© 高德"}
