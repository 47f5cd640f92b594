"""Unit-grid generation for a community (单元网格划分).

A community boundary (EPSG:4326) is cut into cells of about
``target_area_m2`` by a square lattice laid in a local Lambert azimuthal
equal-area projection; clipped pieces that are too small (slivers) are merged
into a neighbour. Cells come back in EPSG:4326, numbered row by row.
"""
from __future__ import annotations

import heapq
import math
import numbers
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon

from geo.geometry import geodesic_area_m2

# Pieces cut from adjacent squares share edges only up to floating-point noise
# (~1e-9 m): pieces this close are neighbours, and a shared border is measured
# against the neighbour grown by this much.
_BORDER_TOLERANCE_M = 1e-4
# Contacts shorter than this (a shared corner, the tip of a numerical sliver)
# rank below real shared borders when choosing where a sliver goes.
_MIN_SHARED_BORDER_M = 0.01
# Refuse lattices that would exhaust memory (a city-sized boundary with a tiny
# target); 10^6 squares of 10,000 m² is 10,000 km².
_MAX_SQUARES = 1_000_000


@dataclass(frozen=True)
class GridCell:
    """One grid cell.

    ``serial`` is 1-based; ``row``/``col`` index the lattice square the cell
    came from, counted from the north-west corner; ``geom`` is EPSG:4326;
    ``area_m2`` is its geodesic area on the WGS84 ellipsoid in m².
    """

    serial: int
    row: int
    col: int
    geom: MultiPolygon
    area_m2: float


def generate_grid(
    boundary: Polygon | MultiPolygon,
    *,
    target_area_m2: float = 10_000,
    sliver_ratio: float = 0.3,
) -> list[GridCell]:
    """Cut a community boundary into grid cells of about ``target_area_m2`` m².

    ``boundary`` is a valid, non-empty Polygon or MultiPolygon in EPSG:4326.
    A square lattice of side ``sqrt(target_area_m2)`` metres is laid in a
    Lambert azimuthal equal-area projection centred on the boundary's
    centroid, anchored at the boundary's projected (min x, max y). Each
    square's corners are projected back to lon/lat and the resulting
    quadrilaterals are clipped against the boundary in EPSG:4326, so cells
    follow the boundary's own edges and their union is the boundary up to
    floating-point noise (clipping in the projection instead would bend long
    boundary edges by centimetres).
    A piece smaller than ``sliver_ratio * target_area_m2`` (a sliver) is
    merged into the neighbour with which it shares the longest border,
    preferring neighbours that are not slivers themselves and borders of at
    least 1 cm over mere contacts; smallest slivers first, and a merged cell
    still too small is merged again. A piece that touches no other piece (an
    islet) stays a cell of its own, whatever its size.

    Cells are numbered 1..n by the lattice (row, col) of their square, rows
    north to south and columns west to east; a merged sliver takes the
    number of the cell it joined, and two pieces of one square are ordered
    west to east. A boundary whose projected bounding box fits in one
    square gives exactly one cell. The result is deterministic.

    ``area_m2`` is the geodesic area on the WGS84 ellipsoid in m²
    (``geo.geometry.geodesic_area_m2``, as PostGIS ``ST_Area(geography)``).
    It reads edges as geodesics while cells, like every geometry column, have
    edges straight in lon/lat; so cell areas add up to the boundary's area
    only to a few parts per million (more when the boundary has straight
    edges kilometres long).

    Raises ``ValueError`` if ``target_area_m2`` is not a finite positive
    number, ``sliver_ratio`` is not in [0, 1), the boundary is not a valid
    non-empty (Multi)Polygon, or the lattice would exceed 1,000,000 squares.
    """
    if not (isinstance(target_area_m2, numbers.Real) and math.isfinite(target_area_m2) and target_area_m2 > 0):
        raise ValueError(f"target_area_m2 must be a finite number > 0, got {target_area_m2!r}")
    if not (isinstance(sliver_ratio, numbers.Real) and 0 <= sliver_ratio < 1):
        raise ValueError(f"sliver_ratio must be in [0, 1), got {sliver_ratio!r}")
    if not isinstance(boundary, Polygon | MultiPolygon) or boundary.is_empty or not boundary.is_valid:
        raise ValueError("boundary must be a valid, non-empty Polygon or MultiPolygon in EPSG:4326")

    centre = boundary.centroid
    # The same PROJ pipeline Transformer.from_crs("EPSG:4326", laea, always_xy=True)
    # builds, written out: building it from CRS objects costs ~15 ms a community.
    to_local = Transformer.from_pipeline(
        "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
        f"+step +proj=laea +lat_0={centre.y!r} +lon_0={centre.x!r} +x_0=0 +y_0=0 +ellps=WGS84")

    pieces, rows, cols = _clip_lattice(boundary, to_local, math.sqrt(target_area_m2))
    local_pieces = shapely.transform(pieces, lambda xy: np.column_stack(to_local.transform(xy[:, 0], xy[:, 1])))

    # Put pieces in numbering order once, so a piece's index is its rank and
    # every later tie-break is a plain integer comparison.
    centroids = shapely.get_coordinates(shapely.centroid(local_pieces))
    order = np.lexsort((-centroids[:, 1], centroids[:, 0], cols, rows))
    pieces, local_pieces, rows, cols = pieces[order], local_pieces[order], rows[order], cols[order]

    areas = [geodesic_area_m2(p) for p in pieces]
    groups = _merge_slivers(local_pieces, areas, sliver_ratio * target_area_m2)

    roots = sorted(groups)
    merged = {root: shapely.union_all(pieces[groups[root]]) for root in roots if len(groups[root]) > 1}
    parts, cell_index = shapely.get_parts([merged.get(root, pieces[root]) for root in roots], return_index=True)
    geoms = shapely.multipolygons(parts, indices=cell_index)
    return [
        GridCell(serial, int(rows[root]), int(cols[root]), geom,
                 geodesic_area_m2(geom) if root in merged else areas[root])
        for serial, (root, geom) in enumerate(zip(roots, geoms), start=1)
    ]


