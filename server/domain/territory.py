"""The territory tree (属地): levels and the materialised path.

Levels run ``city > district > street > community > grid`` (市 > 区 > 街道 > 社区 > 网格).
A region's ``path`` is the ids of its ancestors and itself, ``/1/5/77/``: the subtree
of a region is every path that starts with its path.
"""
from __future__ import annotations

LEVELS = ("city", "district", "street", "community", "grid")

LEVEL_LABELS = {
    "city": ("市", "City"),
    "district": ("区县", "District"),
    "street": ("街道/乡镇", "Street"),
    "community": ("社区/村", "Community"),
    "grid": ("网格", "Grid cell"),
}


def level_rank(level: str) -> int:
    """0 for city … 4 for grid. Raises ValueError for an unknown level."""
    return LEVELS.index(level)


def parent_level(level: str) -> str | None:
    """The level directly above ``level`` (None for city)."""
    rank = level_rank(level)
    return LEVELS[rank - 1] if rank else None


def child_level(level: str) -> str | None:
    """The level directly below ``level`` (None for grid)."""
    rank = level_rank(level)
    return LEVELS[rank + 1] if rank + 1 < len(LEVELS) else None


def child_path(parent_path: str | None, region_id: int) -> str:
    """The path of a region with id ``region_id`` under a parent with ``parent_path``."""
    return f"{parent_path or '/'}{region_id}/"


def is_within(path: str, scope_path: str) -> bool:
    """True when ``path`` is ``scope_path`` itself or lies below it."""
    return path.startswith(scope_path)


def ancestor_ids(path: str) -> list[int]:
    """Ids on ``path`` from the root down to the region itself."""
    return [int(part) for part in path.strip("/").split("/") if part]
