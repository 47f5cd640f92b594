"""Evaluation (考核, docs/STATS.md): a quarter's figures over 1,000,000 incidents with their
timelines, broken down by region, against what PostgreSQL itself needs to read that quarter's
timeline, in the same run.

Target (issue: evaluation): a quarter's metrics for 1,000,000 incidents broken down by street
in < 1 s.

- *Fixture*: 1,000,000 incidents reported over 15 months across the NYC cells, each with a
  timeline as the closed loop writes it (report, accept, dispatch with its task, acknowledge,
  resolve, verify; rejections and merges, resolutions on the spot, rework, approved
  extensions, escalations by hand and by the sweep (no actor), suspensions, call-backs with a
  satisfaction score, mediation records of disputes), a task per dispatch (to the cell's
  community's grid worker or to a department), built by set-based SQL in chunks. The
  incidents are the bench's own: a fixture that does not fit (the escalation and tiles
  benchmarks' open incidents, or a stats fixture of another quarter) is replaced after
  ``TRUNCATE incidents … CASCADE``, and those benchmarks replace this one in turn.
- *Ours*: ``server.services.stats.region_stats`` (the quarter, the quarter before and the
  same quarter a year before, the escalations by level, the ranking), ``department_stats``
  and ``worker_stats``, in an app context, as a city manager; the city broken down by its
  districts (boroughs) and each borough by its streets (community districts). The figures
  statement alone, for the quarter only, splits the service's time.
- *The peer*: one statement counting the quarter's timeline events per child region with the
  same join to the incidents and the same subtree test: the least PostgreSQL reads to group
  the quarter's timeline by street.
- For each region, the sides in turn (the order alternating from repetition to repetition),
  a warm-up repetition, then ``--stats-repeat`` measured ones: p50 and p95 of each side, and
  ours/peer.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import date, datetime, time as clock, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
from flask import Flask

from server.cli.progress import progress_bar

from . import OUT_DIR, say
from .dataset import NO_PASSWORD
from .reportbench import reset_incidents

INCIDENTS = 1_000_000
MONTHS = 15  # the fixture's span: the quarter measured is its last
CHUNK = 50_000  # incidents per chunk while building (progress between chunks)
REPEAT = 3  # each call takes seconds on this fixture: a run of the section stays under a quarter of an hour
MARK = "bench stats fixture"  # the description of every fixture incident
VERSION = 2  # of the fixture's SQL: a fixture built by another version is rebuilt
META_TABLE = "bench_stats_fixture"
CELLS_TABLE = "bench_stats_cells"
CATEGORIES_TABLE = "bench_stats_categories"
DEPARTMENTS_TABLE = "bench_stats_departments"
PLAN_TABLE = "bench_stats_plan"
WORKER_PREFIX = "bench-stats-worker-"  # one grid worker per community
SUPERVISOR_PREFIX = "bench-stats-street-"  # one street supervisor per street: the supervisors' actions
MANAGER = "bench-stats-city"  # the city manager the figures are asked by
DISTRICT_DEPARTMENTS = ("urban_management", "police", "housing", "environment")
CITY_DEPARTMENTS = ("transport", "water", "utilities")
TARGET_S = 1.0
SETTLED_DAYS = 45  # the quarter measured ended at least this long ago: its cases' timelines are over


# ------------------------------------------------------------------ the quarter

def quarter_measured(zone: str, today: date | None = None) -> tuple[date, date]:
    """The last calendar quarter that ended at least SETTLED_DAYS before ``today``, in ``zone``."""
    today = today or datetime.now(ZoneInfo(zone)).date()
    settled = today - timedelta(days=SETTLED_DAYS)
    end = date(settled.year, 3 * ((settled.month - 1) // 3) + 1, 1)  # the start of the quarter holding it
    return date(end.year - (end.month == 1), (end.month - 4) % 12 + 1, 1), end


def fixture_span(quarter: tuple[date, date]) -> tuple[date, date]:
    """MONTHS months ending with the quarter: its year before and the quarter before it included."""
    end = quarter[1]
    index = end.year * 12 + end.month - 1 - MONTHS
    return date(index // 12, index % 12 + 1, 1), end


def _instant(day: date, zone: str) -> datetime:
    return datetime.combine(day, clock(), ZoneInfo(zone))


# ------------------------------------------------------------------ the people

def _ensure_people(conn: psycopg.Connection, city_id: int) -> dict:
    """One active grid worker per community, one street supervisor per street, the city manager,
    and departments (four kinds in each district, three of the city); reused when there."""
    conn.execute(f"""
        INSERT INTO users (username, display_name, role, region_id, password_hash, is_active, version,
                           created_at, updated_at)
        SELECT p.prefix || r.code, p.label || r.code, p.role, r.id, %(nopw)s, true, 1, now(), now()
        FROM regions r JOIN regions city ON city.id = %(city)s
        JOIN (VALUES ('community', '{WORKER_PREFIX}', 'Bench stats worker ', 'grid_worker'),
                     ('street', '{SUPERVISOR_PREFIX}', 'Bench stats supervisor ', 'street'))
             p(level, prefix, label, role) ON p.level = r.level
        WHERE r.retired_at IS NULL AND r.path LIKE city.path || '%%'
          AND NOT EXISTS (SELECT 1 FROM users u WHERE lower(u.username) = lower(p.prefix || r.code))
    """, {"city": city_id, "nopw": NO_PASSWORD})
    conn.execute("""
        INSERT INTO users (username, display_name, role, region_id, password_hash, is_active, version,
                           created_at, updated_at)
        SELECT %(name)s::text, 'Bench stats city manager', 'city', %(city)s, %(nopw)s, true, 1, now(), now()
        WHERE NOT EXISTS (SELECT 1 FROM users WHERE lower(username) = %(name)s::text)
    """, {"name": MANAGER, "city": city_id, "nopw": NO_PASSWORD})
    conn.execute(f"""
        UPDATE users SET is_active = true
        WHERE (username LIKE '{WORKER_PREFIX}%%' OR username LIKE '{SUPERVISOR_PREFIX}%%' OR username = %(name)s)
          AND NOT is_active
    """, {"name": MANAGER})
    conn.execute("""
        INSERT INTO departments (code, name, name_en, region_id, kind, version, created_at)
        SELECT 'bench-stats-' || r.code || '-' || k.kind, 'Bench ' || k.kind || ' ' || r.code,
               'Bench ' || k.kind || ' ' || r.code, r.id, k.kind, 1, now()
        FROM regions r JOIN regions city ON city.id = %(city)s
        JOIN (SELECT 'district' AS level, unnest(%(district_kinds)s::text[]) AS kind
              UNION ALL SELECT 'city', unnest(%(city_kinds)s::text[])) k ON k.level = r.level
        WHERE r.retired_at IS NULL AND r.path LIKE city.path || '%%'
          AND NOT EXISTS (SELECT 1 FROM departments d WHERE d.code = 'bench-stats-' || r.code || '-' || k.kind)
    """, {"city": city_id, "district_kinds": list(DISTRICT_DEPARTMENTS), "city_kinds": list(CITY_DEPARTMENTS)})
    workers, supervisors, manager = conn.execute(f"""
        SELECT count(*) FILTER (WHERE username LIKE '{WORKER_PREFIX}%%'),
               count(*) FILTER (WHERE username LIKE '{SUPERVISOR_PREFIX}%%'),
               max(id) FILTER (WHERE username = %(name)s)
        FROM users
    """, {"name": MANAGER}).fetchone()
    departments = conn.execute("SELECT count(*) FROM departments WHERE code LIKE 'bench-stats-%%'").fetchone()[0]
    conn.commit()
    return {"workers": workers, "supervisors": supervisors, "manager_id": manager, "departments": departments}


# ------------------------------------------------------------------ the fixture

@dataclass
class StatsFixture:
    """The bench's incidents with their timelines, and what they span."""

    span: tuple[date, date]  # [from, to): dates in the city's zone
    incidents: int
    events: int
    tasks: int
    mediations: int
    people: dict
    cached: bool  # True when this run reused the incidents of an earlier run
    build_seconds: float | None  # the wall time of the build that made them
    table_mb: dict  # the tables' size on disk (with their indexes), MB


