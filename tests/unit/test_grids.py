import math
import time

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely import affinity
from shapely.geometry import MultiPolygon, Point, Polygon, box

from geo.geometry import geodesic_area_m2
from geo.grids import GridCell, generate_grid, grid_code

TARGET = 10_000
RATIO = 0.3


def to_lonlat(geom_m, lon0, lat0):
    """Place a shape drawn in metres (x east, y north) around (lon0, lat0) in EPSG:4326."""
    transformer = Transformer.from_crs(
        f"+proj=laea +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m", "EPSG:4326", always_xy=True)
    return shapely.transform(geom_m, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def flower_20km2():
    # ~20.3 km² with 200 vertices and wavy edges, in Beijing.
    angle = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    radius = 2500 * (1 + 0.25 * np.sin(5 * angle) + 0.1 * np.cos(13 * angle))
    return to_lonlat(Polygon(np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])), 116.4, 39.9)


def community_at_40_7n():
    # A real-looking ~1 km² community, rotated off the lattice, with a pond.
    outline = [(0, 0), (420, -30), (610, 180), (700, 520), (520, 800), (300, 760),
               (180, 900), (-60, 700), (-120, 420), (40, 260)]
    pond = [(280, 380), (340, 370), (360, 430), (300, 460), (270, 420)]
    shape = affinity.rotate(affinity.scale(Polygon(outline, [pond]), 1.4, 1.4, origin=(0, 0)), 27, origin=(0, 0))
    return to_lonlat(shape, 114.88, 40.7)


def islands():
    # A 700 m square and, 3 km away, a 40 m islet (1,600 m², below the sliver size).
    return to_lonlat(MultiPolygon([box(0, 0, 700, 700), box(3700, -3000, 3740, -2960)]), 121.47, 31.23)


def assert_partition(cells, boundary, target=TARGET, ratio=RATIO):
    # Overlaps and gaps are measured as planar lon/lat areas, the geometry
    # semantics of EPSG:4326 (and PostGIS geometry): the symmetric difference
    # is made of needles whose vertices are collinear in lon/lat, which a
    # geodesic area would inflate by reading their edges as geodesics.
    geoms = np.array([cell.geom for cell in cells])
    assert all(isinstance(g, MultiPolygon) and g.is_valid and not g.is_empty for g in geoms)
    assert [cell.area_m2 for cell in cells] == pytest.approx([geodesic_area_m2(g) for g in geoms], rel=1e-9)

    # No overlaps.
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pairs = left < right
    overlaps = shapely.area(shapely.intersection(geoms[left[pairs]], geoms[right[pairs]]))
    assert (overlaps < 1e-6 * shapely.area(geoms[left[pairs]])).all()

    # Together they are the boundary.
    union = shapely.union_all(geoms)
    assert shapely.symmetric_difference(union, boundary).area < 1e-6 * boundary.area
    # Not exact for the same reason: splitting a straight lon/lat edge changes
    # the geodesics it is read as.
    assert sum(cell.area_m2 for cell in cells) == pytest.approx(geodesic_area_m2(boundary), rel=1e-5)

    # Only islets (touching no other cell) may be smaller than a sliver.
    for i, cell in enumerate(cells):
        if cell.area_m2 < ratio * target:
            assert not shapely.dwithin(cell.geom, np.delete(geoms, i), 1e-9).any(), cell

    # Numbering: 1..n, rows north to south, west to east within a row.
    assert [cell.serial for cell in cells] == list(range(1, len(cells) + 1))
    keys = [(cell.row, cell.col) for cell in cells]
    assert keys == sorted(keys)
    return geoms


def test_flower_20km2_guarantees_and_speed():
    boundary = flower_20km2()
    generate_grid(boundary)  # warm PROJ's caches
    start = time.perf_counter()
    cells = generate_grid(boundary)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0

    geoms = assert_partition(cells, boundary)
    assert geodesic_area_m2(boundary) / len(cells) == pytest.approx(TARGET, rel=0.05)
    # Cells clear of the edge are whole lattice squares: exactly the target,
    # since the lattice is laid in an equal-area projection.
    whole = [cell.area_m2 for cell, g in zip(cells, geoms) if not g.dwithin(boundary.boundary, 1e-9)]
    assert len(whole) > 1500
    assert whole == pytest.approx([TARGET] * len(whole), rel=1e-6)


def test_rows_run_north_to_south_and_columns_west_to_east():
    cells = generate_grid(flower_20km2())
    centre = {(c.row, c.col): c.geom.centroid for c in cells}
    for (row, col), point in centre.items():
        if (row, col + 1) in centre:
            assert centre[row, col + 1].x > point.x
        if (row + 1, col) in centre:
            assert centre[row + 1, col].y < point.y


def test_real_looking_community_at_40_7n():
    boundary = community_at_40_7n()
    assert geodesic_area_m2(boundary) == pytest.approx(1.02e6, rel=0.01)
    cells = generate_grid(boundary)
    assert_partition(cells, boundary)
    assert geodesic_area_m2(boundary) / len(cells) == pytest.approx(TARGET, rel=0.15)
    assert all(cell.area_m2 >= RATIO * TARGET for cell in cells)  # one piece, no islets


def test_deterministic():
    boundary = community_at_40_7n()
    runs = [[(c.serial, c.row, c.col, shapely.to_wkb(c.geom), c.area_m2) for c in generate_grid(boundary)]
            for _ in range(2)]
    assert runs[0] == runs[1]


