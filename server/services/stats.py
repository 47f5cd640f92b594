"""Evaluation (考核, docs/STATS.md): a region's figures over a period, for the region and
each child region, computed in SQL from the timeline; compared with the period before and
the year before; a composite score and a ranking of the children.

Read-only. Scope: a region the actor may see (404 otherwise), figures for managers of it
(``STATS_READ``, 403 otherwise).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import bindparam, select, text

from server.domain.permissions import STATS_READ, Actor
from server.domain.territory import child_level, level_rank
from server.extensions import db, replica_reads
from server.models import Department, Region, User
from server.models._base import utcnow

from .access import require
from .analytic import analytic
from .regions import get_region

# the composite score's default weights (out of 100); a metric without a value drops out
DEFAULT_WEIGHTS = {"closure": 25.0, "on_time": 25.0, "local": 20.0, "no_rework": 10.0, "satisfaction": 20.0}
VILLAGE_LEVELS = ("grid", "community")  # 不出村: resolved at grid or community level
TOWN_LEVELS = ("grid", "community", "street")  # 不出镇: resolved at street level or below
HOUR = 3600.0


@dataclass(frozen=True)
class Period:
    """``[start, end)``: two dates in the city's zone."""

    start: date
    end: date

    def shifted(self, *, years: int = 0) -> Period:
        """The same period ``years`` before; without years, the period just before it (环比):
        as many calendar months before when it runs from a first of a month to another (the
        quarter before a quarter), else as many days."""
        if years:
            return Period(_minus_years(self.start, years), _minus_years(self.end, years))
        if self.start.day == 1 and self.end.day == 1:
            months = (self.end.year - self.start.year) * 12 + self.end.month - self.start.month
            return Period(_minus_months(self.start, months), self.start)
        return Period(self.start - (self.end - self.start), self.start)

    def bounds(self) -> tuple[datetime, datetime]:
        zone = ZoneInfo(current_app.config["TIMEZONE"])
        return (datetime.combine(self.start, time(), zone), datetime.combine(self.end, time(), zone))

    def as_dict(self) -> dict:
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}

    def last_months(self, months: int) -> Period:
        """The ``months`` calendar months ending where this period ends (on a first of a month)."""
        return Period(_minus_months(self.end, months), self.end)


def _minus_months(day: date, months: int) -> date:
    """The first of the month ``months`` before ``day`` (a first of a month)."""
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _minus_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