def _fits(conn: psycopg.Connection, span: tuple[date, date], incidents: int) -> tuple[int, float] | None:
    """(events, build seconds) when the incidents table holds this very fixture and nothing else."""
    conn.execute(f"""
        CREATE TABLE IF NOT EXISTS {META_TABLE} (
            version int NOT NULL, span_from date NOT NULL, span_to date NOT NULL, incidents int NOT NULL,
            events bigint NOT NULL, built_at timestamptz NOT NULL, build_seconds float8 NOT NULL)
    """)
    conn.commit()
    meta = conn.execute(f"SELECT span_from, span_to, incidents, events, build_seconds FROM {META_TABLE} "
                        "WHERE version = %s", (VERSION,)).fetchall()
    if len(meta) != 1 or (meta[0][0], meta[0][1], meta[0][2]) != (span[0], span[1], incidents):
        return None
    total, marked, events = conn.execute("""
        SELECT (SELECT count(*) FROM incidents), (SELECT count(*) FROM incidents WHERE description = %(mark)s),
               (SELECT count(*) FROM incident_events)
    """, {"mark": MARK}).fetchone()
    if total == marked == incidents and events == meta[0][3]:
        return events, meta[0][4]
    return None


def _u(k: int) -> str:
    """The k-th uniform draw in [0, 1) of incident ``s.i``: a hash, the same on every build."""
    return f"(abs(hashint8(s.i * 64 + {k})) %% 1000000) / 1000000.0"


