import math
import random

import pytest
import shapely
from geoalchemy2.elements import WKBElement, WKTElement
from shapely.geometry import GeometryCollection, LinearRing, LineString, MultiPolygon, Point, Polygon, box

from geo.geometry import (
    GeometryError,
    as_multipolygon,
    from_db,
    geodesic_area_m2,
    parse_point,
    parse_polygonal,
    to_db,
    to_geojson,
)

# Exterior counter-clockwise, hole clockwise: the RFC 7946 orientation.
SQUARE = [[116.40, 39.90], [116.41, 39.90], [116.41, 39.91], [116.40, 39.91], [116.40, 39.90]]
HOLE = [[116.402, 39.902], [116.402, 39.904], [116.404, 39.904], [116.404, 39.902], [116.402, 39.902]]
BOW_TIE = [[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]


def polygon(*rings):
    return {"type": "Polygon", "coordinates": list(rings)}


def error_code(obj, **kwargs):
    with pytest.raises(GeometryError) as raised:
        parse_polygonal(obj, **kwargs)
    assert raised.value.message and str(raised.value) == raised.value.message
    return raised.value.code


def test_valid_polygon_becomes_a_multipolygon_without_note():
    geom, note = parse_polygonal(polygon(SQUARE, HOLE))
    assert note is None
    assert isinstance(geom, MultiPolygon) and geom.is_valid
    assert geom.equals(Polygon(SQUARE, [HOLE]))


def test_valid_multipolygon():
    far = [[x + 0.1, y] for x, y in SQUARE]
    geom, note = parse_polygonal({"type": "MultiPolygon", "coordinates": [[SQUARE], [far]]})
    assert note is None and len(geom.geoms) == 2


def test_z_is_accepted_and_dropped():
    geom, _ = parse_polygonal(polygon([[x, y, 43.5] for x, y in SQUARE]))
    assert not geom.has_z
    assert geom.equals(Polygon(SQUARE))


@pytest.mark.parametrize(
    "obj",
    [
        None,
        [],
        "Polygon",
        {"coordinates": [SQUARE]},
        {"type": "Feature", "geometry": polygon(SQUARE)},
        {"type": "polygon", "coordinates": [SQUARE]},
        {"type": ["Polygon"], "coordinates": [SQUARE]},
        {"type": {"Polygon": 1}, "coordinates": [SQUARE]},
        {"type": "Polygon"},
        {"type": "Polygon", "coordinates": None},
        {"type": "Polygon", "coordinates": "116.4 39.9"},
        {"type": "Polygon", "coordinates": {"0": SQUARE}},
        polygon(None),
        polygon(SQUARE[0]),
        polygon([None, *SQUARE[1:]]),
        polygon([{"lon": 116.4, "lat": 39.9}, *SQUARE[1:]]),
        polygon([[116.4], *SQUARE[1:]]),
        polygon([[116.4, 39.9, 0, 0], *SQUARE[1:]]),
        polygon([["116.4", "39.9"], *SQUARE[1:]]),
        polygon([[[116.4, 39.9]], *SQUARE[1:]]),
        polygon([[True, 39.9], *SQUARE[1:]]),
        polygon([[116.4, 39.9, "high"], *SQUARE[1:]]),
        polygon([[math.nan, 39.9], *SQUARE[1:]]),
        polygon([[116.4, math.inf], *SQUARE[1:]]),
        polygon([[116.4, 39.9, -math.inf], *SQUARE[1:]]),
        polygon(SQUARE[:3]),
        polygon([[0, 0], [1, 0], [0, 0]]),
        polygon(SQUARE[:-1]),
        polygon(SQUARE, [[1, 1], [2, 2]]),
        {"type": "MultiPolygon", "coordinates": [SQUARE]},
        {"type": "MultiPolygon", "coordinates": [[SQUARE], []]},
        {"type": "MultiPolygon", "coordinates": [[[SQUARE]]]},
    ],
)
def test_malformed_input(obj):
    assert error_code(obj) == "geometry.malformed"


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "Point", "coordinates": [116.4, 39.9]},
        {"type": "LineString", "coordinates": SQUARE},
        {"type": "MultiPoint", "coordinates": SQUARE},
        {"type": "MultiLineString", "coordinates": [SQUARE]},
        {"type": "GeometryCollection", "geometries": [polygon(SQUARE)]},
    ],
)
def test_wrong_type(obj):
    assert error_code(obj) == "geometry.wrong_type"


@pytest.mark.parametrize(
    "position",
    [[180.5, 39.9], [-181, 39.9], [116.4, 90.0001], [116.4, -91], [1e308, 0], [10**400, 0], [0, -(10**400)]],
)
def test_out_of_range(position):
    assert error_code(polygon([position, *SQUARE[1:-1], position])) == "geometry.out_of_range"