# One row per period (``n``: 1 the period asked, 2 the one before, 3 the year before) and group
# (each child region, and the whole region: ``whole``), from the milestones of the region's
# cases alive in the period (incident_milestones: the timeline's first accept, last verify…,
# the incident's status and deadline now, the first acknowledgement, the last call-back, kept
# by triggers). :path is the region's path (a server-made path: no LIKE wildcards),
# :child_pos the position in a case's path of its child region's id (0: the region has no
# children), :los and :his the periods' bounds.
_FIGURES = text("""
WITH periods AS (
    SELECT * FROM unnest(CAST(:los AS timestamptz[]), CAST(:his AS timestamptz[])) WITH ORDINALITY AS p(lo, hi, n)
), relevant AS (  -- the region's cases alive in each period: reported before its end, active since its start
    SELECT p.n, p.lo, p.hi, m.incident_id AS id, m.status, m.reported_at, m.due_at, m.resolved_level, m.category_id,
           CASE WHEN :child_pos > 0 THEN CAST(NULLIF(split_part(m.region_path, '/', :child_pos), '') AS integer)
           END AS child,
           m.accepted_at, m.dispatched_at, m.resolved_at, m.closed_at, m.reworks, m.extensions, m.escalations,
           m.overdue_escalations, m.callback_at, m.satisfaction, m.acknowledged_at
    FROM periods p JOIN incident_milestones m ON m.last_at >= p.lo AND m.reported_at < p.hi
    WHERE m.region_path LIKE :path || '%'
), figures AS (
    SELECT n, child, GROUPING(child) = 1 AS whole,
        count(*) FILTER (WHERE reported_at >= lo AND reported_at < hi) AS reported,
        count(*) FILTER (WHERE reported_at >= lo AND reported_at < hi AND accepted_at IS NOT NULL) AS valid_reports,
        count(*) FILTER (WHERE accepted_at >= lo AND accepted_at < hi) AS accepted,
        count(*) FILTER (WHERE accepted_at >= lo AND accepted_at < hi AND status = 'suspended') AS suspended,
        count(*) FILTER (WHERE accepted_at >= lo AND accepted_at < hi AND status = 'closed') AS closed,
        count(*) FILTER (WHERE accepted_at >= lo AND accepted_at < hi AND status = 'closed'
                         AND resolved_at <= due_at AND overdue_escalations = 0) AS closed_on_time,
        count(*) FILTER (WHERE dispatched_at >= lo AND dispatched_at < hi) AS dispatched,
        count(*) FILTER (WHERE dispatched_at >= lo AND dispatched_at < hi AND resolved_at IS NOT NULL) AS disposed,
        count(*) FILTER (WHERE resolved_at >= lo AND resolved_at < hi) AS resolved,
        count(*) FILTER (WHERE resolved_at >= lo AND resolved_at < hi AND reworks > 0) AS reworked,
        count(*) FILTER (WHERE accepted_at >= lo AND accepted_at < hi AND extensions > 0) AS extended,
        count(*) FILTER (WHERE accepted_at >= lo AND accepted_at < hi AND escalations > 0) AS escalated,
        count(*) FILTER (WHERE closed_at >= lo AND closed_at < hi AND status = 'closed') AS closed_in_period,
        count(*) FILTER (WHERE closed_at >= lo AND closed_at < hi AND status = 'closed'
                         AND resolved_level IN :village) AS resolved_in_village,
        count(*) FILTER (WHERE closed_at >= lo AND closed_at < hi AND status = 'closed'
                         AND resolved_level IN :town) AS resolved_in_town,
        avg(extract(epoch FROM accepted_at - reported_at)) FILTER (WHERE accepted_at >= lo AND accepted_at < hi)
            AS accept_mean,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM accepted_at - reported_at))
            FILTER (WHERE accepted_at >= lo AND accepted_at < hi) AS accept_p90,
        avg(extract(epoch FROM dispatched_at - accepted_at)) FILTER (WHERE dispatched_at >= lo AND dispatched_at < hi)
            AS dispatch_mean,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM dispatched_at - accepted_at))
            FILTER (WHERE dispatched_at >= lo AND dispatched_at < hi) AS dispatch_p90,
        avg(extract(epoch FROM resolved_at - accepted_at)) FILTER (WHERE resolved_at >= lo AND resolved_at < hi)
            AS resolve_mean,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - accepted_at))
            FILTER (WHERE resolved_at >= lo AND resolved_at < hi) AS resolve_p90,
        avg(extract(epoch FROM closed_at - reported_at))
            FILTER (WHERE closed_at >= lo AND closed_at < hi AND status = 'closed') AS close_mean,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - reported_at))
            FILTER (WHERE closed_at >= lo AND closed_at < hi AND status = 'closed') AS close_p90,
        avg(extract(epoch FROM acknowledged_at - dispatched_at)) FILTER (WHERE dispatched_at >= lo AND dispatched_at < hi)
            AS ack_mean,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - dispatched_at))
            FILTER (WHERE dispatched_at >= lo AND dispatched_at < hi) AS ack_p90,
        count(*) FILTER (WHERE callback_at >= lo AND callback_at < hi) AS callbacks,
        avg(satisfaction) FILTER (WHERE callback_at >= lo AND callback_at < hi) AS satisfaction_mean,
        count(*) FILTER (WHERE callback_at >= lo AND callback_at < hi AND satisfaction >= 4) AS satisfied
    FROM relevant
    GROUP BY GROUPING SETS ((n, child), (n))
), mediated AS (
    SELECT c.n, c.child, m.agreement_reached
    FROM relevant c JOIN categories cat ON cat.id = c.category_id JOIN mediations m ON m.incident_id = c.id
    WHERE cat.kind = 'dispute' AND c.status = 'closed' AND c.closed_at >= c.lo AND c.closed_at < c.hi
), mediation_figures AS (
    SELECT n, child, GROUPING(child) = 1 AS whole, count(*) AS mediated,
           count(*) FILTER (WHERE agreement_reached) AS agreed
    FROM mediated GROUP BY GROUPING SETS ((n, child), (n))
)
SELECT f.*, md.mediated, md.agreed
FROM figures f
LEFT JOIN mediation_figures md ON md.n = f.n AND md.whole = f.whole AND md.child IS NOT DISTINCT FROM f.child
""").bindparams(bindparam("village", expanding=True), bindparam("town", expanding=True))

