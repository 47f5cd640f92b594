"""Hotspots of a region (docs/STATS.md): the units (cells or streets) whose reports of a
category group in the latest window are more than their own past explains
(``domain.hotspots``), and the spots reported again and again (reports of one group within
a few metres of each other in the window).

Read-only. Scope and rights as the evaluation figures (``STATS_READ``).
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

from sqlalchemy import select, text

from geo.geometry import from_db
from server.domain.hotspots import HotspotRules, judge
from server.domain.permissions import STATS_READ, Actor
from server.domain.territory import ancestor_ids, level_rank
from server.errors import InvalidInput
from server.extensions import db, replica_reads
from server.models import Category, HotspotAlert, Region

from . import notify
from .access import require
from .regions import get_region

_COUNTS = text("""
SELECT CASE WHEN :unit_pos = 0 THEN i.region_id
            ELSE CAST(NULLIF(split_part(i.region_path, '/', :unit_pos), '') AS integer) END AS unit,
       COALESCE(c.parent_id, c.id) AS category_group,
       count(*) FILTER (WHERE i.reported_at >= :window_start) AS reports,
       count(*) FILTER (WHERE i.reported_at < :window_start) AS past
FROM incidents i JOIN categories c ON c.id = i.category_id
WHERE i.region_path LIKE :path || '%' AND i.reported_at >= :baseline_start AND i.reported_at < :window_end
  AND i.status NOT IN ('rejected', 'merged')
GROUP BY 1, 2
HAVING count(*) FILTER (WHERE i.reported_at >= :window_start) >= :min_count
""")

_UNITS = text("""
SELECT r.id, r.code, r.name, r.name_en, r.level, ST_AsGeoJSON(r.centre) AS centre, g.code AS group_code, g.name AS group_name,
       g.name_en AS group_name_en, g.id AS group_id
FROM regions r, categories g WHERE r.id = ANY(:units) AND g.id = ANY(:groups)
""")

# reports of one group within ``eps`` (Web Mercator metres: ground metres ÷ cos latitude) of
# each other, ``repeat_min`` or more, in the window
_REPEATED = text("""
WITH recent AS (
    SELECT i.id, i.geom, COALESCE(c.parent_id, c.id) AS category_group
    FROM incidents i JOIN categories c ON c.id = i.category_id
    WHERE i.region_path LIKE :path || '%' AND i.reported_at >= :window_start AND i.reported_at < :window_end
      AND i.status NOT IN ('rejected', 'merged')
), clustered AS (
    SELECT id, geom, category_group,
           ST_ClusterDBSCAN(ST_Transform(geom, 3857), eps := :eps, minpoints := :repeat_min)
               OVER (PARTITION BY category_group) AS cluster
    FROM recent
)
SELECT k.category_group, count(*) AS reports, array_agg(k.id ORDER BY k.id) AS incident_ids,
       ST_AsGeoJSON(ST_Centroid(ST_Collect(k.geom))) AS centre, g.code AS group_code, g.name AS group_name,
       g.name_en AS group_name_en
FROM clustered k JOIN categories g ON g.id = k.category_group
WHERE k.cluster IS NOT NULL
GROUP BY k.category_group, k.cluster, g.code, g.name, g.name_en
ORDER BY count(*) DESC, min(k.id)
""")


def find_hot(path: str, level: str, end: datetime, rules: HotspotRules) -> list[dict]:
    """The hot (unit, category group) pairs below ``path`` for the window ending at ``end``:
    unit and group ids, reports, baseline mean, ratio and p-value, unordered."""
    window = timedelta(days=rules.days)
    params = {"path": path, "unit_pos": 0 if level == "grid" else level_rank(level) + 2,
              "window_start": end - window, "window_end": end, "min_count": rules.min_count,
              "baseline_start": end - window - rules.baseline_windows * window}
    hot = []
    for row in db.session.execute(_COUNTS, params):
        is_hot, p, mean = judge(row.reports, row.past, rules)
        if is_hot and row.unit is not None:
            hot.append({"unit": row.unit, "group": row.category_group, "reports": row.reports,
                        "baseline_mean": round(mean, 3), "p_value": p,
                        "ratio": None if mean == 0 else round(row.reports / mean, 2)})
    return hot


def configured_rules(config) -> HotspotRules:
    """The early warning's test, from the settings (``HOTSPOT_*``)."""
    return HotspotRules(days=config["HOTSPOT_DAYS"], baseline_windows=config["HOTSPOT_BASELINE_WINDOWS"],
                        alpha=config["HOTSPOT_ALPHA"], min_count=config["HOTSPOT_MIN_COUNT"])


