"""Patrol coverage (巡查覆盖, docs/FIELD.md "Coverage"): how much of each grid cell the day's
patrols came near, how long they spent and how far they walked in it.

A day is a local day (config TIMEZONE). Its figures are computed for every cell at once by
one statement (``_COVERAGE``) and kept in ``patrol_coverage`` by the worker once the day is
over; today, and a past day whose points changed since, are computed when asked, not stored.

Which days are due: every batch of points marks the local days of the points it stored or
judged again (``patrol_coverage_marks``, one row per day and patrol). The worker computes a
past day holding marks, deleting them in the same transaction, so points that arrive during
or after a computation leave a mark and the day is computed again. Workers side by side take
a day each under a transaction-level advisory lock.

Read: managers of the region (``STATS_READ``, 403 otherwise), a region they may see (404).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import text

from server.domain.patrols import COVERAGE_REACH_M, GAP_MINUTES, SLOT_SECONDS
from server.domain.permissions import STATS_READ, Actor
from server.errors import InvalidInput
from server.extensions import db
from server.models._base import utcnow

from .access import require
from .analytic import analytic
from .regions import get_region

LOCK = "fengqiao:patrol-coverage"  # advisory lock class: one computation of a day at a time

# The UTM zone of a cell's centre (a point on its surface): the local metric projection its
# coverage is measured in (WGS 84 / UTM north 326zz, south 327zz).
_UTM_SRID = ("(CASE WHEN ST_Y(c.centre) >= 0 THEN 32600 ELSE 32700 END"
             " + LEAST(60, floor((ST_X(c.centre) + 180) / 6)::int + 1))")

# The figures of each live grid cell under :path on the day [:lo, :hi) that a kept track came
# near. ``area``: the box of those cells grown by :reach metres (in degrees, with 10 % to spare
# at any latitude). The day's kept points (:slot_lo ≤ slot < :slot_hi is lo ≤ t < hi: days
# begin on a slot) of the patrols that may hold any (ended since the day began, or still on,
# and started before it ended, with the clock skew allowed to phones; an ended one only if its
# track's box meets the area), each with the next kept point of its patrol that day, at most
# :gap minutes later: a segment of the track. Each segment meeting the area is joined to the
# cells whose box meets its box grown by :reach (the cells' spatial index finds them); then per
# cell:
# - share: the cell's area within :reach m of the segments, in the cell's UTM zone: the
#   segments sewn into lines (ST_LineMerge), each line buffered, the buffers' union (measured
#   on the benchmark: a hundred times faster than buffering the two-point segments as one
#   geometry, ten times faster than buffering the lines as one), intersected with the cell,
#   over the cell's area there;
# - minutes: the time of the segments whose two ends are both in the cell;
# - metres: the length of the segments inside the cell, on the spheroid;
# - workers, patrols: those with a segment in the cell (an end or a piece of it).
_COVERAGE = f"""
WITH area AS MATERIALIZED (
    SELECT ST_Expand(box, :reach * 1.1 / (111320 * cos(radians(greatest(abs(ST_YMin(box)), abs(ST_YMax(box)))))),
                     :reach * 1.1 / 110574) AS box
    FROM (SELECT ST_SetSRID(ST_Extent(c.geom)::geometry, 4326) AS box FROM regions c
          WHERE c.level = 'grid' AND c.retired_at IS NULL AND c.path LIKE :path || '%') e
), points AS (
    SELECT pp.patrol_id, pa.user_id, pp.t, pp.geom,
           lead(pp.t) OVER w AS t_next, lead(pp.geom) OVER w AS geom_next
    FROM area, patrols pa JOIN patrol_points pp ON pp.patrol_id = pa.id
    WHERE (pa.ended_at IS NULL OR pa.ended_at >= CAST(:lo AS timestamptz) - make_interval(secs => :skew))
      AND pa.started_at < CAST(:hi AS timestamptz) + make_interval(secs => :skew)
      AND (pa.track IS NULL OR pa.track && area.box)
      AND pp.slot >= :slot_lo AND pp.slot < :slot_hi AND pp.reason IS NULL
    WINDOW w AS (PARTITION BY pp.patrol_id ORDER BY pp.t)
), segments AS MATERIALIZED (
    SELECT patrol_id, user_id, geom, geom_next, seg, extract(epoch FROM t_next - t) AS seconds,
           :reach * 1.1 / (111320 * cos(radians(greatest(abs(ST_Y(geom)), abs(ST_Y(geom_next)))))) AS dx
    FROM (SELECT p.*, ST_MakeLine(p.geom, p.geom_next) AS seg FROM points p
          WHERE p.t_next - p.t <= make_interval(mins => :gap)) s, area
    WHERE s.seg && area.box
), near AS (
    SELECT c.id AS cell_id, s.patrol_id, s.user_id, s.seg, s.geom, s.seconds,
           ST_Intersects(c.geom, s.geom) AND ST_Intersects(c.geom, s.geom_next) AS both_inside,
           CASE WHEN NOT ST_Intersects(c.geom, s.seg) THEN 0
                WHEN ST_CoveredBy(s.seg, c.geom) THEN ST_Length(s.seg::geography)
                ELSE ST_Length(ST_Intersection(s.seg, c.geom)::geography) END AS inside_m
    FROM segments s
    JOIN regions c ON c.geom && ST_Expand(s.seg, s.dx, :reach * 1.1 / 110574)
    WHERE c.level = 'grid' AND c.retired_at IS NULL
      AND substr(c.path, 1, length(:path)) = :path  -- (not LIKE: the cells' spatial index is the one to use)
), figures AS (
    SELECT cell_id, ST_LineMerge(ST_Collect(seg)) AS lines,
           ST_Collect(geom) FILTER (WHERE ST_Length(seg) = 0) AS still,  -- standing: no line, a disc
           COALESCE(sum(seconds) FILTER (WHERE both_inside), 0) / 60 AS minutes, sum(inside_m) AS metres,
           count(DISTINCT user_id) FILTER (WHERE both_inside OR inside_m > 0) AS workers,
           count(DISTINCT patrol_id) FILTER (WHERE both_inside OR inside_m > 0) AS patrols
    FROM near GROUP BY cell_id
), measured AS MATERIALIZED (
    SELECT f.cell_id, f.minutes, f.metres, f.workers, f.patrols,
           LEAST(1.0, COALESCE(ST_Area(ST_Intersection(
               (SELECT ST_Union(ST_Buffer(d.geom, :reach))
                FROM ST_Dump(ST_Transform(ST_Collect(array_remove(ARRAY[f.lines, f.still], NULL)), m.srid)) d),
               m.cell)) / ST_Area(m.cell), 0)) AS share
    FROM figures f JOIN regions c ON c.id = f.cell_id
    CROSS JOIN LATERAL (SELECT s.srid, ST_Transform(c.geom, s.srid) AS cell
                        FROM (SELECT {_UTM_SRID} AS srid) s) m
)
SELECT cell_id, share, minutes, metres, workers, patrols FROM measured
WHERE share > 0 OR metres > 0 OR minutes > 0
"""
_COMPUTE = text(_COVERAGE)
_STORE = text(f"""
INSERT INTO patrol_coverage (region_id, day, share, minutes, metres, workers, patrols, computed_at)
SELECT cell_id, :day, share, minutes, metres, workers, patrols, :now FROM ({_COVERAGE}) AS computed
""")
_STORED = text("""
SELECT pc.region_id AS cell_id, pc.share, pc.minutes, pc.metres, pc.workers, pc.patrols, pc.computed_at
FROM patrol_coverage pc JOIN regions c ON c.id = pc.region_id
WHERE pc.day = :day AND c.path LIKE :path || '%'
""")
_CELLS = text("""
SELECT c.id, c.code, c.name, c.name_en, c.level, c.area_m2{geometry}
FROM regions c WHERE c.level = 'grid' AND c.retired_at IS NULL AND c.path LIKE :path || '%'
ORDER BY c.code
""")


def local_day(moment: datetime) -> date:
    """The local date (config TIMEZONE) of an instant."""
    return moment.astimezone(ZoneInfo(current_app.config["TIMEZONE"])).date()


def _params(day: date, path: str) -> dict:
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    lo = datetime.combine(day, time(), zone)
    hi = datetime.combine(day + timedelta(days=1), time(), zone)
    return {"lo": lo, "hi": hi, "slot_lo": int(lo.timestamp()) // SLOT_SECONDS,
            "slot_hi": int(hi.timestamp()) // SLOT_SECONDS, "gap": GAP_MINUTES, "reach": COVERAGE_REACH_M,
            "skew": current_app.config["CLOCK_SKEW_SECONDS"], "path": path}


# ---------------------------------------------------------------- marks (called by the patrol batches)

def mark_changed(patrol_id: int, slots: list[int]) -> None:
    """Mark the local days of a patrol's points in ``slots`` (stored or judged again) as due for
    a new computation. No commit: the batch's transaction holds the marks with its points."""
    if slots:
        db.session.execute(text("""
            INSERT INTO patrol_coverage_marks (day, patrol_id)
            SELECT DISTINCT CAST(t AT TIME ZONE :zone AS date), patrol_id FROM patrol_points
            WHERE patrol_id = :id AND slot = ANY(:slots)
            ON CONFLICT (day, patrol_id) DO UPDATE SET version = patrol_coverage_marks.version + 1
        """), {"zone": current_app.config["TIMEZONE"], "id": patrol_id, "slots": list(slots)})


# ---------------------------------------------------------------- computing and storing a day

def _lock(day: date, *, wait: bool) -> bool:
    """Take the day's advisory lock for the transaction (``wait``: until it is free); whether
    it was taken."""
    if wait:
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:lock), :day)"),
                           {"lock": LOCK, "day": day.toordinal()})
        return True
    return bool(db.session.scalar(text("SELECT pg_try_advisory_xact_lock(hashtext(:lock), :day)"),
                                  {"lock": LOCK, "day": day.toordinal()}))


