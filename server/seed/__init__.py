"""Seed data shipped with the code: the standard categories (``categories.json``)."""
from __future__ import annotations

import json
from pathlib import Path

SEED_DIR = Path(__file__).resolve().parent
CATEGORIES = SEED_DIR / "categories.json"

# The fields a category may have in a seed file (a group also has "children").
CATEGORY_FIELDS = frozenset({
    "code", "name", "name_en", "kind", "default_priority", "start_level", "department_kind", "requires_after_photo",
    "public", "keywords", "description", "attributes", "policy", "sort_order",
})


def read_categories(path: Path | str | None = None) -> list[dict]:
    """The categories of a seed file as flat rows: each group, then its leaves.

    The file is ``{"groups": [{…group…, "children": [{…leaf…}, …]}, …]}`` (other
    top-level members, such as "about", are ignored). A leaf row gets ``parent_code``;
    ``sort_order`` defaults to the position (from 1) among its siblings. Raises
    ValueError when the file is not JSON or not of this shape; the values themselves
    are checked by ``domain.categories.category_errors``.
    """
    path = Path(path) if path else CATEGORIES
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read JSON ({exc})") from None
    groups = document.get("groups") if isinstance(document, dict) else None
    if not isinstance(groups, list) or not groups:
        raise ValueError(f'{path}: expected {{"groups": [...]}} with at least one group')
    rows = []
    for g, group in enumerate(groups, start=1):
        _check_shape(group, f"groups[{g - 1}]", CATEGORY_FIELDS | {"children"})
        children = group.get("children", [])
        if not isinstance(children, list):
            raise ValueError(f"groups[{g - 1}].children must be a list")
        rows.append({"sort_order": g, **{k: v for k, v in group.items() if k != "children"}})
        for c, child in enumerate(children, start=1):
            _check_shape(child, f"groups[{g - 1}].children[{c - 1}]", CATEGORY_FIELDS)
            rows.append({"sort_order": c, **child, "parent_code": group["code"]})
    return rows


def _check_shape(item, where: str, allowed: frozenset) -> None:
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be an object")
    unknown = set(item) - allowed
    if unknown:
        raise ValueError(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
    if not isinstance(item.get("code"), str):
        raise ValueError(f"{where} needs a code")