# One chunk of the plan: for incidents lo…hi, where, what, and the instant of each step of
# its timeline (NULL: the step did not happen). Minutes are natural time.
_PLAN = f"""
CREATE TEMP TABLE {PLAN_TABLE} AS
WITH base AS (
    SELECT s.i, c.id AS cell_id, c.path, c.geom, c.worker_id, c.supervisor_id, c.district_id,
           k.id AS category_id, k.priority, k.kind, k.start_level,
           %(start)s + %(span)s * ((s.i - 1 + {_u(1)}) / %(n)s) AS rep,
           {_u(2)} AS u_source, {_u(3)} AS u_fate, {_u(4)} AS u_open, {_u(5)} AS u_dept, {_u(6)} AS u_ext,
           {_u(7)} AS u_esc, {_u(8)} AS u_rework, {_u(9)} AS u_callback, {_u(10)} AS u_acc, {_u(11)} AS u_dsp,
           {_u(12)} AS u_ack, {_u(13)} AS u_pause, {_u(14)} AS u_work, {_u(15)} AS u_rwk, {_u(16)} AS u_res2,
           {_u(17)} AS u_ver, {_u(18)} AS u_cb, {_u(19)} AS u_score, {_u(20)} AS u_mediated, {_u(21)} AS u_agreed,
           1 + abs(hashint8(s.i * 64 + 30)) %% 7 AS dept_n
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) s(i)
    JOIN {CELLS_TABLE} c ON c.n = 1 + abs(hashint8(s.i * 64 + 31)) %% %(cells)s
    JOIN {CATEGORIES_TABLE} k ON k.n = 1 + abs(hashint8(s.i * 64 + 32)) %% %(categories)s
), fate AS (
    SELECT b.*,
        CASE WHEN u_source < 0.55 THEN 'phone' WHEN u_source < 0.80 THEN 'hotline' WHEN u_source < 0.90 THEN 'patrol'
             WHEN u_source < 0.95 THEN 'web' ELSE 'open311' END AS source,
        CASE WHEN u_fate < 0.04 THEN 'rejected' WHEN u_fate < 0.05 THEN 'merged'
             WHEN u_fate < 0.17 AND u_source < 0.55 THEN 'on_spot'  -- 即报即处: a worker's own report
             WHEN u_open < 0.01 THEN 'dispatched' WHEN u_open < 0.03 THEN 'in_progress'  -- still open
             WHEN u_open < 0.05 THEN 'suspended' ELSE 'closed' END AS fate,
        u_open >= 0.05 AND u_open < 0.07 AS resumed, u_dept < 0.30 AS to_department, u_ext < 0.05 AS extended,
        u_esc < 0.04 AS by_hand, u_rework < 0.07 AS reworked, u_callback < 0.35 AS called_back,
        CASE start_level WHEN 'grid' THEN 'community' WHEN 'community' THEN 'street' ELSE 'district' END AS up,
        rep + interval '1 minute' * (5 + 480 * u_acc ^ 2) AS acc
    FROM base b
), times AS (
    SELECT f.*,
        acc + interval '1 minute' * (5 + 240 * u_dsp ^ 2) AS dsp,
        interval '1 minute' * (2 + 360 * u_ack ^ 3) AS to_ack,
        CASE WHEN resumed THEN interval '1 day' * (0.5 + 2 * u_pause) ELSE interval '0' END AS pause,
        interval '1 minute' * (60 + 10000 * u_work ^ 3) AS work
    FROM fate f
), steps AS (
    SELECT t.*, dsp + to_ack AS ack, dsp + to_ack + work + pause AS res1,
           acc + interval '5 days' + CASE WHEN extended THEN interval '3 days' ELSE interval '0' END + pause AS due0
    FROM times t
), swept AS (
    SELECT st.*, NOT by_hand AND res1 > due0 AS by_sweep FROM steps st
), plan AS (
    SELECT w.i, w.cell_id, w.path, w.geom, w.worker_id, w.supervisor_id, w.district_id, w.category_id, w.priority,
        w.kind, w.source, w.fate, w.to_department, w.dept_n, w.rep, w.u_score, w.u_mediated, w.u_agreed,
        CASE WHEN w.fate = 'on_spot' THEN 'grid' ELSE w.start_level END AS l0, w.up AS l1,
        CASE WHEN w.source IN ('phone', 'patrol') THEN w.worker_id END AS reporter_id,
        CASE WHEN w.fate IN ('rejected', 'merged') THEN w.rep + interval '1 minute' * (10 + 600 * w.u_acc) END AS t_end,
        CASE WHEN w.fate NOT IN ('rejected', 'merged', 'on_spot') THEN w.acc END AS t_acc,
        CASE WHEN w.fate NOT IN ('rejected', 'merged', 'on_spot') THEN w.dsp END AS t_dsp,
        CASE WHEN w.fate IN ('in_progress', 'suspended', 'closed') THEN w.ack END AS t_ack,
        CASE WHEN w.fate = 'suspended' THEN w.ack + interval '1 day'
             WHEN w.fate = 'closed' AND w.resumed THEN w.ack + w.work * 0.2 END AS t_suspend,
        CASE WHEN w.fate = 'closed' AND w.resumed THEN w.ack + w.work * 0.2 + w.pause END AS t_resume,
        CASE WHEN w.fate = 'closed' AND w.by_hand THEN w.ack + w.work * 0.3 + w.pause
             WHEN w.fate = 'closed' AND w.by_sweep THEN w.due0 END AS t_escalate,
        w.fate = 'closed' AND w.by_sweep AS by_sweep,
        CASE WHEN w.fate = 'closed' AND w.extended THEN w.ack + w.work * 0.5 + w.pause END AS t_extension,
        CASE WHEN w.fate = 'closed' THEN w.res1 WHEN w.fate = 'on_spot' THEN w.rep + interval '1 minute' END AS t_res1,
        CASE WHEN w.fate = 'closed' AND w.reworked THEN w.res1 + interval '1 minute' * (60 + 720 * w.u_rwk) END
            AS t_rework,
        w.due0, w.u_res2, w.u_ver, w.u_cb, w.called_back, w.by_hand
    FROM swept w
), closing AS (
    SELECT p.*, p.t_rework + interval '1 minute' * (120 + 4320 * p.u_res2 ^ 2) AS t_res2 FROM plan p
)
SELECT c.*, COALESCE(c.t_res2, c.t_res1) AS t_last_res,
    CASE WHEN c.t_res1 IS NOT NULL THEN COALESCE(c.t_res2, c.t_res1) + interval '1 minute' * (30 + 2880 * c.u_ver ^ 2)
    END AS t_verify,
    CASE WHEN c.by_sweep THEN c.due0 + interval '3 days'  -- a new stage at the level above
         WHEN c.t_escalate IS NOT NULL THEN c.t_escalate + interval '5 days' ELSE c.due0 END AS due,
    CASE WHEN c.u_score < 0.05 THEN 1 WHEN c.u_score < 0.10 THEN 2 WHEN c.u_score < 0.22 THEN 3
         WHEN c.u_score < 0.55 THEN 4 ELSE 5 END AS score,
    CASE WHEN c.t_escalate IS NOT NULL THEN c.l1 ELSE c.l0 END AS level_now,
    CASE c.fate WHEN 'on_spot' THEN 'closed' ELSE c.fate END AS status
FROM closing c
"""