def test_huge_z_is_dropped_not_converted():
    geom, _ = parse_polygonal(polygon([[x, y, 10**400] for x, y in SQUARE]))
    assert geom.equals(Polygon(SQUARE))


def test_extreme_but_legal_coordinates():
    geom, note = parse_polygonal(polygon([[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]))
    assert note is None and geom.bounds == (-180, -90, 180, 90)


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "Polygon", "coordinates": []},
        {"type": "MultiPolygon", "coordinates": []},
        # Valid structure, but repairing a zero-area ring leaves only a line.
        polygon([[0, 0], [1, 1], [2, 2], [0, 0]]),
    ],
)
def test_empty(obj):
    assert error_code(obj) == "geometry.empty"


def test_bow_tie_is_repaired_and_reported():
    geom, note = parse_polygonal(polygon(BOW_TIE))
    assert note == "Self-intersection[0.5 0.5] repaired"
    assert isinstance(geom, MultiPolygon) and geom.is_valid
    assert len(geom.geoms) == 2
    assert geom.area == pytest.approx(0.5)


def test_overlapping_multipolygon_is_repaired_into_its_union():
    shifted = [[116.405, 39.90], [116.415, 39.90], [116.415, 39.91], [116.405, 39.91], [116.405, 39.90]]
    geom, note = parse_polygonal({"type": "MultiPolygon", "coordinates": [[SQUARE], [shifted]]})
    assert note is not None and note.endswith(" repaired")
    assert geom.is_valid and geom.equals(box(116.40, 39.90, 116.415, 39.91))


def test_invalid_without_repair_raises_with_the_shapely_reason():
    with pytest.raises(GeometryError) as raised:
        parse_polygonal(polygon(BOW_TIE), repair=False)
    assert raised.value.code == "geometry.invalid"
    assert raised.value.message == "Self-intersection[0.5 0.5]"


def test_valid_input_is_accepted_without_repair():
    geom, note = parse_polygonal(polygon(SQUARE), repair=False)
    assert note is None and geom.is_valid


def _garbage(rng, depth):
    choices = [None, True, 0, -1, 1e400, math.nan, 10**30, 116.4, 39.9, "", "x", {}, {"type": "Polygon"}]
    if depth and rng.random() < 0.7:
        return [_garbage(rng, depth - 1) for _ in range(rng.randrange(6))]
    return rng.choice(choices)


def _mutate(rng, value):
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        return [*value[:i], _mutate(rng, value[i]), *value[i + 1:]]
    return _garbage(rng, 3)


def test_fuzzed_input_only_ever_raises_geometry_error():
    # Shapely must never see input it could choke on: whatever the client
    # sends, the outcome is a MultiPolygon or a GeometryError.
    rng = random.Random(20240601)
    base = [[SQUARE, HOLE], [BOW_TIE]]
    for _ in range(3000):
        kind = rng.choice(["Polygon", "MultiPolygon"])
        coordinates = _mutate(rng, base[0] if kind == "Polygon" else base)
        if rng.random() < 0.2:
            coordinates = _garbage(rng, 5)
        try:
            geom, _ = parse_polygonal({"type": kind, "coordinates": coordinates})
        except GeometryError as error:
            assert error.code in {"geometry.malformed", "geometry.out_of_range", "geometry.empty"}
        else:
            assert isinstance(geom, MultiPolygon) and geom.is_valid and not geom.is_empty


def test_parse_point():
    point = parse_point(116.404, 39.915)
    assert (point.x, point.y) == (116.404, 39.915)
    assert parse_point(-180, 90).coords[0] == (-180.0, 90.0)


@pytest.mark.parametrize(
    ("lon", "lat", "code"),
    [
        (None, 39.9, "geometry.malformed"),
        ("116.4", 39.9, "geometry.malformed"),
        (True, 39.9, "geometry.malformed"),
        (116.4, math.nan, "geometry.malformed"),
        (math.inf, 39.9, "geometry.malformed"),
        (180.0001, 39.9, "geometry.out_of_range"),
        (116.4, -90.5, "geometry.out_of_range"),
        (10**400, 39.9, "geometry.out_of_range"),
    ],
)
def test_parse_point_rejects(lon, lat, code):
    with pytest.raises(GeometryError) as raised:
        parse_point(lon, lat)
    assert raised.value.code == code