# Two 300 m × 200 m blocks whose square (1,2) keeps only a triangle: a sliver
# bordering (0,2) above and (1,1) on its left. No boundary edge runs along a
# lattice line, so no numerical slivers muddy the borders.
SLIVER_ABOVE = [(0, 0), (300, 0), (300, -95), (200, -140), (195, -200), (0, -200)]  # 88.9 m above, 40 m left
SLIVER_LEFT = [(0, 0), (300, 0), (300, -95), (220, -100), (200, -190), (195, -200), (0, -200)]  # 20 m above, 90 m left


@pytest.mark.parametrize(
    ("outline", "expected"),
    [
        (SLIVER_ABOVE, {(0, 0): 10_000, (0, 1): 10_000, (0, 2): 11_750, (1, 0): 10_000, (1, 1): 9_850}),
        (SLIVER_LEFT, {(0, 0): 10_000, (0, 1): 10_000, (0, 2): 9_800, (1, 0): 10_000, (1, 1): 10_875}),
    ],
)
def test_sliver_merges_into_the_neighbour_with_the_longest_border(outline, expected):
    boundary = to_lonlat(Polygon(outline), 113.26, 23.13)
    cells = generate_grid(boundary)
    assert_partition(cells, boundary)
    assert {(c.row, c.col): c.area_m2 for c in cells} == pytest.approx(expected, abs=1)


def test_sliver_ratio_zero_keeps_every_piece():
    boundary = to_lonlat(Polygon(SLIVER_ABOVE), 113.26, 23.13)
    cells = generate_grid(boundary, sliver_ratio=0)
    assert_partition(cells, boundary, ratio=0)
    assert any(c.area_m2 == pytest.approx(1_777.8, abs=1) for c in cells)


@pytest.mark.parametrize(
    "shape_m",
    [
        box(0, 0, 40, 60),
        # 9,025 m², straddling four lattice squares: four slivers become one.
        affinity.rotate(box(0, 0, 95, 95), 45),
    ],
)
def test_boundary_smaller_than_a_cell_gives_one_cell(shape_m):
    boundary = to_lonlat(shape_m, 104.07, 30.67)
    cells = generate_grid(boundary)
    assert len(cells) == 1
    assert cells[0].serial == 1
    assert_partition(cells, boundary)


def test_multipolygon_with_a_far_islet():
    boundary = islands()
    cells = generate_grid(boundary)
    assert_partition(cells, boundary)
    small = [c for c in cells if c.area_m2 < RATIO * TARGET]
    assert len(small) == 1 and small[0].area_m2 == pytest.approx(1_600, rel=1e-3)
    # The islet lies south-east of everything else, so it is numbered last.
    assert small[0].serial == len(cells)
    assert len(cells) == 49 + 1


def test_other_target_area():
    boundary = community_at_40_7n()
    cells = generate_grid(boundary, target_area_m2=40_000, sliver_ratio=0.5)
    assert_partition(cells, boundary, target=40_000, ratio=0.5)
    assert len(cells) < len(generate_grid(boundary)) / 3


@pytest.mark.parametrize("target", [0, -10_000, math.nan, math.inf, "10000", None])
def test_rejects_bad_target(target):
    with pytest.raises(ValueError, match="target_area_m2"):
        generate_grid(community_at_40_7n(), target_area_m2=target)


@pytest.mark.parametrize("ratio", [-0.1, 1, 1.5, math.nan, "0.3", None])
def test_rejects_bad_sliver_ratio(ratio):
    with pytest.raises(ValueError, match="sliver_ratio"):
        generate_grid(community_at_40_7n(), sliver_ratio=ratio)


@pytest.mark.parametrize(
    "boundary",
    [None, Point(116.4, 39.9), Polygon(), Polygon([(0, 0), (1, 1), (1, 0), (0, 1)]), box(0, 0, 1, 1).boundary],
)
def test_rejects_bad_boundary(boundary):
    with pytest.raises(ValueError, match="boundary"):
        generate_grid(boundary)


def test_rejects_a_lattice_too_large():
    with pytest.raises(ValueError, match="lattice"):
        generate_grid(flower_20km2(), target_area_m2=1)


def test_grid_cell_is_frozen():
    cell = generate_grid(to_lonlat(box(0, 0, 40, 60), 104.07, 30.67))[0]
    assert isinstance(cell, GridCell)
    with pytest.raises(AttributeError):
        cell.serial = 2


def test_grid_code():
    community = "110101001001"  # county 110101, street 001, community 001
    assert grid_code(community, 1, 1) == "11010100100101"
    assert grid_code(community, 7, 99) == "11010100100107"
    assert grid_code(community, 99, 99) == "11010100100199"
    assert grid_code(community, 7, 100) == "110101001001007"
    assert grid_code(community, 100, 100) == "110101001001100"
    assert grid_code(community, 12, 1500) == "1101010010010012"
    assert grid_code("LA07001001", 3, 40) == "LA0700100103"


@pytest.mark.parametrize(
    ("parent", "serial", "total"),
    [("", 1, 1), (None, 1, 1), (110101001001, 1, 1),
     ("110101001001", 0, 5), ("110101001001", 6, 5), ("110101001001", 1, 0), ("110101001001", True, 5),
     ("110101001001", 1.0, 5)],
)
def test_grid_code_rejects(parent, serial, total):
    with pytest.raises(ValueError):
        grid_code(parent, serial, total)