_INCIDENTS = f"""
INSERT INTO incidents (id, client_uuid, category_id, status, level, resolved_level, region_id, region_path, geom,
                       description, priority, source, reporter_id, occurred_at, reported_at, accepted_at,
                       dispatched_at, resolved_at, closed_at, due_at, resolved_on_spot, rework_count,
                       extension_count, satisfaction, suspended_from, suspended_at, stage_no, stage_started_at,
                       top_level, escalation_count, updated_at)
SELECT p.i, md5('bench-stats:' || p.i)::uuid, p.category_id, p.status, p.level_now,
       CASE WHEN p.status = 'closed' THEN p.level_now END, p.cell_id, p.path, p.geom, %(mark)s, p.priority,
       p.source, p.reporter_id, p.rep - interval '20 minutes', p.rep, p.t_acc, p.t_dsp, p.t_last_res, p.t_verify,
       CASE WHEN p.t_acc IS NOT NULL THEN p.due END, p.fate = 'on_spot', (p.t_rework IS NOT NULL)::int,
       (p.t_extension IS NOT NULL)::int, CASE WHEN p.called_back AND p.t_verify IS NOT NULL THEN p.score END,
       CASE WHEN p.status = 'suspended' THEN 'acknowledged' END,
       CASE WHEN p.status = 'suspended' THEN p.t_suspend END,
       1 + (p.t_escalate IS NOT NULL)::int, COALESCE(p.t_escalate, p.t_acc), 'district',
       (p.t_escalate IS NOT NULL)::int,
       GREATEST(p.rep, p.t_end, p.t_acc, p.t_dsp, p.t_ack, p.t_suspend, p.t_resume, p.t_escalate, p.t_last_res,
                p.t_verify)
FROM {PLAN_TABLE} p
"""

# Each step of the timeline as an event: (action, instant, actor, from status, to status, data);
# its level is the one before the escalation, or after it from the escalation on.
_EVENTS = f"""
INSERT INTO incident_events (incident_id, at, actor_id, action, from_status, to_status, from_level, to_level, data)
SELECT p.i, e.at, e.actor, e.action, e.from_status, e.to_status,
       CASE WHEN e.action = 'report' THEN NULL WHEN p.t_escalate IS NOT NULL AND e.at > p.t_escalate THEN p.l1
            ELSE p.l0 END,
       CASE WHEN p.t_escalate IS NOT NULL AND e.at >= p.t_escalate THEN p.l1 ELSE p.l0 END, e.data
FROM {PLAN_TABLE} p
CROSS JOIN LATERAL (VALUES
    ('report', p.rep, p.reporter_id, NULL, 'reported', '{{}}'::jsonb),
    (CASE p.fate WHEN 'merged' THEN 'merge' ELSE 'reject' END, p.t_end, p.supervisor_id, 'reported', p.fate, '{{}}'),
    ('accept', p.t_acc, p.supervisor_id, 'reported', 'accepted', '{{}}'),
    ('dispatch', p.t_dsp, p.supervisor_id, 'accepted', 'dispatched', '{{}}'),
    ('acknowledge', p.t_ack, p.worker_id, 'dispatched', 'acknowledged', '{{}}'),
    ('suspend', p.t_suspend, p.supervisor_id, 'acknowledged', 'suspended', '{{}}'),
    ('resume', p.t_resume, p.supervisor_id, 'suspended', 'acknowledged', '{{}}'),
    ('escalate', p.t_escalate, CASE WHEN p.by_sweep THEN NULL ELSE p.supervisor_id END, 'acknowledged', 'accepted',
     CASE WHEN p.by_sweep THEN '{{"overdue": true}}'::jsonb ELSE '{{}}' END),
    ('request_extension', p.t_extension, p.worker_id, 'acknowledged', 'acknowledged', '{{}}'),
    ('approve_extension', p.t_extension + interval '2 hours', p.supervisor_id, 'acknowledged', 'acknowledged', '{{}}'),
    (CASE WHEN p.fate = 'on_spot' THEN 'resolve_on_spot' ELSE 'resolve' END, p.t_res1,
     CASE WHEN p.fate = 'on_spot' THEN p.reporter_id ELSE p.worker_id END,
     CASE WHEN p.fate = 'on_spot' THEN 'reported' ELSE 'acknowledged' END, 'resolved', '{{}}'),
    ('rework', p.t_rework, p.supervisor_id, 'resolved', 'rework', '{{}}'),
    ('resolve', p.t_res2, p.worker_id, 'rework', 'resolved', '{{}}'),
    ('verify', p.t_verify, p.supervisor_id, 'resolved', 'closed', '{{}}'),
    ('callback', CASE WHEN p.called_back THEN p.t_verify + interval '1 day' * (1 + 4 * p.u_cb) END, p.supervisor_id,
     'closed', 'closed', jsonb_build_object('satisfaction', p.score))
) e(action, at, actor, from_status, to_status, data)
WHERE e.at IS NOT NULL
ORDER BY e.at  -- appended in time order, as the service appends them: a case's events lie apart
"""

