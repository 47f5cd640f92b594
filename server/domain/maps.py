"""What a map shows at each zoom (docs/MAP.md): pure rules."""
from __future__ import annotations

from dataclasses import dataclass

MAX_ZOOM = 22
INCIDENTS_FROM_ZOOM = 13  # single incidents from this zoom; clusters below it
MAX_FEATURES = 2000  # GeoJSON features in one page


def region_level(zoom: int) -> str:
    """The level of the regions drawn at ``zoom``: districts, streets, communities, cells."""
    if zoom <= 9:
        return "district"
    if zoom <= 11:
        return "street"
    if zoom <= 13:
        return "community"
    return "grid"


BASEMAP_CRS = ("wgs84", "gcj02")  # the coordinates a basemap's tiles are drawn in


@dataclass(frozen=True)
class Basemap:
    """A raster basemap under the regions (an XYZ tile URL template), and the coordinates its
    tiles are drawn in: ``gcj02`` for Chinese providers, whose maps are offset by GCJ-02."""

    url: str
    crs: str = "wgs84"
    attribution: str = ""


def basemap(url: str | None, crs: str = "wgs84", attribution: str = "") -> Basemap | None:
    """The configured basemap (None without a URL). Raises ValueError for a URL that is not
    an http(s) template holding {z}, {x} and {y}, or a CRS other than BASEMAP_CRS."""
    if not url:
        return None
    if not url.startswith(("http://", "https://")) or not all(part in url for part in ("{z}", "{x}", "{y}")):
        raise ValueError(f"the basemap URL must be an http(s) tile template with {{z}}, {{x}} and {{y}}: {url!r}")
    if crs not in BASEMAP_CRS:
        raise ValueError(f"the basemap CRS must be one of {', '.join(BASEMAP_CRS)}: {crs!r}")
    return Basemap(url, crs, attribution)
