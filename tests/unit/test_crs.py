import itertools

import pytest

from geo.crs import (
    SUPPORTED_CRS,
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

# Published results for the input (116.404, 39.915) in the README of
# wandergis/coordtransform (https://github.com/wandergis/coordtransform, the
# reference npm "coordtransform" package, "Example&Usage" section).
WANDERGIS_INPUT = (116.404, 39.915)
WANDERGIS_BD09_TO_GCJ02 = (116.39762729119315, 39.90865673957631)
WANDERGIS_GCJ02_TO_BD09 = (116.41036949371029, 39.92133699351021)
WANDERGIS_WGS84_TO_GCJ02 = (116.41024449916938, 39.91640428150164)
# For gcj02 -> wgs84 wandergis publishes the one-step approximation (here
# ~6 cm off, up to ~4 m elsewhere in China); ours is the iterative inverse.
WANDERGIS_GCJ02_TO_WGS84_ONE_STEP = (116.39775550083061, 39.91359571849836)

# (WGS84 lon, lat) -> (GCJ-02 lon, lat) pairs from the test suite of
# googollee/eviltransform (https://github.com/googollee/eviltransform,
# python/test.py and go/transform_test.go, the TESTS table; there lat first).
EVILTRANSFORM_WGS84_GCJ02 = [
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),  # Shanghai
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),  # Shenzhen
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),  # Beijing
]

# A grid over mainland China, kept inside the GCJ-02 bounding box.
CHINA_GRID = list(itertools.product([74.0 + 4.0 * i for i in range(16)], [19.0 + 3.0 * j for j in range(12)]))


def assert_close(actual, expected, tol):
    assert abs(actual[0] - expected[0]) < tol and abs(actual[1] - expected[1]) < tol, (actual, expected)


def test_published_bd09_gcj02_examples():
    assert_close(bd09_to_gcj02(*WANDERGIS_INPUT), WANDERGIS_BD09_TO_GCJ02, 1e-12)
    assert_close(gcj02_to_bd09(*WANDERGIS_INPUT), WANDERGIS_GCJ02_TO_BD09, 1e-12)


def test_published_wgs84_to_gcj02_examples():
    assert_close(wgs84_to_gcj02(*WANDERGIS_INPUT), WANDERGIS_WGS84_TO_GCJ02, 1e-12)
    for wgs, gcj in EVILTRANSFORM_WGS84_GCJ02:
        assert_close(wgs84_to_gcj02(*wgs), gcj, 1e-9)


def test_gcj02_to_wgs84_inverts_published_forward_pairs():
    assert_close(gcj02_to_wgs84(*WANDERGIS_WGS84_TO_GCJ02), WANDERGIS_INPUT, 1e-9)
    for wgs, gcj in EVILTRANSFORM_WGS84_GCJ02:
        assert_close(gcj02_to_wgs84(*gcj), wgs, 1e-9)


def test_gcj02_to_wgs84_is_more_exact_than_the_published_one_step_result():
    exact = gcj02_to_wgs84(*WANDERGIS_INPUT)
    one_step = WANDERGIS_GCJ02_TO_WGS84_ONE_STEP
    # Same answer to ~1 m, but only ours maps back onto the input.
    assert_close(exact, one_step, 1e-5)
    assert_close(wgs84_to_gcj02(*exact), WANDERGIS_INPUT, 1e-10)
    assert max(abs(a - b) for a, b in zip(wgs84_to_gcj02(*one_step), WANDERGIS_INPUT)) > 1e-7


def test_gcj02_round_trip_below_1e_7_degrees():
    for lon, lat in CHINA_GRID:
        assert_close(gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat)), (lon, lat), 1e-7)
        assert_close(wgs84_to_gcj02(*gcj02_to_wgs84(lon, lat)), (lon, lat), 1e-7)


def test_bd09_round_trip():
    # The closed-form BD-09 inverse is good to ~2e-6 degrees (~0.2 m).
    for lon, lat in CHINA_GRID:
        assert_close(bd09_to_gcj02(*gcj02_to_bd09(lon, lat)), (lon, lat), 5e-6)
        assert_close(bd09_to_wgs84(*wgs84_to_bd09(lon, lat)), (lon, lat), 5e-6)


def test_offsets_are_hundreds_of_metres_inside_china():
    lon, lat = WANDERGIS_INPUT
    gcj = wgs84_to_gcj02(lon, lat)
    bd = wgs84_to_bd09(lon, lat)
    assert 1e-3 < abs(gcj[0] - lon) < 1e-2 and 1e-3 < abs(bd[0] - lon) < 2e-2


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(2.3522, 48.8566), (-74.006, 40.7128), (139.6917, 35.6895), (72.0, 30.0), (100.0, 0.5), (100.0, 56.0)],
)
def test_points_outside_china_are_unchanged(lon, lat):
    for convert in (wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, wgs84_to_bd09, bd09_to_wgs84):
        assert convert(lon, lat) == (lon, lat)
    for crs in SUPPORTED_CRS:
        assert to_wgs84(lon, lat, crs) == (lon, lat)


def test_to_wgs84_dispatches_on_crs():
    lon, lat = WANDERGIS_INPUT
    assert to_wgs84(lon, lat, "wgs84") == (lon, lat)
    assert to_wgs84(lon, lat, "gcj02") == gcj02_to_wgs84(lon, lat)
    assert to_wgs84(lon, lat, "bd09") == bd09_to_wgs84(lon, lat)


@pytest.mark.parametrize("crs", ["WGS84", "epsg:4326", "", None, ["gcj02"]])
def test_to_wgs84_rejects_unknown_crs(crs):
    with pytest.raises(ValueError, match="unknown coordinate system"):
        to_wgs84(116.404, 39.915, crs)