# escalations from each level, over the cases first accepted in the period: of those handled
# at a level (accepted there, or moved there), those escalated from it
_ESCALATIONS = text("""
WITH cohort AS (  -- first accepted in the period
    SELECT m.handled_levels, m.escalated_from
    FROM incident_milestones m
    WHERE m.region_path LIKE :path || '%' AND m.last_at >= :lo AND m.reported_at < :hi
      AND m.accepted_at >= :lo AND m.accepted_at < :hi
)
SELECT level, count(*) AS handled, count(*) FILTER (WHERE level = ANY(c.escalated_from)) AS escalated
FROM cohort c CROSS JOIN LATERAL (SELECT DISTINCT l FROM unnest(c.handled_levels || c.escalated_from) AS l) AS u(level)
GROUP BY level
""")


# the tasks given in the period for the region's cases, by department or by grid worker
_TASK_FIGURES = """
SELECT t.{who} AS who, count(*) AS tasks,
       count(*) FILTER (WHERE t.acknowledged_at IS NOT NULL) AS acknowledged,
       count(*) FILTER (WHERE t.acknowledged_at <= t.ack_deadline) AS acknowledged_on_time,
       avg(extract(epoch FROM t.acknowledged_at - t.created_at)) AS ack_mean,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM t.acknowledged_at - t.created_at)) AS ack_p90,
       count(*) FILTER (WHERE t.status = 'done') AS done,
       avg(extract(epoch FROM t.finished_at - t.created_at)) FILTER (WHERE t.status = 'done') AS done_mean,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM t.finished_at - t.created_at))
           FILTER (WHERE t.status = 'done') AS done_p90
FROM tasks t JOIN incidents i ON i.id = t.incident_id
WHERE i.region_path LIKE :path || '%' AND t.created_at >= :lo AND t.created_at < :hi AND t.{who} IS NOT NULL
GROUP BY t.{who}
"""
_DEPARTMENT_TASKS = text(_TASK_FIGURES.format(who="department_id"))
_WORKER_TASKS = text(_TASK_FIGURES.format(who="assignee_id"))

# the grid workers' own reports in the period: valid ones, and those resolved on the spot
_WORKER_REPORTS = text("""
SELECT i.reporter_id AS who, count(*) AS reports,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM incident_events ev
                                      WHERE ev.incident_id = i.id AND ev.action = 'accept')) AS valid_reports,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM incident_events ev WHERE ev.incident_id = i.id
                                      AND ev.action = 'resolve_on_spot' AND ev.actor_id = i.reporter_id))
           AS resolved_on_spot
FROM incidents i
WHERE i.region_path LIKE :path || '%' AND i.reported_at >= :lo AND i.reported_at < :hi AND i.reporter_id IS NOT NULL
GROUP BY i.reporter_id
""")


