"""The one conversion boundary: GeoJSON ⇄ shapely ⇄ database.

Everything here is EPSG:4326 with ``(lon, lat)`` axis order, the order of
RFC 7946 GeoJSON and of PostGIS. Client JSON is validated structurally before
shapely sees it, so bad input always ends as a ``GeometryError`` with a stable
code and never as a shapely/GEOS exception.

Validity is planar validity in lon/lat, the same rule as PostGIS
``ST_IsValid`` on a ``geometry(…, 4326)`` column. Geometries crossing the
antimeridian are not supported (a city never does).
"""
from __future__ import annotations

import json
import math

import shapely
from geoalchemy2.elements import WKBElement, WKTElement
from geoalchemy2.shape import from_shape, to_shape
from pyproj import Geod
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry, BaseMultipartGeometry

SRID = 4326

MALFORMED = "geometry.malformed"
WRONG_TYPE = "geometry.wrong_type"
OUT_OF_RANGE = "geometry.out_of_range"
EMPTY = "geometry.empty"
INVALID = "geometry.invalid"

# A tuple, not a set: membership must not hash, since "type" may be any JSON value.
_OTHER_GEOJSON_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "GeometryCollection")
_GEOD = Geod(ellps="WGS84")


class GeometryError(ValueError):
    """Client geometry refused; ``code`` is stable for programs, ``message`` is for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _require_number(value: object, name: str, where: str) -> None:
    # bool is an int subclass but never a coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GeometryError(MALFORMED, f"{where}: {name} must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise GeometryError(MALFORMED, f"{where}: {name} must be finite, got {value}")


def _coordinate(value: object, limit: int, name: str, where: str) -> float:
    _require_number(value, name, where)
    # Compared before float(), which overflows on huge integers; the value is
    # not echoed, since str() refuses integers of more than 4300 digits.
    if not -limit <= value <= limit:
        raise GeometryError(OUT_OF_RANGE, f"{where}: {name} is outside [-{limit}, {limit}]")
    return float(value)


def _position(value: object, where: str) -> tuple[float, float]:
    # RFC 7946 positions are [lon, lat] or [lon, lat, elevation]; Z is dropped.
    if not isinstance(value, list | tuple) or not 2 <= len(value) <= 3:
        raise GeometryError(MALFORMED, f"{where}: a position must be [lon, lat] or [lon, lat, z]")
    if len(value) == 3:
        _require_number(value[2], "z", where)
    return _coordinate(value[0], 180, "longitude", where), _coordinate(value[1], 90, "latitude", where)


def _ring(value: object, where: str) -> list[tuple[float, float]]:
    if not isinstance(value, list | tuple):
        raise GeometryError(MALFORMED, f"{where}: a linear ring must be an array of positions")
    ring = [_position(p, f"{where}[{i}]") for i, p in enumerate(value)]
    if len(ring) < 4:
        raise GeometryError(MALFORMED, f"{where}: a linear ring needs at least 4 positions, got {len(ring)}")
    if ring[0] != ring[-1]:
        raise GeometryError(MALFORMED, f"{where}: a linear ring must end at its first position")
    return ring


def _polygon(value: object, where: str) -> Polygon:
    if not isinstance(value, list | tuple) or not value:
        raise GeometryError(MALFORMED, f"{where}: a polygon must be a non-empty array of linear rings")
    rings = [_ring(r, f"{where}[{i}]") for i, r in enumerate(value)]
    return Polygon(rings[0], rings[1:])


def parse_polygonal(obj: dict, *, repair: bool = True) -> tuple[MultiPolygon, str | None]:
    """Parse a GeoJSON Polygon or MultiPolygon (RFC 7946, lon/lat) into EPSG:4326.

    Returns ``(multipolygon, repair_note)``: a valid, non-empty MultiPolygon
    and ``None`` when the input was valid as given, or, when it was invalid
    and ``repair`` is true, the ``shapely.make_valid`` result reduced to its
    polygonal parts and a note such as ``"Self-intersection[116.4 39.9]
    repaired"``. A third coordinate is accepted and dropped.

    Raises ``GeometryError`` with code ``geometry.malformed`` (not a GeoJSON
    geometry object, wrong nesting, non-numeric or non-finite numbers, rings
    with fewer than 4 positions or not closed), ``geometry.wrong_type`` (a
    GeoJSON geometry that is not polygonal), ``geometry.out_of_range``
    (longitude outside [-180, 180] or latitude outside [-90, 90]),
    ``geometry.empty`` (no coordinates, or nothing polygonal left after
    repair) or ``geometry.invalid`` (invalid and ``repair`` is false; the
    message is ``shapely.is_valid_reason``). Never raises anything else.
    """
    if not isinstance(obj, dict):
        raise GeometryError(MALFORMED, "expected a GeoJSON geometry object")
    kind = obj.get("type")
    if kind in _OTHER_GEOJSON_TYPES:
        raise GeometryError(WRONG_TYPE, f"expected a Polygon or MultiPolygon, got {kind}")
    if kind not in ("Polygon", "MultiPolygon"):
        raise GeometryError(MALFORMED, "expected a GeoJSON geometry object with type Polygon or MultiPolygon")
    coordinates = obj.get("coordinates")
    if not isinstance(coordinates, list | tuple):
        raise GeometryError(MALFORMED, "coordinates must be an array")
    if not coordinates:
        raise GeometryError(EMPTY, f"the {kind} has no coordinates")
    if kind == "Polygon":
        polygons = [_polygon(coordinates, "coordinates")]
    else:
        polygons = [_polygon(p, f"coordinates[{i}]") for i, p in enumerate(coordinates)]
    geom = MultiPolygon(polygons)
    if geom.is_valid:
        return geom, None
    reason = shapely.is_valid_reason(geom)
    if not repair:
        raise GeometryError(INVALID, reason)
    repaired = as_multipolygon(shapely.make_valid(geom))
    if repaired.is_empty:
        raise GeometryError(EMPTY, f"nothing polygonal is left after repairing: {reason}")
    return repaired, f"{reason} repaired"


def parse_point(lon: object, lat: object) -> Point:
    """Build an EPSG:4326 Point from longitude and latitude in degrees.

    Raises ``GeometryError`` with code ``geometry.malformed`` when either is
    not a finite number (bools refused) and ``geometry.out_of_range`` when
    longitude is outside [-180, 180] or latitude outside [-90, 90].
    """
    return Point(_coordinate(lon, 180, "longitude", "point"), _coordinate(lat, 90, "latitude", "point"))


def to_geojson(geom: BaseGeometry) -> dict:
    """Return the RFC 7946 GeoJSON geometry dict of an EPSG:4326 geometry.

    Positions are ``[lon, lat]`` at full float precision; polygon rings follow
    the RFC 7946 right-hand rule (exterior counter-clockwise, holes
    clockwise). Raises ``TypeError`` if ``geom`` is not a shapely geometry.
    """
    if not isinstance(geom, BaseGeometry):
        raise TypeError(f"expected a shapely geometry, got {type(geom).__name__}")
    # GEOS writes every double with enough digits to round-trip, so parsing
    # the text back gives the same coordinates bit for bit.
    return json.loads(shapely.to_geojson(shapely.orient_polygons(geom)))


def to_db(geom: BaseGeometry) -> WKBElement:
    """Return a geoalchemy2 WKBElement of an EPSG:4326 geometry, tagged SRID 4326.

    Raises ``TypeError`` (from geoalchemy2/shapely) if ``geom`` is not a
    shapely geometry.
    """
    return from_shape(geom, srid=SRID)


def from_db(element: WKBElement | WKTElement | None) -> BaseGeometry | None:
    """Return the shapely geometry (EPSG:4326) of a geoalchemy2 element, or None for None.

    Raises ``geoalchemy2`` / shapely errors on an undecodable element (a
    database bug, not client input).
    """
    return None if element is None else to_shape(element)


def as_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    """Return the polygonal parts of ``geom`` as a MultiPolygon (SRID unchanged).

    A Polygon is wrapped, a MultiPolygon returned as is, a GeometryCollection
    reduced to its non-empty polygons (nested collections included); lines and
    points are dropped, so they give an empty MultiPolygon. Never raises for a
    shapely geometry.
    """
    if isinstance(geom, MultiPolygon):
        return geom
    parts = shapely.get_parts(geom)
    # get_parts splits one level only; repeat for multi-geometries nested in a
    # collection.
    while any(isinstance(p, BaseMultipartGeometry) for p in parts):
        parts = shapely.get_parts(parts)
    return MultiPolygon([p for p in parts if isinstance(p, Polygon) and not p.is_empty])


def geodesic_area_m2(geom: BaseGeometry) -> float:
    """Return the area in m² of an EPSG:4326 geometry on the WGS84 ellipsoid.

    Uses pyproj.Geod (Karney's algorithm, the one PostGIS uses for
    ``ST_Area(geography)``). Ring orientation does not matter; holes are
    subtracted; non-polygonal geometries have area 0. Never raises for a
    shapely geometry.
    """
    # Geod sums signed ring areas, so rings must be oriented consistently
    # (exterior counter-clockwise, holes clockwise) for holes to subtract.
    area, _perimeter = _GEOD.geometry_area_perimeter(shapely.orient_polygons(geom))
    return abs(area)
