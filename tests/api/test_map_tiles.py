"""Vector tiles (docs/MAP.md), decoded with mapbox-vector-tile: layers, attributes, the
clusters of low zooms, filters, errors and caching, and scope for every role."""
from __future__ import annotations

import math
from datetime import timedelta

import mapbox_vector_tile
import pytest

from server.models._base import utcnow
from tests.incident_builders import point_in

MVT = "application/vnd.mapbox-vector-tile"


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """The XYZ tile holding the point."""
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def tiles_over(bounds: tuple[float, float, float, float], z: int):
    """Every tile at zoom ``z`` that touches the box."""
    _, x0, y0 = tile_of(bounds[0], bounds[3], z)
    _, x1, y1 = tile_of(bounds[2], bounds[1], z)
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def layers(client, z: int, x: int, y: int, **params) -> dict:
    response = client.get(f"/api/v1/map/tiles/{z}/{x}/{y}.mvt", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == MVT
    return mapbox_vector_tile.decode(response.content) if response.content else {}


def by_id(layer: dict | None) -> dict[int, dict]:
    return {f["id"]: f["properties"] for f in (layer or {}).get("features", [])}


def merged(client, bounds, z: int, **params) -> dict[str, dict[int, dict]]:
    """Each layer's features by id over every tile at ``z`` touching ``bounds``."""
    found: dict[str, dict[int, dict]] = {}
    for tile in tiles_over(bounds, z):
        for name, layer in layers(client, *tile, **params).items():
            found.setdefault(name, {}).update(by_id(layer))
    return found


CITY = (-118.40, 34.00, -118.20, 34.10)


def test_a_cell_tile_has_its_cells_coloured_by_their_worst_light_and_its_incidents(tree, cases, client_for):
    admin = client_for(tree["admin"])
    got = merged(admin, (-118.40, 34.00, -118.35, 34.05), 14)  # K1: G1 and G2
    cells = got["regions"]
    assert {tree["G1"].id, tree["G2"].id} <= set(cells)
    g1, g2 = cells[tree["G1"].id], cells[tree["G2"].id]
    assert (g1["level"], g1["code"], g1["open"], g1["yellow"], g1["red"], g1["light"]) == (
        "grid", tree["G1"].code, 2, 0, 1, "red")
    assert (g2["open"], g2["yellow"], g2["red"], g2["light"]) == (2, 1, 0, "yellow")  # the closed one is not open
    incidents = got["incidents"]
    assert incidents[cases["late"].id] == {"category": "0702", "status": "accepted", "priority": cases["late"].priority,
                                           "light": "red", "level": "grid"}
    assert incidents[cases["soon"].id]["light"] == "yellow" and incidents[cases["on_time"].id]["light"] == "green"
    assert cases["closed"].id not in incidents  # open cases by default
    assert "clusters" not in got
    centre = point_in(tree["G1"], 0.3, 0.3)
    point = layers(admin, *tile_of(centre.x, centre.y, 16))["incidents"]["features"][0]["geometry"]
    assert point["type"] == "Point" and all(0 <= c <= 4096 for c in point["coordinates"])


def test_each_region_drawn_has_one_label_point_inside_it_in_one_tile(tree, cases, client_for):
    admin = client_for(tree["admin"])
    for z, keys in ((14, ("G1", "G2", "G3")), (12, ("K1", "K2"))):
        found: dict[int, list] = {}
        for tile in tiles_over(CITY, z):
            for feature in layers(admin, *tile).get("labels", {}).get("features", []):
                found.setdefault(feature["id"], []).append(feature["properties"])
        assert all(len(copies) == 1 for copies in found.values()), z  # written once, not once a tile
        for key in keys:
            (label,) = found[tree[key].id]
            assert (label["name"], label["name_en"], label["level"]) == (
                tree[key].name, tree[key].name_en, tree[key].level)
        busiest, open_ = ("G1", 2) if z == 14 else ("K1", 4)  # their open cases, as the region counts them
        assert found[tree[busiest].id][0]["open"] == open_


def test_the_region_level_follows_the_zoom(tree, cases, client_for):
    admin = client_for(tree["admin"])
    levels = {z: {p["level"] for p in merged(admin, CITY, z)["regions"].values()} for z in (9, 11, 12, 14)}
    assert levels == {9: {"district"}, 11: {"street"}, 12: {"community"}, 14: {"grid"}}
    streets = merged(admin, CITY, 10)["regions"]
    assert (streets[tree["S1"].id]["open"], streets[tree["S1"].id]["light"]) == (4, "red")  # late, on time, soon, police
    assert (streets[tree["S3"].id]["open"], streets[tree["S2"].id]["light"]) == (1, "none")


def clustered(client, z, **params):
    """The clusters' (count, open, red) summed over every tile of the city at ``z``."""
    counted = open_ = red = 0
    for tile in tiles_over(CITY, z):
        got = layers(client, *tile, **params)
        assert "incidents" not in got
        for feature in got.get("clusters", {}).get("features", []):
            assert feature["properties"]["count"] > 0
            counted += feature["properties"]["count"]
            open_ += feature["properties"]["open"]
            red += feature["properties"]["red"]
    return counted, open_, red


def test_below_zoom_13_incidents_come_as_clusters_that_count_them_all(tree, cases, client_for):
    admin = client_for(tree["admin"])
    for z in (8, 12):
        assert clustered(admin, z) == (5, 5, 2), z  # the open ones: late, on time, soon, elsewhere, police
        # open clusters are drawn from the cells' counts, by light; other status groups from the cases themselves
        assert clustered(admin, z, light="red") == (2, 2, 2), z
        assert clustered(admin, z, light=["yellow", "green"]) == (3, 3, 0), z
        assert clustered(admin, z, category="0701") == (2, 2, 0), z  # on time and police
        assert clustered(admin, z, status_group="closed") == (1, 0, 0), z
        assert clustered(admin, z, status_group="all") == (6, 5, 2), z


def test_a_case_on_the_edge_between_tiles_is_drawn_in_one_of_them(tree, cases, client_for):
    from shapely.geometry import Point

    from tests.incident_builders import make_incident

    edge = 2804 / 2 ** 14 * 360 - 180  # the west edge of tile x 2804 at z14 (1402 at z13, 701 at z12), in G1
    on_edge = make_incident(cases["late"].category, tree["G1"], None, status="accepted", at=Point(edge, 34.02))
    admin = client_for(tree["admin"])
    for z in (13, 14, 16):
        holding = [tile for tile in tiles_over(CITY, z)
                   if on_edge.id in by_id(layers(admin, *tile).get("incidents"))]
        assert len(holding) == 1, (z, holding)
    for status_group, expected in (("open", 6), ("all", 7)):  # the clusters count it once too
        assert clustered(admin, 12, status_group=status_group)[0] == expected


def test_filters_category_light_and_status_group(tree, cases, client_for):
    admin = client_for(tree["admin"])
    k1 = (-118.40, 34.00, -118.35, 34.05)

    def shown(**params):
        return set(merged(admin, k1, 13, **params).get("incidents", {}))

    assert shown(category="0701") == {cases["on_time"].id, cases["police"].id}
    assert shown(category="07") == {cases[k].id for k in ("late", "on_time", "soon", "police")}
    assert shown(light=["red", "yellow"]) == {cases["late"].id, cases["soon"].id}
    assert shown(status_group="closed") == {cases["closed"].id}
    tomorrow = merged(admin, k1, 13, reported_from=(utcnow() + timedelta(days=1)).isoformat())
    assert "incidents" not in tomorrow and tomorrow["regions"]  # the regions are still drawn, with nothing open
    assert {p["open"] for p in tomorrow["regions"].values()} == {0}


def test_bad_tiles_and_filters_are_refused_and_an_empty_area_is_an_empty_tile(tree, cases, client_for):
    admin = client_for(tree["admin"])
    for path in ("23/0/0", "3/8/0", "3/0/8", "-1/0/0", "4/-1/2"):
        response = admin.get(f"/api/v1/map/tiles/{path}.mvt")
        assert response.status_code == 400 and response.json()["code"] == "map.tile_out_of_range", path
    bad = admin.get("/api/v1/map/tiles/14/2800/6500.mvt", params={"light": "purple", "status_group": "some"})
    assert bad.status_code == 422 and {"light", "status_group"} <= set(bad.json()["errors"])
    empty = admin.get("/api/v1/map/tiles/14/0/0.mvt")
    assert empty.status_code == 200 and empty.content == b"" and empty.headers["Content-Type"] == MVT


def test_a_tile_has_an_etag_and_answers_304_when_unchanged(tree, cases, client_for):
    admin = client_for(tree["admin"])
    centre = point_in(tree["G1"])
    path = "/api/v1/map/tiles/{}/{}/{}.mvt".format(*tile_of(centre.x, centre.y, 14))
    first = admin.get(path)
    assert first.headers["Cache-Control"] == "private, max-age=15" and first.headers["ETag"]
    again = admin.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    cases["on_time"].status = "closed"
    from server.extensions import db
    db.session.commit()
    assert admin.get(path, headers={"If-None-Match": first.headers["ETag"]}).status_code == 200


def test_a_tile_needs_a_signed_in_user(tree, live_server):
    import requests

    assert requests.get(f"{live_server}/api/v1/map/tiles/0/0/0.mvt", timeout=10).status_code == 401


@pytest.mark.parametrize("role", ["admin", "city", "district", "street", "community", "grid_worker", "department"])
def test_no_feature_outside_the_actors_scope_in_any_tile(tree, cases, client_for, role):
    user = tree[role]
    client = client_for(user)
    scope = "/" if role == "admin" else user.region.path
    regions = {r.id for r in tree.regions.values() if r.path.startswith(scope)}
    if role == "department":  # the cases dispatched to the station, nothing else
        visible = {cases["police"].id}
    else:
        visible = {c.id for c in cases.values() if c.region_path.startswith(scope) and c.status != "closed"}
    seen_regions, seen_incidents, clustered = set(), set(), {}
    for z in (9, 10, 12, 13, 14):
        for tile in tiles_over(CITY, z):
            got = layers(client, *tile)
            seen_regions |= set(by_id(got.get("regions")))
            seen_incidents |= set(by_id(got.get("incidents")))
            clustered[z] = clustered.get(z, 0) + sum(f["properties"]["count"]
                                                     for f in got.get("clusters", {}).get("features", []))
    assert seen_regions and seen_regions <= regions and seen_incidents == visible
    assert clustered[9] == clustered[12] == len(visible)


def test_a_tile_statement_is_never_prepared_on_the_server(tree, cases):
    """psycopg prepares a statement run five times on a connection; prepared, a tile's ran
    several times slower (docs/MAP.md, Speed): the map runs its statements unprepared."""
    from sqlalchemy import text

    from server.domain.permissions import Actor
    from server.extensions import db
    from server.services import maps

    admin = Actor(user_id=tree["admin"].id, role="admin", scope_path="/", department_id=None)
    centre = point_in(tree["G1"])
    for _ in range(8):  # on one connection: the session's
        assert maps.tile(admin, *tile_of(centre.x, centre.y, 14), maps.TileFilter())
    assert db.session.connection().connection.driver_connection.prepare_threshold == 5  # put back
    prepared = db.session.scalar(text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%ST_AsMVT%'"))
    assert prepared == 0


@pytest.mark.parametrize("autocommit", [False, True])
def test_analytic_statements_run_without_jit_in_a_transaction_and_in_autocommit(db, autocommit):
    """An API read runs in autocommit, where SET LOCAL does nothing: the setting is made for
    the connection there and put back after the block."""
    from sqlalchemy import text

    from server.services.analytic import analytic

    if autocommit:
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    before = db.session.scalar(text("SHOW jit"))
    with analytic():
        assert db.session.scalar(text("SHOW jit")) == "off"
    assert db.session.scalar(text("SHOW jit")) == (before if autocommit else "off")  # LOCAL: till the end
    db.session.rollback()
    assert db.session.scalar(text("SHOW jit")) == before