def _task_figures(row) -> dict:
    if row is None:
        return {"tasks": 0, "acknowledged": 0, "done": 0, "ack_on_time": None,
                "ack_hours": {"mean": None, "p90": None}, "done_hours": {"mean": None, "p90": None}}
    return {"tasks": row.tasks, "acknowledged": row.acknowledged, "done": row.done,
            "ack_on_time": _rate(row.acknowledged_on_time, row.tasks),
            "ack_hours": {"mean": _hours(row.ack_mean), "p90": _hours(row.ack_p90)},
            "done_hours": {"mean": _hours(row.done_mean), "p90": _hours(row.done_p90)}}


@replica_reads()
def department_stats(actor: Actor, region_id: int, period: Period) -> dict:
    """The departments given tasks for the region's cases in ``period``, wherever they sit
    (a city department working in a district counts in the district): tasks, acknowledged
    and on time, done, and the hours they took, busiest first. Errors as ``region_stats``."""
    region = get_region(actor, region_id)
    require(actor, STATS_READ, region)
    lo, hi = period.bounds()
    rows = {row.who: row for row in db.session.execute(_DEPARTMENT_TASKS, {"path": region.path, "lo": lo, "hi": hi})}
    departments = db.session.scalars(select(Department).where(Department.id.in_(rows))).all() if rows else []
    items = [{"department": d, **_task_figures(rows[d.id])} for d in departments]
    items.sort(key=lambda item: (-item["tasks"], item["department"].name))
    return {"region": region, "period": period.as_dict(), "as_of": utcnow(), "departments": items}


@replica_reads()
def worker_stats(actor: Actor, region_id: int, period: Period) -> dict:
    """Every active grid worker whose area is in the region (those who did nothing too):
    their reports in ``period``, the valid ones, those they resolved on the spot, and the
    tasks they were given (acknowledged and on time, done, hours). Errors as ``region_stats``."""
    region = get_region(actor, region_id)
    require(actor, STATS_READ, region)
    lo, hi = period.bounds()
    params = {"path": region.path, "lo": lo, "hi": hi}
    tasks = {row.who: row for row in db.session.execute(_WORKER_TASKS, params)}
    reports = {row.who: row for row in db.session.execute(_WORKER_REPORTS, params)}
    workers = db.session.scalars(
        select(User).join(Region, Region.id == User.region_id)
        .where(User.role == "grid_worker", User.is_active.is_(True), Region.path.startswith(region.path))
        .order_by(User.display_name, User.id)).all()
    items = []
    for worker in workers:
        own = reports.get(worker.id)
        counted = {"reports": own.reports if own else 0, "valid_reports": own.valid_reports if own else 0,
                   "resolved_on_spot": own.resolved_on_spot if own else 0}
        counted["valid_rate"] = _rate(counted["valid_reports"], counted["reports"])
        items.append({"worker": worker, **counted, **_task_figures(tasks.get(worker.id))})
    return {"region": region, "period": period.as_dict(), "as_of": utcnow(), "workers": items}


# reports and first acceptances by category group and week (or month) in the city's zone
_TRENDS = text("""
WITH reported AS (
    SELECT date_trunc(:interval, i.reported_at AT TIME ZONE :zone) AS bucket,
           COALESCE(c.parent_id, c.id) AS category_group, i.id
    FROM incidents i JOIN categories c ON c.id = i.category_id
    WHERE i.region_path LIKE :path || '%' AND i.reported_at >= :lo AND i.reported_at < :hi
      AND i.status NOT IN ('rejected', 'merged')
)
SELECT r.bucket, r.category_group, g.code, g.name, g.name_en, count(*) AS reports
FROM reported r JOIN categories g ON g.id = r.category_group
GROUP BY r.bucket, r.category_group, g.code, g.name, g.name_en
ORDER BY g.code, r.bucket
""")