def _store_day(day: date, now: datetime) -> int:
    """Replace the day's rows by a new computation over the whole territory; returns the cells
    stored. The caller holds the day's lock and commits. The day's marks are read first and
    deleted last, only those unchanged since (a batch during the computation bumps its mark's
    version or adds one: the day is computed again), so batches never wait for the
    computation: the marks are locked only by the final delete."""
    marks = db.session.execute(text("SELECT patrol_id, version FROM patrol_coverage_marks WHERE day = :day"),
                               {"day": day}).all()
    db.session.execute(text("DELETE FROM patrol_coverage WHERE day = :day"), {"day": day})
    with analytic():
        stored = db.session.execute(_STORE, _params(day, "/") | {"day": day, "now": now}).rowcount
    if marks:
        db.session.execute(text(
            "DELETE FROM patrol_coverage_marks m USING unnest(CAST(:patrols AS bigint[]), CAST(:versions AS bigint[]))"
            " AS read(patrol_id, version) WHERE m.day = :day AND m.patrol_id = read.patrol_id"
            " AND m.version = read.version"),
            {"day": day, "patrols": [m.patrol_id for m in marks], "versions": [m.version for m in marks]})
    return stored


def retained_since(now: datetime) -> datetime:
    """Patrols ended before this have lost their points (retention): days that begin before it
    are never computed again (their stored figures stay)."""
    config = current_app.config
    return now - max(timedelta(days=config["PATROL_RETENTION_DAYS"]),
                     timedelta(hours=config["PATROL_LATE_HOURS"] + config["PATROL_MAX_HOURS"]))