_TASKS = f"""
INSERT INTO tasks (incident_id, assignee_id, department_id, status, level, created_by, created_at, ack_deadline,
                   acknowledged_at, acknowledged_by, finished_at, ack_steps, version)
SELECT p.i, CASE WHEN NOT p.to_department THEN p.worker_id END, CASE WHEN p.to_department THEN d.id END,
       CASE WHEN p.status = 'closed' THEN 'done' WHEN p.t_ack IS NULL THEN 'open' ELSE 'acknowledged' END, p.l0,
       p.supervisor_id, p.t_dsp, p.t_dsp + interval '2 hours', p.t_ack,
       CASE WHEN p.t_ack IS NOT NULL AND NOT p.to_department THEN p.worker_id END,
       CASE WHEN p.status = 'closed' THEN p.t_last_res END, 0, 1
FROM {PLAN_TABLE} p JOIN {DEPARTMENTS_TABLE} d ON d.district_id = p.district_id AND d.n = p.dept_n
WHERE p.t_dsp IS NOT NULL
"""

_MEDIATIONS = f"""
INSERT INTO mediations (incident_id, mode, parties_count, agreement_reached, updated_at)
SELECT p.i, 'people', 2, p.u_agreed < 0.72, p.t_verify
FROM {PLAN_TABLE} p WHERE p.kind = 'dispute' AND p.status = 'closed' AND p.u_mediated < 0.7
"""


def _lookups(conn: psycopg.Connection, city_id: int) -> tuple[int, int]:
    """Temporary tables of the cells (in a stable pseudo-random order, with the grid worker of
    their community, the supervisor of their street and their district), the leaf categories
    and each district's departments; (cells, categories)."""
    for table in (CELLS_TABLE, CATEGORIES_TABLE, DEPARTMENTS_TABLE):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"""
        CREATE TEMP TABLE {CELLS_TABLE} AS
        SELECT row_number() OVER (ORDER BY md5(g.code)) AS n, g.id, g.path, ST_PointOnSurface(g.geom) AS geom,
               w.id AS worker_id, s.id AS supervisor_id, CAST(split_part(g.path, '/', 3) AS integer) AS district_id
        FROM regions g JOIN regions city ON city.id = %(city)s
        JOIN regions cm ON cm.id = g.parent_id
        JOIN users w ON lower(w.username) = lower('{WORKER_PREFIX}' || cm.code)
        JOIN regions st ON st.id = cm.parent_id
        JOIN users s ON lower(s.username) = lower('{SUPERVISOR_PREFIX}' || st.code)
        WHERE g.level = 'grid' AND g.retired_at IS NULL AND g.path LIKE city.path || '%%'
    """, {"city": city_id})
    conn.execute(f"CREATE UNIQUE INDEX ON {CELLS_TABLE} (n)")
    conn.execute(f"""
        CREATE TEMP TABLE {CATEGORIES_TABLE} AS
        SELECT row_number() OVER (ORDER BY code) AS n, id, default_priority AS priority, kind, start_level
        FROM categories WHERE parent_id IS NOT NULL AND retired_at IS NULL AND start_level IN ('grid', 'community',
                                                                                                'street')
    """)
    conn.execute(f"""
        CREATE TEMP TABLE {DEPARTMENTS_TABLE} AS
        SELECT dist.id AS district_id, row_number() OVER (PARTITION BY dist.id ORDER BY d.code) AS n, d.id
        FROM regions dist JOIN regions city ON city.id = %(city)s AND dist.parent_id = city.id
        JOIN departments d ON d.code LIKE 'bench-stats-%%' AND d.region_id IN (dist.id, city.id)
        WHERE dist.level = 'district'
    """, {"city": city_id})
    cells = conn.execute(f"SELECT count(*) FROM {CELLS_TABLE}").fetchone()[0]
    categories = conn.execute(f"SELECT count(*) FROM {CATEGORIES_TABLE}").fetchone()[0]
    per_district = conn.execute(f"SELECT DISTINCT count(*) FROM {DEPARTMENTS_TABLE} GROUP BY district_id").fetchall()
    if not cells or not categories or per_district != [(7,)]:
        raise RuntimeError(f"stats fixture: {cells} cells with their people, {categories} categories, "
                           f"departments per district {per_district} (7 expected)")
    return cells, categories