@replica_reads()
def trends(actor: Actor, region_id: int, period: Period, interval: str) -> dict:
    """The region's reports (rejected and merged left out) by category group and ``interval``
    (week or month, starting in the city's zone) over ``period``, every bucket listed (zeros
    too), so that a chart draws the series as they are. Errors as ``region_stats``."""
    region = get_region(actor, region_id)
    require(actor, STATS_READ, region)
    lo, hi = period.bounds()
    zone = current_app.config["TIMEZONE"]
    buckets = _buckets(period, interval)
    series: dict[str, dict] = {}
    for row in db.session.execute(_TRENDS, {"interval": interval, "zone": zone, "path": region.path,
                                            "lo": lo, "hi": hi}):
        entry = series.setdefault(row.code, {"category_group": {"code": row.code, "name": row.name,
                                                                "name_en": row.name_en},
                                             "counts": dict.fromkeys(buckets, 0)})
        entry["counts"][row.bucket.date()] = row.reports
    return {"region": region, "period": period.as_dict(), "interval": interval,
            "buckets": [b.isoformat() for b in buckets],
            "series": [{"category_group": e["category_group"], "reports": list(e["counts"].values()),
                        "total": sum(e["counts"].values())}
                       for e in sorted(series.values(), key=lambda e: -sum(e["counts"].values()))]}


def _buckets(period: Period, interval: str) -> list[date]:
    """The first day of each week (Monday) or month meeting the period."""
    if interval == "month":
        day, found = period.start.replace(day=1), []
        while day < period.end:
            found.append(day)
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        return found
    day = period.start - timedelta(days=period.start.weekday())
    found = []
    while day < period.end:
        found.append(day)
        day += timedelta(days=7)
    return found


def _rate(numerator, denominator):
    return None if not denominator else numerator / denominator


def _hours(seconds):
    return None if seconds is None else round(float(seconds) / HOUR, 2)


COUNTS = ("reported", "valid_reports", "accepted", "suspended", "closed", "closed_on_time", "dispatched", "disposed",
          "resolved", "reworked", "extended", "escalated", "closed_in_period", "resolved_in_village",
          "resolved_in_town")  # the figures statement's counts, by its column names


def _figures(m) -> dict:
    """The counts, rates, times and satisfaction of one group (a row's mapping of the
    figures statement), as the answer gives them."""
    base = m["accepted"] - m["suspended"]
    return {
        "counts": {name: m[name] for name in COUNTS} | {"callbacks": m["callbacks"] or 0,
                                                         "mediated": m["mediated"] or 0},
        "rates": {
            "closure": _rate(m["closed"], base),
            "on_time": _rate(m["closed_on_time"], base),
            "disposal": _rate(m["disposed"], m["dispatched"]),
            "rework": _rate(m["reworked"], m["resolved"]),
            "extension": _rate(m["extended"], m["accepted"]),
            "escalation": _rate(m["escalated"], m["accepted"]),
            "local": _rate(m["resolved_in_village"], m["closed_in_period"]),
            "within_town": _rate(m["resolved_in_town"], m["closed_in_period"]),
            "valid_reports": _rate(m["valid_reports"], m["reported"]),
            "satisfied": _rate(m["satisfied"] or 0, m["callbacks"]),
            "mediation_success": _rate(m["agreed"] or 0, m["mediated"]),
        },
        "hours": {step: {"mean": _hours(m[f"{step}_mean"]), "p90": _hours(m[f"{step}_p90"])}
                  for step in ("accept", "dispatch", "ack", "resolve", "close")},
        "satisfaction_mean": None if m["satisfaction_mean"] is None else round(float(m["satisfaction_mean"]), 3),
    }


def score(figures: dict, weights: dict[str, float]) -> float | None:
    """The composite score out of 100: the weighted mean of the rates that have a value
    (1 − rework; satisfaction (mean − 1) ÷ 4), their weights rescaled; None with none."""
    rates = figures["rates"]
    satisfaction = figures["satisfaction_mean"]
    values = {"closure": rates["closure"], "on_time": rates["on_time"], "local": rates["local"],
              "no_rework": None if rates["rework"] is None else 1 - rates["rework"],
              "satisfaction": None if satisfaction is None else (satisfaction - 1) / 4}
    used = {name: weight for name, weight in weights.items() if weight > 0 and values.get(name) is not None}
    total = sum(used.values())
    if not total:
        return None
    return round(100 * sum(values[name] * weight for name, weight in used.items()) / total, 2)