def _retained(day: date, now: datetime) -> bool:
    return datetime.combine(day, time(), ZoneInfo(current_app.config["TIMEZONE"])) >= retained_since(now)


def compute_day(day: date, now: datetime | None = None) -> int:
    """Compute and store a past day's coverage for every cell (again: the same rows), waiting
    for another computation of the day to finish first; returns the cells stored. Errors:
    coverage.future_day (today or later: a day is stored once it is over)."""
    now = now or utcnow()
    if day >= local_day(now):
        raise InvalidInput("coverage.future_day", "A day is stored once it is over: today is computed when read.",
                           errors={"day": ["Before today."]})
    if not _retained(day, now):
        raise InvalidInput("coverage.past_retention", "That day's GPS points were deleted after the retention "
                           "period: its stored figures stay as they are.", errors={"day": ["Past the retention."]})
    _lock(day, wait=True)
    stored = _store_day(day, now)
    db.session.commit()
    return stored


def compute_due(now: datetime) -> tuple[date, int] | None:
    """The worker's step: compute the earliest past day whose points changed since it was last
    computed (one day a pass; a day another worker is computing is passed over). Returns the
    day and the cells stored, or None when nothing is due (one index scan)."""
    due = db.session.scalars(text("SELECT DISTINCT day FROM patrol_coverage_marks WHERE day < :today ORDER BY day"),
                             {"today": local_day(now)}).all()
    expired = [day for day in due if not _retained(day, now)]
    if expired:  # marks outliving the points (a worker down for months): the stored figures stay
        db.session.execute(text("DELETE FROM patrol_coverage_marks WHERE day = ANY(:days)"), {"days": expired})
        db.session.commit()
    for day in (day for day in due if day not in expired):
        if not _lock(day, wait=False):
            continue
        still = db.session.scalar(text("SELECT EXISTS (SELECT 1 FROM patrol_coverage_marks WHERE day = :day)"),
                                  {"day": day})
        if not still:  # another worker computed it between our look and our lock
            db.session.commit()
            continue
        stored = _store_day(day, now)
        db.session.commit()
        return day, stored
    db.session.commit()
    return None