def _build(conn: psycopg.Connection, dsn: str, city_id: int, span: tuple[date, date], zone: str,
           incidents: int) -> tuple[int, float]:
    """Empty the incidents and insert the fixture chunk by chunk; returns (events, seconds)."""
    started = time.perf_counter()
    conn.commit()
    reset_incidents(dsn)
    cells, categories = _lookups(conn, city_id)
    start, end = _instant(span[0], zone), _instant(span[1], zone)
    # the last cases' timelines run on past the span's end (a month at the most): nothing is in the future
    params = {"start": start, "span": (end - start), "n": incidents, "cells": cells, "categories": categories,
              "mark": MARK}
    events = 0
    with progress_bar("incidents") as progress:
        for lo in range(1, incidents + 1, CHUNK):
            hi = min(incidents, lo + CHUNK - 1)
            conn.execute(f"DROP TABLE IF EXISTS {PLAN_TABLE}")
            conn.execute(_PLAN, {**params, "lo": lo, "hi": hi})
            conn.execute(_INCIDENTS, params)
            events += conn.execute(_EVENTS).rowcount
            conn.execute(_TASKS)
            conn.execute(_MEDIATIONS)
            conn.commit()
            progress(hi, incidents, f"{events:,} events, {cells:,} cells, {categories} categories")
            if hi % (CHUNK * 4) == 0 or hi == incidents:  # a line in the log too (the bar shows on a terminal only)
                say(f"  {hi:,} of {incidents:,} incidents, {events:,} events, "
                    f"{time.perf_counter() - started:.0f} s")
    for table in (PLAN_TABLE, CELLS_TABLE, CATEGORIES_TABLE, DEPARTMENTS_TABLE):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute("SELECT setval('incidents_id_seq', %s)", (incidents,))
    seconds = time.perf_counter() - started
    conn.execute(f"TRUNCATE {META_TABLE}")
    conn.execute(f"INSERT INTO {META_TABLE} VALUES (%s, %s, %s, %s, %s, now(), %s)",
                 (VERSION, span[0], span[1], incidents, events, seconds))
    conn.commit()
    return events, seconds