def _run(region: Region, periods: list[Period]) -> tuple[list[tuple[dict, dict[int, dict]]], dict]:
    """For each of ``periods`` (the whole region's figures, each child's by id), in one
    statement; and the escalations by level over the first."""
    bounds = [period.bounds() for period in periods]
    lo, hi = bounds[0]
    below = child_level(region.level)
    params = {"path": region.path, "los": [b[0] for b in bounds], "his": [b[1] for b in bounds],
              "child_pos": level_rank(below) + 2 if below else 0, "village": VILLAGE_LEVELS, "town": TOWN_LEVELS}
    with analytic():
        rows = db.session.execute(_FIGURES, params).all()
        escalations = db.session.execute(_ESCALATIONS, {"path": region.path, "lo": lo, "hi": hi}).all()
    found: list[tuple[dict | None, dict[int, dict]]] = [(None, {}) for _ in periods]
    for row in rows:
        whole, children = found[row.n - 1]
        if row.whole:
            found[row.n - 1] = (_figures(row._mapping), children)
        elif row.child is not None:
            children[row.child] = _figures(row._mapping)
    levels = {row.level: {"handled": row.handled, "escalated": row.escalated,
                          "rate": _rate(row.escalated, row.handled)}
              for row in escalations}
    return [(whole or _empty(), children) for whole, children in found], levels


def _empty() -> dict:
    """The figures of a group without a case: every count 0, every rate and time null."""
    return _figures(defaultdict(lambda: None, dict.fromkeys(COUNTS, 0)))


def _changes(now: dict, before: dict) -> dict:
    """Each rate's change in percentage points (百分点); None where either side has none."""
    return {name: None if value is None or before["rates"][name] is None
            else round(100 * (value - before["rates"][name]), 2)
            for name, value in now["rates"].items()}


@replica_reads()
def region_stats(actor: Actor, region_id: int, period: Period, weights: dict[str, float] | None = None) -> dict:
    """The region's figures over ``period``, each child's with its score and rank, and the
    comparisons with the period before and the year before. Errors: region.not_found,
    auth.forbidden."""
    region = get_region(actor, region_id)
    require(actor, STATS_READ, region)
    weights = weights or DEFAULT_WEIGHTS
    found, levels = _run(region, [period, period.shifted(), period.shifted(years=1)])
    (whole, by_child), (previous, previous_by_child), (year_before, year_before_by_child) = found
    for figures in (whole, previous, year_before):
        figures["score"] = score(figures, weights)
    children = []
    below = child_level(region.level)
    if below:
        for child in db.session.scalars(select(Region).where(Region.parent_id == region.id,
                                                             Region.retired_at.is_(None))):
            figures = by_child.get(child.id) or _empty()
            ranked = figures["counts"]["accepted"] > 0
            children.append({"region": child, "figures": figures,
                             "score": score(figures, weights) if ranked else None, "rank": None,
                             "change_pp": {
                                 "previous": _changes(figures, previous_by_child.get(child.id) or _empty()),
                                 "year_before": _changes(figures, year_before_by_child.get(child.id) or _empty())}})
    ranked = sorted((c for c in children if c["score"] is not None), key=lambda c: (-c["score"], c["region"].name))
    for rank, child in enumerate(ranked, start=1):
        child["rank"] = rank
    children.sort(key=lambda c: (c["rank"] is None, c["rank"] or 0, c["region"].name))
    return {
        "region": region, "period": period.as_dict(), "as_of": utcnow(), "weights": weights,
        "figures": whole, "escalation_by_level": levels,
        "previous": {"period": period.shifted().as_dict(), "figures": previous,
                     "change_pp": _changes(whole, previous)},
        "year_before": {"period": period.shifted(years=1).as_dict(), "figures": year_before,
                        "change_pp": _changes(whole, year_before)},
        "children": children,
    }