def test_to_geojson_follows_rfc7946():
    # Clockwise exterior and counter-clockwise hole: the wrong way round.
    geom = MultiPolygon([Polygon(SQUARE[::-1], [HOLE[::-1]])])
    out = to_geojson(geom)
    assert out["type"] == "MultiPolygon"
    exterior, hole = out["coordinates"][0]
    assert isinstance(exterior[0], list) and len(exterior[0]) == 2
    assert LinearRing(exterior).is_ccw and not LinearRing(hole).is_ccw
    assert to_geojson(Point(116.404, 39.915)) == {"type": "Point", "coordinates": [116.404, 39.915]}


def test_geojson_round_trip_is_exact():
    # Coordinates that need all 17 significant digits.
    ragged = [[116.4 + dx / 3e2, 39.9 + dy / 7e2] for dx, dy in [(0, 0), (1, 0.1), (0.9, 1), (-0.3, 0.8), (0, 0)]]
    geom, _ = parse_polygonal(polygon(ragged))
    again, note = parse_polygonal(to_geojson(geom))
    assert note is None
    assert shapely.to_wkb(again) == shapely.to_wkb(shapely.orient_polygons(geom))


def test_geojson_dict_round_trip():
    obj = {"type": "MultiPolygon", "coordinates": [[SQUARE, HOLE]]}
    assert to_geojson(parse_polygonal(obj)[0]) == obj


def test_database_round_trip():
    geom = MultiPolygon([Polygon(SQUARE, [HOLE])])
    element = to_db(geom)
    assert isinstance(element, WKBElement) and element.srid == 4326
    assert shapely.to_wkb(from_db(element)) == shapely.to_wkb(geom)
    assert from_db(WKTElement("POINT (116.404 39.915)", srid=4326)).equals(Point(116.404, 39.915))
    assert from_db(None) is None


def test_as_multipolygon():
    square = Polygon(SQUARE)
    assert as_multipolygon(square).equals(MultiPolygon([square]))
    multi = MultiPolygon([square])
    assert as_multipolygon(multi) is multi
    far = box(117, 40, 117.01, 40.01)
    mixed = GeometryCollection([Point(0, 0), LineString([(0, 0), (1, 1)]), square,
                                GeometryCollection([MultiPolygon([far]), Polygon()])])
    result = as_multipolygon(mixed)
    assert isinstance(result, MultiPolygon) and len(result.geoms) == 2
    assert result.equals(MultiPolygon([square, far]))
    assert as_multipolygon(Point(0, 0)).is_empty


def _quadrangle_area_m2(lon_span, lat1, lat2):
    # Independent closed form for the area between two parallels on the WGS84
    # ellipsoid: A = a² Δλ (q(φ2) − q(φ1)) / 2 with the authalic function
    # q(φ) = (1 − e²)[sin φ / (1 − e² sin² φ) − ln((1 − e sin φ)/(1 + e sin φ)) / (2e)]
    # (Snyder, "Map Projections: A Working Manual", USGS PP 1395, eq. 3-12).
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    e = math.sqrt(e2)

    def q(lat):
        s = math.sin(math.radians(lat))
        return (1 - e2) * (s / (1 - e2 * s * s) - math.log((1 - e * s) / (1 + e * s)) / (2 * e))

    return a * a * math.radians(lon_span) * (q(lat2) - q(lat1)) / 2


def test_geodesic_area_of_a_box_at_the_equator():
    # 0.01° × 0.01° at the equator: 1113.19 m (0.01° of equator) × 1105.74 m
    # (0.01° of meridian, whose radius of curvature there is a(1 − e²)) ≈
    # 1,230,907 m² (a spherical 111.32 km/degree square would say 1,239,200).
    # Its edges are the equator and a parallel 1.1 km north of it, where the
    # geodesic and the parallel differ by micrometres, so the closed form
    # applies to ~1e-9.
    expected = _quadrangle_area_m2(0.01, 0.0, 0.01)
    assert expected == pytest.approx(1_230_907, abs=1)
    square = box(0, 0, 0.01, 0.01)
    assert geodesic_area_m2(square) == pytest.approx(expected, rel=1e-8)
    assert geodesic_area_m2(square.reverse()) == geodesic_area_m2(square)


def test_geodesic_area_subtracts_holes_whatever_the_orientation():
    outer = geodesic_area_m2(Polygon(SQUARE))
    hole = geodesic_area_m2(Polygon(HOLE))
    for geom in (Polygon(SQUARE, [HOLE]), Polygon(SQUARE[::-1], [HOLE[::-1]]), Polygon(SQUARE, [HOLE[::-1]])):
        assert geodesic_area_m2(geom) == pytest.approx(outer - hole, rel=1e-12)
    assert geodesic_area_m2(MultiPolygon([Polygon(SQUARE), box(117, 40, 117.01, 40.01)])) > outer
    assert geodesic_area_m2(Point(116.4, 39.9)) == 0
