"""What a map shows at each zoom (docs/MAP.md): pure rules."""
from __future__ import annotations

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