def _sizes(conn: psycopg.Connection) -> dict:
    return {t: round(conn.execute("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0] / 1e6, 1)
            for t in ("incidents", "incident_events", "tasks", "mediations")}


def ensure_fixture(dsn: str, city_id: int, span: tuple[date, date], zone: str,
                   incidents: int = INCIDENTS) -> StatsFixture:
    """The people, and the incidents with their timelines: reused when they fit, else rebuilt
    (after emptying the incidents), then VACUUM ANALYZE and CHECKPOINT."""
    with psycopg.connect(dsn) as conn:
        people = _ensure_people(conn, city_id)
        fits = _fits(conn, span, incidents)
        if fits:
            events, seconds = fits
            say(f"Reusing the {incidents:,} bench incidents with {events:,} timeline events of {span[0]} … {span[1]}")
        else:
            say(f"Building {incidents:,} incidents with their timelines over {span[0]} … {span[1]} across the NYC "
                "cells (the incidents table is emptied first)")
            events, seconds = _build(conn, dsn, city_id, span, zone, incidents)
            say(f"  built in {seconds:.0f} s ({incidents / seconds:,.0f} incidents/s, {events / seconds:,.0f} "
                "events/s); VACUUM ANALYZE")
    if not fits:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE incidents, incident_events, tasks, mediations")
            try:
                conn.execute("CHECKPOINT")
            except psycopg.errors.InsufficientPrivilege:
                say("  (no CHECKPOINT: the bench database's user may not; the first run may pay for it)")
    with psycopg.connect(dsn) as conn:
        tasks, mediations = conn.execute("SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM mediations)"
                                         ).fetchone()
        sizes = _sizes(conn)
    return StatsFixture(span=span, incidents=incidents, events=events, tasks=tasks, mediations=mediations,
                        people=people, cached=bool(fits), build_seconds=seconds, table_mb=sizes)


def fixture_profile(dsn: str, lo: datetime, hi: datetime) -> dict:
    """What the fixture holds, overall and in the quarter: shares a reader can check for realism."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("""
            SELECT count(*) AS incidents,
                   count(*) FILTER (WHERE reported_at >= %(lo)s AND reported_at < %(hi)s) AS reported_in_quarter,
                   count(*) FILTER (WHERE status = 'closed') AS closed,
                   count(*) FILTER (WHERE status IN ('rejected', 'merged')) AS rejected_or_merged,
                   count(*) FILTER (WHERE status = 'suspended') AS suspended,
                   count(*) FILTER (WHERE status NOT IN ('closed', 'rejected', 'merged', 'suspended')) AS open,
                   count(*) FILTER (WHERE resolved_on_spot) AS on_spot,
                   count(*) FILTER (WHERE rework_count > 0) AS reworked,
                   count(*) FILTER (WHERE extension_count > 0) AS extended,
                   count(*) FILTER (WHERE escalation_count > 0) AS escalated
            FROM incidents
        """, {"lo": lo, "hi": hi}).fetchone()
        names = ("incidents", "reported_in_quarter", "closed", "rejected_or_merged", "suspended", "open", "on_spot",
                 "reworked", "extended", "escalated")
        profile = dict(zip(names, row, strict=True))
        profile["events_in_quarter"], profile["sweep_escalations"], profile["callbacks"] = conn.execute("""
            SELECT count(*) FILTER (WHERE at >= %(lo)s AND at < %(hi)s),
                   count(*) FILTER (WHERE action = 'escalate' AND actor_id IS NULL),
                   count(*) FILTER (WHERE action = 'callback')
            FROM incident_events
        """, {"lo": lo, "hi": hi}).fetchone()
        profile["resolved_levels"] = dict(conn.execute(
            "SELECT resolved_level, count(*) FROM incidents WHERE resolved_level IS NOT NULL GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall())
        profile["department_tasks"] = conn.execute("SELECT count(*) FROM tasks WHERE department_id IS NOT NULL"
                                                   ).fetchone()[0]
    return profile


# ------------------------------------------------------------------ the peer

# The least SQL that groups the quarter's timeline by child region: the quarter's events
# (ix_incident_events_at), each joined to its incident for the subtree test and the child's id
# in its path, counted per child.
PEER_SQL = """
SELECT CAST(NULLIF(split_part(i.region_path, '/', %(child_pos)s), '') AS integer) AS child, count(*) AS events
FROM incident_events ev JOIN incidents i ON i.id = ev.incident_id
WHERE ev.at >= %(lo)s AND ev.at < %(hi)s AND i.region_path LIKE %(path)s || '%%'
GROUP BY 1
"""


# ------------------------------------------------------------------ measuring

def _percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds, dtype=float) * 1000
    p50, p95 = np.percentile(ms, [50, 95])
    return {"runs": int(ms.size), "p50_ms": float(p50), "p95_ms": float(p95), "min_ms": float(ms.min()),
            "max_ms": float(ms.max()), "every_ms": [round(v, 1) for v in ms.tolist()]}


def _explain(dsn: str, sql: str, params: dict, path, jit: bool = True) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of ``sql`` written to ``path``; the total time and the buffers read.
    ``jit`` False: as the service runs it (``server.services.analytic``)."""
    with psycopg.connect(dsn) as conn:
        if not jit:
            conn.execute("SET jit = off")
        plan = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) " + sql, params).fetchall()]
    path.write_text("\n".join(plan) + "\n")
    execution = next((line for line in plan if line.startswith("Execution Time")), "")
    jit = next((line.strip() for line in plan if line.strip().startswith("Timing: Generation")), None)
    return {"file": str(path.relative_to(OUT_DIR.parent.parent)), "execution": execution, "jit": jit}


def measure(app: Flask, url: str, dsn: str, city_id: int, args) -> dict:
    """Fixture, then for the city and each borough: region_stats, the figures statement alone,
    department_stats, worker_stats, the quarterly report as PDF and the peer, in turn, a warm-up then ``args.stats_repeat``
    repetitions; EXPLAIN ANALYZE of the figures statement and of the peer for one borough."""
    from sqlalchemy import select, text

    from server.domain.permissions import Actor
    from server.domain.territory import child_level, level_rank
    from server.extensions import db
    from server.models import Region
    from server.services import stats as service
    from server.services.categories import seed_categories

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    zone = app.config["TIMEZONE"]
    quarter = quarter_measured(zone)
    span = fixture_span(quarter)
    with app.app_context():
        seed_categories()  # idempotent (upserts by code), as the other benchmarks do
    fixture = ensure_fixture(dsn, city_id, span, zone, args.stats_incidents)
    with psycopg.connect(dsn, autocommit=True) as conn:  # the milestones as autovacuum keeps them after a migration's
        conn.execute("VACUUM (ANALYZE) incident_milestones")  # backfill (whose updates leave dead rows behind)
    period = service.Period(*quarter)
    lo, hi = _instant(quarter[0], zone), _instant(quarter[1], zone)
    profile = fixture_profile(dsn, lo, hi)
    say(f"Stats: the quarter {quarter[0]} … {quarter[1]} ({zone}): {profile['reported_in_quarter']:,} reported, "
        f"{profile['events_in_quarter']:,} events in it")
    regions, results = [], []
    with app.app_context():
        city = db.session.get(Region, city_id)
        actor = Actor(user_id=fixture.people["manager_id"], role="city", scope_path=city.path)
        boroughs = db.session.scalars(select(Region).where(Region.parent_id == city_id, Region.retired_at.is_(None))
                                      .order_by(Region.code)).all()
        for region in (city, *boroughs):
            below = child_level(region.level)
            regions.append({"id": region.id, "name": region.name, "code": region.code, "level": region.level,
                            "path": region.path, "children_level": below,
                            "child_pos": level_rank(below) + 2 if below else 0})
        db.session.remove()
    figures_params = {"village": list(service.VILLAGE_LEVELS), "town": list(service.TOWN_LEVELS)}

    def side_region_stats(r):
        answer = service.region_stats(actor, r["id"], period)
        return len(answer["children"])

    def side_statement(r):
        db.session.execute(text("SET LOCAL jit = off"))  # as the service runs it
        rows = db.session.execute(service._FIGURES, {"path": r["path"], "los": [lo], "his": [hi],
                                                     "child_pos": r["child_pos"], **figures_params}).all()
        return len(rows)

    def side_departments(r):
        return len(service.department_stats(actor, r["id"], period)["departments"])

    def side_workers(r):
        return len(service.worker_stats(actor, r["id"], period)["workers"])

    from server.services import reports
    report_quarter = reports.Quarter(quarter[0].year, (quarter[0].month - 1) // 3 + 1)

    def side_report(r):  # the quarterly risk report as PDF: its figures, hotspots, map, charts, lists, and printing
        _, html = reports.quarterly(actor, r["id"], report_quarter)
        return len(reports.to_pdf(html)) // 1024  # kB

    with psycopg.connect(dsn, autocommit=True) as peer_conn, app.app_context():
        def side_peer(r):
            return len(peer_conn.execute(PEER_SQL, {"child_pos": r["child_pos"], "lo": lo, "hi": hi,
                                                    "path": r["path"]}).fetchall())

        sides = {"region_stats": side_region_stats, "statement": side_statement, "peer": side_peer,
                 "department_stats": side_departments, "worker_stats": side_workers, "report_pdf": side_report}
        for r in regions:
            say(f"Stats: {r['name']} ({r['level']}, by {r['children_level']}): "
                f"{', '.join(sides)} in turn, a warm-up then {args.stats_repeat} repetitions")
            times = {name: [] for name in sides}
            answers: dict[str, int] = {}
            names = list(sides)
            for n in range(args.stats_repeat + 1):  # repetition 0 warms up
                for name in (names if n % 2 == 0 else names[::-1]):
                    t0 = time.perf_counter()
                    answers[name] = sides[name](r)
                    elapsed = time.perf_counter() - t0
                    db.session.remove()  # a request's end: the next call takes a connection from the pool
                    if n:
                        times[name].append(elapsed)
            row = {**r, "answers": answers, **{name: _percentiles(t) for name, t in times.items()}}
            row["ratio_p50"] = row["region_stats"]["p50_ms"] / row["peer"]["p50_ms"]
            row["ratio_p95"] = row["region_stats"]["p95_ms"] / row["peer"]["p95_ms"]
            row["statement_ratio_p50"] = row["statement"]["p50_ms"] / row["peer"]["p50_ms"]
            row["target_met"] = r["children_level"] == "street" and row["region_stats"]["p95_ms"] < TARGET_S * 1000
            results.append(row)
            say(f"    region_stats p50 {row['region_stats']['p50_ms']:,.0f} p95 {row['region_stats']['p95_ms']:,.0f} ms;"
                f" the statement p50 {row['statement']['p50_ms']:,.0f} ms; peer p50 {row['peer']['p50_ms']:,.0f} ms; "
                f"departments {row['department_stats']['p50_ms']:,.0f}, workers {row['worker_stats']['p50_ms']:,.0f}"
                f" ms; report PDF {row['report_pdf']['p50_ms']:,.0f} ms; ours/peer p50 {row['ratio_p50']:.1f}")
    # where the time goes: the largest borough by its events in the quarter
    biggest = max(results[1:], key=lambda row: row["statement"]["p50_ms"])
    params = {"path": biggest["path"], "lo": lo, "hi": hi, "los": [lo], "his": [hi], "child_pos": biggest["child_pos"]}
    say(f"Stats: EXPLAIN ANALYZE of the figures statement and of the peer for {biggest['name']}")
    explained = {"region": biggest["name"],
                 "statement": _explain(dsn, _figures_for_psycopg(service._FIGURES.text), {
                     **params, "village": list(service.VILLAGE_LEVELS), "town": list(service.TOWN_LEVELS)},
                     OUT_DIR / "stats-explain-figures.txt", jit=False),
                 "peer": _explain(dsn, PEER_SQL, params, OUT_DIR / "stats-explain-peer.txt")}
    streets = [row for row in results if row["children_level"] == "street"]
    return {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "quarter": {"from": quarter[0].isoformat(), "to": quarter[1].isoformat(), "zone": zone},
            "fixture": {"span": [span[0].isoformat(), span[1].isoformat()], "incidents": fixture.incidents,
                        "events": fixture.events, "tasks": fixture.tasks, "mediations": fixture.mediations,
                        "people": fixture.people, "cached": fixture.cached, "build_seconds": fixture.build_seconds,
                        "table_mb": fixture.table_mb, "profile": profile},
            "repeat": args.stats_repeat, "regions": results, "explain": explained,
            "database": _database_settings(dsn), "peer_sql": " ".join(PEER_SQL.split()),
            "target": {"seconds": TARGET_S, "what": "region_stats of a borough by its streets, p95",
                       "met": bool(streets) and all(row["target_met"] for row in streets)},
            "seconds": time.perf_counter() - started, "load_before": load_before, "load_after": os.getloadavg()[0]}


def _figures_for_psycopg(sql: str) -> str:
    """The service's figures statement with psycopg's placeholders: :name → %(name)s, the two
    expanding lists as ``= ANY`` of an array (the same test), ``%`` doubled."""
    import re

    sql = sql.replace("%", "%%")
    sql = re.sub(r"IN :(village|town)\b", r"= ANY(%(\1)s)", sql)
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql)


def _database_settings(dsn: str) -> dict:
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in ("jit", "shared_buffers", "work_mem", "max_parallel_workers_per_gather")}