def compute_days(days: list[date], progress: Callable[[int, int, str], None] | None = None) -> dict[date, int]:
    """Compute and store each of ``days`` (``flask patrols coverage``); the cells stored by day."""
    done = {}
    for n, day in enumerate(days, start=1):
        done[day] = compute_day(day)
        if progress:
            progress(n, len(days), f"{day}: {done[day]} cells")
    return done


# ---------------------------------------------------------------- reading

def region_coverage(actor: Actor, region_id: int, day: date | None, *, with_geometry: bool = False,
                    now: datetime | None = None) -> dict:
    """The coverage of every live grid cell of the region on ``day`` (default today): stored
    for a past day, computed now for today and for a past day whose points changed since its
    computation (``live``), for a region of at most COVERAGE_LIVE_MAX_CELLS cells (a larger
    one reads a past day as stored, ``pending`` telling that newer points wait for the worker).
    Errors: region.not_found, auth.forbidden, coverage.future_day, coverage.too_large_live."""
    region = get_region(actor, region_id)
    require(actor, STATS_READ, region)
    now = now or utcnow()
    today = local_day(now)
    day = day or today
    if day > today:
        raise InvalidInput("coverage.future_day", "That day has not come yet.", errors={"day": ["Not after today."]})
    pending = day < today and _retained(day, now) and bool(db.session.scalar(
        text("SELECT EXISTS (SELECT 1 FROM patrol_coverage_marks WHERE day = :day)"), {"day": day}))
    limit = current_app.config["COVERAGE_LIVE_MAX_CELLS"]
    small = db.session.scalar(text(
        "SELECT count(*) <= :limit FROM (SELECT 1 FROM regions c WHERE c.level = 'grid' AND c.retired_at IS NULL"
        " AND c.path LIKE :path || '%' LIMIT :limit + 1) n"), {"path": region.path, "limit": limit})
    if day == today and not small:
        raise InvalidInput("coverage.too_large_live",
                           f"Today's coverage is computed when asked, for at most {limit:,} cells: ask for a "
                           "street or a community, or for a past day (stored by the worker).",
                           errors={"region_id": [f"More than {limit:,} grid cells."]})
    live = day == today or (pending and small)
    with analytic():
        if live:
            rows = db.session.execute(_COMPUTE, _params(day, region.path)).all()
        else:
            rows = db.session.execute(_STORED, {"day": day, "path": region.path}).all()
        cells = db.session.execute(text(_CELLS.text.format(
            geometry=", ST_AsBinary(c.geom) AS geom" if with_geometry else "")), {"path": region.path}).all()
    found = {row.cell_id: row for row in rows}
    items, covered_m2, area_m2 = [], 0.0, 0.0
    for cell in cells:
        row = found.get(cell.id)
        figures = {"share": row.share if row else 0.0, "minutes": round(row.minutes, 1) if row else 0.0,
                   "metres": round(row.metres, 1) if row else 0.0, "workers": row.workers if row else 0,
                   "patrols": row.patrols if row else 0}
        covered_m2 += figures["share"] * cell.area_m2
        area_m2 += cell.area_m2
        item = {"cell": {"id": cell.id, "code": cell.code, "name": cell.name, "name_en": cell.name_en,
                         "level": cell.level}, **figures}
        if with_geometry:
            item["geom"] = cell.geom
        items.append(item)
    computed = [row.computed_at for row in rows if getattr(row, "computed_at", None) is not None]
    return {"region": region, "day": day, "live": live, "pending": pending and not live,
            "computed_at": None if live or not computed else max(computed),
            "reach_m": COVERAGE_REACH_M, "share": covered_m2 / area_m2 if area_m2 else None,
            "cells_walked": sum(1 for item in items if item["workers"]), "cells": items}
