"""Missed reports (漏报, docs/FIELD.md): cases that came from outside the grid workers (the
hotline, entered on the platform, citizens through Open311) where a grid worker had walked
shortly before and reported nothing of the kind.

Read-only. Scope: a region the actor may see (404 otherwise), figures for managers of it
(``STATS_READ``, 403 otherwise); only the tracks of workers whose patrols the actor may read
(a patrol's area inside the actor's scope) are looked at.
"""
from __future__ import annotations

from collections import defaultdict

from flask import current_app
from sqlalchemy import select, text

from server.domain.patrols import (
    GAP_MINUTES, MISSED_OWN_REPORT_M, MISSED_REACH_M, MISSED_SOURCES, MISSED_WINDOW_HOURS, SLOT_SECONDS,
)
from server.domain.permissions import STATS_READ, Actor
from server.extensions import db, replica_reads
from server.models import Region, User
from server.models._base import utcnow

from .access import require, scope_path
from .analytic import analytic
from .regions import get_region
from .stats import Period

# The region's cases from :sources reported in [:lo, :hi), each with its category group.
_CASES = """
SELECT i.id, i.region_id, i.geom, i.reported_at, COALESCE(c.parent_id, c.id) AS category_group,
       i.reported_at - make_interval(hours => :window) AS since
FROM incidents i JOIN categories c ON c.id = i.category_id
WHERE i.region_path LIKE :path || '%' AND i.reported_at >= :lo AND i.reported_at < :hi AND i.source = ANY(:sources)
"""

# For each case, the grid workers (patrols inside :scope) with a segment of kept track — two
# consecutive kept points at most :gap minutes apart, both in the window before the report —
# within :reach metres of it (on the spheroid), who reported nothing of the case's category
# group within :own metres in that window. A patrol is looked into only if it may hold points
# of the window (its time, with the clock skew allowed to phones) and, once ended, if its
# track's box comes near the case.
_MISSED = text(f"""
WITH cases AS ({_CASES}), passed AS (
    SELECT DISTINCT ca.id AS case_id, pa.user_id
    FROM cases ca
    JOIN patrols pa ON pa.started_at <= ca.reported_at + make_interval(secs => :skew)
         AND (pa.ended_at IS NULL OR pa.ended_at >= ca.since - make_interval(secs => :skew))
         AND (pa.track IS NULL
              OR pa.track && ST_Expand(ca.geom, :reach * 1.1 / (111320 * cos(radians(ST_Y(ca.geom))))))
         AND pa.region_path LIKE :scope || '%'
    WHERE EXISTS (
        SELECT 1 FROM (
            SELECT pp.t, pp.geom, lead(pp.t) OVER w AS t_next, lead(pp.geom) OVER w AS geom_next
            FROM patrol_points pp
            WHERE pp.patrol_id = pa.id AND pp.reason IS NULL
              AND pp.slot >= floor(extract(epoch FROM ca.since) / :slot)
              AND pp.slot <= floor(extract(epoch FROM ca.reported_at) / :slot)
              AND pp.t >= ca.since AND pp.t <= ca.reported_at
            WINDOW w AS (ORDER BY pp.t)
        ) s
        WHERE s.t_next - s.t <= make_interval(mins => :gap)
          AND ST_DWithin(ST_MakeLine(s.geom, s.geom_next)::geography, ca.geom::geography, :reach)
    )
)
SELECT p.case_id, p.user_id, ca.region_id AS cell_id
FROM passed p JOIN cases ca ON ca.id = p.case_id
WHERE NOT EXISTS (
    SELECT 1 FROM incidents own JOIN categories oc ON oc.id = own.category_id
    WHERE own.reporter_id = p.user_id AND own.reported_at >= ca.since AND own.reported_at <= ca.reported_at
      AND COALESCE(oc.parent_id, oc.id) = ca.category_group
      AND ST_DWithin(own.geom::geography, ca.geom::geography, :own)
)
ORDER BY p.case_id, p.user_id
""")
_COUNT = text(f"SELECT count(*) FROM ({_CASES}) AS cases")


@replica_reads()
def missed_reports(actor: Actor, region_id: int, period: Period) -> dict:
    """The region's cases from the hotline, the platform and citizens reported in ``period``
    that a grid worker missed (漏报), per worker and per cell, each with the case ids. Errors:
    region.not_found, auth.forbidden."""
    region = get_region(actor, region_id)
    require(actor, STATS_READ, region)
    lo, hi = period.bounds()
    params = {"path": region.path, "lo": lo, "hi": hi, "sources": list(MISSED_SOURCES),
              "window": MISSED_WINDOW_HOURS}
    with analytic():
        checked = db.session.scalar(_COUNT, params)
        rows = db.session.execute(_MISSED, params | {
            "scope": scope_path(actor), "skew": current_app.config["CLOCK_SKEW_SECONDS"], "slot": SLOT_SECONDS,
            "gap": GAP_MINUTES, "reach": MISSED_REACH_M, "own": MISSED_OWN_REPORT_M}).all()
    by_worker: dict[int, list[int]] = defaultdict(list)
    by_cell: dict[int, set[int]] = defaultdict(set)
    for row in rows:
        by_worker[row.user_id].append(row.case_id)
        by_cell[row.cell_id].add(row.case_id)
    workers = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(by_worker)))} if rows else {}
    cells = {c.id: c for c in db.session.scalars(select(Region).where(Region.id.in_(by_cell)))} if rows else {}
    return {
        "region": region, "period": period.as_dict(), "as_of": utcnow(), "cases_checked": checked,
        "missed": len({row.case_id for row in rows}),
        "rule": {"sources": list(MISSED_SOURCES), "reach_m": MISSED_REACH_M, "window_hours": MISSED_WINDOW_HOURS,
                 "own_report_m": MISSED_OWN_REPORT_M},
        "workers": sorted(({"worker": workers[u], "missed": len(ids), "incident_ids": ids}
                           for u, ids in by_worker.items()), key=lambda w: (-w["missed"], w["worker"].id)),
        "cells": sorted(({"cell": cells[c], "missed": len(ids), "incident_ids": sorted(ids)}
                         for c, ids in by_cell.items()), key=lambda c: (-c["missed"], c["cell"].code)),
    }