def raise_alerts(now: datetime, rules: HotspotRules) -> int:
    """Early warning (预警): for each cell of the city turning hot for a category group, an
    alert, and an inbox entry and a push (through the outbox) for the supervisors of its
    community and street — once per cell and group within a window: a cell that stays hot
    is not announced again until a window has passed since its last alert. Returns the
    alerts raised. No commit: the caller's transaction holds the alerts and their messages."""
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('fengqiao:hotspot-alerts'))"))  # one at a time
    window = timedelta(days=rules.days)
    hot = find_hot("/", "grid", now, rules)
    if not hot:
        return 0
    recent = {(row.region_id, row.category_id) for row in db.session.execute(
        select(HotspotAlert.region_id, HotspotAlert.category_id).where(HotspotAlert.window_end > now - window))}
    fresh = [h for h in hot if (h["unit"], h["group"]) not in recent]
    if not fresh:
        return 0
    cells = {r.id: r for r in db.session.scalars(select(Region).where(Region.id.in_({h["unit"] for h in fresh})))}
    groups = {c.id: c for c in db.session.scalars(select(Category).where(Category.id.in_({h["group"] for h in fresh})))}
    places = {}
    for cell in cells.values():
        ids = ancestor_ids(cell.path)
        places[cell.id] = [(ids[level_rank(level)], level) for level in ("community", "street")
                           if level_rank(level) < len(ids)]
    managers = notify.supervisors({place for found in places.values() for place in found})
    tells = []
    for h in sorted(fresh, key=lambda h: h["p_value"]):
        cell, group = cells[h["unit"]], groups[h["group"]]
        alert = HotspotAlert(region_id=cell.id, category_id=group.id, window_start=now - window, window_end=now,
                             reports=h["reports"], baseline_mean=h["baseline_mean"], p_value=h["p_value"],
                             created_at=now)
        db.session.add(alert)
        db.session.flush()
        told = tuple(sorted({user for place in places[cell.id] for user in managers.get(place, [])}))
        subject = notify.Subject(
            None, f"{group.name}：{rules.days}天内{h['reports']}起（以往每{rules.days}天{h['baseline_mean']:g}起）",
            f"{group.name_en}: {h['reports']} in {rules.days} days (usually {h['baseline_mean']:g})",
            cell.name)
        tells.append(notify.Tell(told, "hotspot", subject, f"hotspot:{alert.id}"))
    notify.tell(tells, now)
    return len(fresh)


@replica_reads()
def hotspots(actor: Actor, region_id: int, level: str, end: datetime, rules: HotspotRules,
             radius_m: float, repeat_min: int) -> dict:
    """The hot units of ``level`` in the region for the window of ``rules.days`` ending at
    ``end``, most surprising first, and the repeated spots. Errors: region.not_found,
    auth.forbidden."""
    region = get_region(actor, region_id)
    require(actor, STATS_READ, region)
    if level_rank(level) <= level_rank(region.level):
        raise InvalidInput("stats.invalid_level", f"Hotspots of a {region.level} are of a level below it.",
                           errors={"level": [f"Choose a level below {region.level}."]})
    window_start = end - timedelta(days=rules.days)
    hot = find_hot(region.path, level, end, rules)
    units = {}
    if hot:
        for row in db.session.execute(_UNITS, {"units": sorted({h["unit"] for h in hot}),
                                               "groups": sorted({h["group"] for h in hot})}):
            units[(row.id, row.group_id)] = row
    features = []
    for h in sorted(hot, key=lambda h: (h["p_value"], -h["reports"])):
        row = units.get((h["unit"], h["group"]))
        if row is None:
            continue
        features.append({
            "type": "Feature", "geometry": json.loads(row.centre) if row.centre else None,
            "properties": {"region": {"id": row.id, "code": row.code, "name": row.name, "name_en": row.name_en,
                                      "level": row.level},
                           "category_group": {"code": row.group_code, "name": row.group_name,
                                              "name_en": row.group_name_en},
                           "reports": h["reports"], "baseline_mean": h["baseline_mean"], "ratio": h["ratio"],
                           "p_value": h["p_value"]}})
    centre = from_db(region.centre)
    latitude = centre.y if centre is not None else 0.0
    repeated = [{
        "type": "Feature", "geometry": json.loads(row.centre),
        "properties": {"category_group": {"code": row.group_code, "name": row.group_name,
                                          "name_en": row.group_name_en},
                       "reports": row.reports, "incident_ids": list(row.incident_ids)}}
        for row in db.session.execute(_REPEATED, {
            "path": region.path, "window_start": window_start, "window_end": end, "repeat_min": repeat_min,
            "eps": radius_m / max(math.cos(math.radians(latitude)), 0.01)})]
    return {"region": region, "window": {"from": window_start, "to": end},
            "rules": {"days": rules.days, "baseline_windows": rules.baseline_windows, "alpha": rules.alpha,
                      "min_count": rules.min_count, "floor": rules.floor, "radius_m": radius_m,
                      "repeat_min": repeat_min},
            "hotspots": {"type": "FeatureCollection", "features": features},
            "repeated": {"type": "FeatureCollection", "features": repeated}}