def _clip_lattice(
    boundary: Polygon | MultiPolygon, to_local: Transformer, side: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip the lattice to the boundary; return polygon pieces (EPSG:4326) with their square's row and col."""
    lon, lat = shapely.get_coordinates(boundary).T
    x, y = to_local.transform(lon, lat)
    ncols = int((x.max() - x.min()) // side) + 1
    nrows = int((y.max() - y.min()) // side) + 1
    if nrows * ncols > _MAX_SQUARES:
        raise ValueError(f"the lattice would have {nrows * ncols} squares; raise target_area_m2")

    node_x = x.min() + side * np.arange(ncols + 1)
    node_y = y.max() - side * np.arange(nrows + 1)
    # Boundary edges are straight in lon/lat, hence slightly curved in the
    # projection, and may bulge past the projected extent of the vertices
    # (by millimetres to decimetres, growing with edge length); pushing the
    # outer lattice lines out by one side keeps the whole boundary covered.
    # Numbering is unaffected.
    node_x[[0, -1]] += (-side, side)
    node_y[[0, -1]] += (side, -side)
    grid_x, grid_y = np.meshgrid(node_x, node_y)
    # Corners are shared by neighbouring squares, so the lon/lat
    # quadrilaterals tile the plane with neither gaps nor overlaps.
    nodes = np.stack(to_local.transform(grid_x, grid_y, direction="INVERSE"), axis=-1)
    rings = np.stack([nodes[:-1, :-1], nodes[:-1, 1:], nodes[1:, 1:], nodes[1:, :-1], nodes[:-1, :-1]], axis=2)
    squares = shapely.polygons(rings.reshape(-1, 5, 2))
    rows, cols = np.divmod(np.arange(nrows * ncols), ncols)

    shapely.prepare(boundary)
    hit = shapely.intersects(boundary, squares)
    # Squares well inside need no overlay; only those across the edge are cut.
    inside = shapely.contains_properly(boundary, squares)
    clipped = squares[hit]
    cut = ~inside[hit]
    clipped[cut] = shapely.intersection(clipped[cut], boundary)

    # Overlays of touching shapes add points/lines, possibly in a collection
    # that nests a MultiPolygon; split twice and keep the polygons.
    parts, owner = shapely.get_parts(clipped, return_index=True)
    parts, sub = shapely.get_parts(parts, return_index=True)
    owner = owner[sub]
    keep = (shapely.get_type_id(parts) == shapely.GeometryType.POLYGON) & ~shapely.is_empty(parts)
    return parts[keep], rows[hit][owner[keep]], cols[hit][owner[keep]]


def _merge_slivers(local_pieces: np.ndarray, areas: list[float], min_area: float) -> dict[int, list[int]]:
    """Group piece indices into cells; return {root piece: member pieces}.

    ``local_pieces`` are in the local metric projection, ordered by rank;
    ``areas`` are their areas in m².
    """
    owner = list(range(len(areas)))
    members = {i: [i] for i in owner}
    area = list(areas)
    slivers = [i for i in owner if area[i] < min_area]
    if not slivers:
        return members

    # Border lengths are needed only from slivers: a cell made of slivers is
    # the only kind that is ever merged away, and it contains only slivers.
    tree = shapely.STRtree(local_pieces)
    src, dst = tree.query(local_pieces[slivers], predicate="dwithin", distance=_BORDER_TOLERANCE_M)
    src = np.asarray(slivers)[src]
    other = src != dst
    src, dst = src[other], dst[other]
    lengths = shapely.length(shapely.intersection(
        shapely.boundary(local_pieces[src]),
        shapely.buffer(local_pieces[dst], _BORDER_TOLERANCE_M, quad_segs=1),
    ))
    borders = defaultdict(list)
    for piece, neighbour, length in zip(src.tolist(), dst.tolist(), lengths.tolist()):
        borders[piece].append((neighbour, length))

    # Smallest first; a cell that is still a sliver after absorbing one is
    # queued again with its new area, and stale entries are skipped.
    queue = [(area[i], i) for i in slivers]
    heapq.heapify(queue)
    while queue:
        queued_area, cell = heapq.heappop(queue)
        if cell not in members or area[cell] != queued_area:
            continue
        shared = defaultdict(float)
        for piece in members[cell]:
            for neighbour, length in borders[piece]:
                if owner[neighbour] != cell:
                    shared[owner[neighbour]] += length
        if not shared:
            continue
        # A real border first, then a non-sliver, then the longest border,
        # then numbering order.
        target = min(shared, key=lambda t: (shared[t] < _MIN_SHARED_BORDER_M, area[t] < min_area, -shared[t], t))
        for piece in members[cell]:
            owner[piece] = target
        members[target] += members.pop(cell)
        area[target] += area[cell]
        if area[target] < min_area:
            heapq.heappush(queue, (area[target], target))
    return members


def grid_code(parent_code: str, serial: int, total: int) -> str:
    """Return the code of cell ``serial`` of ``total`` in the community ``parent_code``.

    Codes follow our GB/T 2260-style scheme: 6-digit county + 3-digit street +
    3-digit community + the cell serial, zero-padded to two digits, or wider
    when the community has more than 99 cells (``max(2, len(str(total)))``
    digits) so that all codes of one community have the same length.

    The parent code is used as given, not checked to be digits: imported
    data may follow another code scheme.

    Raises ``ValueError`` if ``parent_code`` is not a non-empty string, or
    ``serial``/``total`` are not integers with ``1 <= serial <= total``.
    """
    if not (isinstance(parent_code, str) and parent_code):
        raise ValueError(f"parent_code must be a non-empty string, got {parent_code!r}")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (serial, total)) or not 1 <= serial <= total:
        raise ValueError(f"need integers with 1 <= serial <= total, got serial={serial!r}, total={total!r}")
    return f"{parent_code}{serial:0{max(2, len(str(total)))}d}"
