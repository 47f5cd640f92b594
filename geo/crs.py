"""Conversions between WGS84 and the Chinese phone coordinate systems.

Phones in China report positions in GCJ-02 (the state-mandated offset used by
AMap and Tencent) or BD-09 (Baidu's further offset on top of GCJ-02); the
database stores WGS84 (EPSG:4326). All functions take and return
``(lon, lat)`` in decimal degrees.

Where the offsets apply: GCJ-02 is only defined for mainland China. We use the
customary rough bounding box of the public implementations, longitude
72.004..137.8347 and latitude 0.8293..55.8271 (edges inclusive): outside it
GCJ-02 equals WGS84. BD-09 is applied inside the same box only (Baidu reports
WGS84 abroad), so outside the box all three systems coincide. The box also
covers neighbouring countries and part of the sea, where the public
implementations apply the offset too; we keep that behaviour so that our
numbers match theirs.

Inputs are not validated here: callers check finiteness and range first
(``geo.geometry.parse_point``).
"""
from __future__ import annotations

import math

SUPPORTED_CRS = ("wgs84", "gcj02", "bd09")

# Krasovsky 1940 ellipsoid, the one the GCJ-02 formula is built on.
_A = 6378245.0
_EE = 0.00669342162296594323
# Baidu's rotation/scale constant: pi * 3000 / 180.
_X_PI = math.pi * 3000.0 / 180.0

# gcj02_to_wgs84 iterates until both coordinates move less than this (degrees,
# ~1 µm), far below the 1e-7 degree round-trip promise; the offset field varies
# slowly, so convergence takes 3-5 steps.
_INVERSE_TOLERANCE = 1e-12
_INVERSE_MAX_STEPS = 30


def _in_china(lon: float, lat: float) -> bool:
    return 72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271


def _gcj02_offset(lon: float, lat: float) -> tuple[float, float]:
    """Return the GCJ-02 minus WGS84 offset (dlon, dlat) in degrees at a WGS84 point."""
    x, y = lon - 105.0, lat - 35.0
    common = (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x)) + common
            + (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
            + (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x)) + common
            + (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
            + (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0)
    # The polynomials are in metres-like units; scale them by the Krasovsky
    # meridian and prime-vertical radii of curvature to get degrees.
    rad_lat = math.radians(lat)
    w = 1.0 - _EE * math.sin(rad_lat) ** 2
    sqrt_w = math.sqrt(w)
    dlat = dlat * 180.0 / (_A * (1.0 - _EE) / (w * sqrt_w) * math.pi)
    dlon = dlon * 180.0 / (_A / sqrt_w * math.cos(rad_lat) * math.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Convert WGS84 (EPSG:4326) degrees to GCJ-02 degrees.

    Outside the China bounding box (module docstring) the point is returned
    unchanged. Never raises for finite input.
    """
    if not _in_china(lon, lat):
        return lon, lat
    dlon, dlat = _gcj02_offset(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Convert GCJ-02 degrees to WGS84 (EPSG:4326) degrees.

    This is the accurate iterative inverse, not the common one-step
    approximation ``gcj - offset(gcj)`` (off by up to ~4 m across China):
    starting from that approximation it applies the fixed-point correction
    ``wgs -= wgs84_to_gcj02(wgs) - gcj`` until the step is below 1e-12 degrees
    (at most 30 steps), so ``wgs84_to_gcj02(gcj02_to_wgs84(p))`` reproduces
    ``p`` to better than 1e-7 degrees. Outside the China bounding box the point
    is returned unchanged. Never raises for finite input.
    """
    if not _in_china(lon, lat):
        return lon, lat
    dlon, dlat = _gcj02_offset(lon, lat)
    wlon, wlat = lon - dlon, lat - dlat
    for _ in range(_INVERSE_MAX_STEPS):
        glon, glat = wgs84_to_gcj02(wlon, wlat)
        step_lon, step_lat = glon - lon, glat - lat
        wlon, wlat = wlon - step_lon, wlat - step_lat
        if abs(step_lon) < _INVERSE_TOLERANCE and abs(step_lat) < _INVERSE_TOLERANCE:
            break
    return wlon, wlat


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """Convert GCJ-02 degrees to BD-09 degrees.

    Outside the China bounding box the point is returned unchanged. Never
    raises for finite input.
    """
    if not _in_china(lon, lat):
        return lon, lat
    z = math.hypot(lon, lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Convert BD-09 degrees to GCJ-02 degrees.

    This is the widely published closed-form inverse; it reproduces the GCJ-02
    input of ``gcj02_to_bd09`` to about 2e-6 degrees (~0.2 m). Outside the China
    bounding box the point is returned unchanged. Never raises for finite input.
    """
    if not _in_china(lon, lat):
        return lon, lat
    x, y = lon - 0.0065, lat - 0.006
    z = math.hypot(x, y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    return z * math.cos(theta), z * math.sin(theta)


def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """Convert WGS84 (EPSG:4326) degrees to BD-09 degrees (via GCJ-02).

    Outside the China bounding box the point is returned unchanged. Never
    raises for finite input.
    """
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Convert BD-09 degrees to WGS84 (EPSG:4326) degrees (via GCJ-02).

    Uses ``bd09_to_gcj02`` then the iterative ``gcj02_to_wgs84``. Outside the
    China bounding box the point is returned unchanged. Never raises for
    finite input.
    """
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


_TO_WGS84 = {
    "wgs84": lambda lon, lat: (lon, lat),
    "gcj02": gcj02_to_wgs84,
    "bd09": bd09_to_wgs84,
}


def to_wgs84(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """Convert a phone position in ``crs`` to WGS84 (EPSG:4326) ``(lon, lat)`` degrees.

    ``crs`` is one of ``SUPPORTED_CRS`` (exact, lower case). Raises
    ``ValueError`` for any other value.
    """
    try:
        convert = _TO_WGS84[crs]
    except (KeyError, TypeError):
        raise ValueError(f"unknown coordinate system {crs!r}; expected one of {', '.join(SUPPORTED_CRS)}") from None
    return convert(lon, lat)
