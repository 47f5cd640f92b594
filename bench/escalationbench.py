"""The escalation sweep and the push dispatcher against what PostgreSQL and plain HTTP do, in
the same run.

Targets (DESIGN.md): with 1,000,000 open incidents of which 10,000 are overdue, the sweep
escalates ≥ 2,000 incidents/s; the outbox goes to a fake FCM at ≥ 1,000 pushes/s; two
workers side by side escalate nothing twice.

- *Sweep*: ``server.services.sweep.sweep(now)`` in a process of its own (as ``flask
  worker`` runs it), then in two processes started together, each time on the same 10,000
  overdue cases restored to their first state. SQL counts the ``escalate`` events of every
  case afterwards.
- *Its SQL peer*: the same escalations as one set-based statement (claim, move a level up
  with a new stage, timeline event, inbox row, outbox row), timed on the same restored cases.
- *Push*: ``server.notifications.dispatcher.dispatch(now, FcmSender(...))`` (firebase-admin's
  ``send_each``) to ``tests/fakefcm.py``'s FakeFcm on 127.0.0.1, in a process of its own.
- *Its HTTP peer*: plain ``requests`` POSTs of the same bodies to the same fake from a thread
  pool as wide as ``send_each``'s; and, to split the dispatcher's time, the dispatcher with a
  sender that sends nothing (the database side alone).

The incidents are the bench's own: a fixture that does not fit is replaced after ``TRUNCATE
incidents … CASCADE``, as the report benchmark does before its runs.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psycopg
from flask import Flask

from server.cli.progress import progress_bar
from server.domain.categories import DEFAULT_POLICY, effective_policy, stage_minutes
from server.domain.escalation import RUNNING_STATES
from server.domain.notifications import KIND_LABELS
from server.domain.territory import LEVEL_LABELS
from server.services.sweep import OVERDUE_NOTE

from . import OUT_DIR, say
from .dataset import NO_PASSWORD
from .reportbench import reset_incidents

INCIDENTS = 1_000_000
OVERDUE = 10_000
PUSHES = 10_000
CHUNK = 50_000  # incidents per INSERT while building (progress between chunks)
MARK = "bench escalation fixture"  # the description of every fixture incident
SUPERVISOR_PREFIX = "bench-community-"
CELLS_TABLE = "bench_escalation_cells"
OVERDUE_TABLE = "bench_escalation_overdue"
META_TABLE = "bench_escalation_fixture"
PUSH_CAUSE = "bench:push:"
FCM_WIDTH = 500  # firebase-admin's send_each: one thread per message, at most 500 messages a call
FCM_POOL = 100  # connections the FcmSender's HTTP adapters keep (server/notifications/senders.py)
RUNNING = sorted(RUNNING_STATES)


# ------------------------------------------------------------------ the fixture

@dataclass
class EscalationFixtures:
    """The bench's open incidents, the overdue ones among them, and who is told."""

    anchor: datetime  # the fixture's instant: the sweep is told it is now
    incidents: int
    overdue: int
    supervisors: int  # community supervisors, one per community, one phone each
    devices: int
    cached: bool  # True when this run reused the incidents of an earlier run
    build_seconds: float | None  # the wall time of the build that made them


def _ensure_supervisors(conn: psycopg.Connection, city_id: int) -> tuple[int, int]:
    """One active community supervisor per community of the city (``bench-community-<code>``),
    each with one Android phone registered with an FCM registration token; (users, devices)."""
    conn.execute(f"""
        INSERT INTO users (username, display_name, role, region_id, password_hash, is_active, version,
                           created_at, updated_at)
        SELECT '{SUPERVISOR_PREFIX}' || c.code, 'Bench supervisor ' || c.code, 'community', c.id, %(nopw)s,
               true, 1, now(), now()
        FROM regions c JOIN regions city ON city.id = %(city)s
        WHERE c.level = 'community' AND c.retired_at IS NULL AND c.path LIKE city.path || '%%'
          AND NOT EXISTS (SELECT 1 FROM users u WHERE lower(u.username) = lower('{SUPERVISOR_PREFIX}' || c.code))
    """, {"city": city_id, "nopw": NO_PASSWORD})
    conn.execute(f"""
        UPDATE users SET is_active = true, quiet_from = NULL, quiet_to = NULL
        WHERE username LIKE '{SUPERVISOR_PREFIX}%' AND (NOT is_active OR quiet_from IS NOT NULL)
    """)
    conn.execute(f"""
        INSERT INTO devices (user_id, token, token_kind, platform, app_version, created_at, last_seen_at)
        SELECT u.id, 'bench-' || encode(sha256(convert_to(u.username, 'UTF8')), 'hex'), 'registration_token',
               'android', 'bench', now(), now()
        FROM users u WHERE u.username LIKE '{SUPERVISOR_PREFIX}%'
          AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.user_id = u.id)
    """)
    # a device the dispatcher disabled in an earlier run would take no more pushes
    conn.execute(f"""
        UPDATE devices d SET disabled_at = NULL, disabled_reason = NULL FROM users u
        WHERE u.id = d.user_id AND u.username LIKE '{SUPERVISOR_PREFIX}%' AND d.disabled_at IS NOT NULL
    """)
    users, devices = conn.execute(f"""
        SELECT count(DISTINCT u.id), count(d.id) FROM users u LEFT JOIN devices d ON d.user_id = u.id
        WHERE u.username LIKE '{SUPERVISOR_PREFIX}%'
    """).fetchone()
    conn.commit()
    return users, devices


def _grid_categories(conn: psycopg.Connection) -> list[tuple[int, str, int, float]]:
    """Live leaves that start at the grid: (id, default priority, grid resolve minutes, yellow ratio),
    the minutes and ratio from each category's own effective policy."""
    rows = conn.execute("""
        SELECT id, default_priority, policy FROM categories
        WHERE parent_id IS NOT NULL AND retired_at IS NULL AND start_level = 'grid' ORDER BY code
    """).fetchall()
    categories = []
    for category_id, priority, policy in rows:
        effective = effective_policy(policy)
        categories.append((category_id, priority, stage_minutes(effective, "grid")[1], effective["yellow_ratio"]))
    return categories


def _fixture_fits(conn: psycopg.Connection, incidents: int, overdue: int) -> tuple[datetime, float] | None:
    """(anchor, build seconds) when the incidents table holds this very fixture and nothing else."""
    conn.execute(f"""
        CREATE TABLE IF NOT EXISTS {META_TABLE} (
            anchor timestamptz NOT NULL, incidents int NOT NULL, overdue int NOT NULL,
            built_at timestamptz NOT NULL, build_seconds float8 NOT NULL)
    """)
    conn.execute(f"""
        CREATE TABLE IF NOT EXISTS {OVERDUE_TABLE} (
            incident_id bigint PRIMARY KEY, stage_started_at timestamptz NOT NULL, yellow_at timestamptz NOT NULL,
            due_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)
    """)
    conn.commit()
    meta = conn.execute(f"SELECT anchor, incidents, overdue, build_seconds FROM {META_TABLE}").fetchall()
    if len(meta) != 1 or meta[0][1:3] != (incidents, overdue):
        return None
    total, marked, kept = conn.execute(f"""
        SELECT (SELECT count(*) FROM incidents), (SELECT count(*) FROM incidents WHERE description = %(mark)s),
               (SELECT count(*) FROM {OVERDUE_TABLE} o JOIN incidents i ON i.id = o.incident_id
                WHERE i.description = %(mark)s)
    """, {"mark": MARK}).fetchone()
    if total == marked == incidents and kept == overdue:
        return meta[0][0], meta[0][3]
    return None


def _insert_sql(categories: int) -> str:
    """One chunk of the fixture: incidents ``lo``…``hi`` of ``n``, the ``k`` overdue ones spread
    evenly among them (incident i is overdue when ⌊i·k/n⌋ steps up at i).

    Every case is ``accepted`` at the grid in its first stage, top level ``district``, in cell
    ``1 + (i − 1) mod cells`` (cells in a stable pseudo-random order) at the cell's point on
    surface, with a category drawn by a hash of i and that category's own grid stage (natural
    time): the others started their stage within 90 % of their green time, so that neither their
    yellow instant nor their deadline has come; the overdue ones were due 1 minute to 2 days
    before the anchor and had their yellow reminder (``reminded_stage`` 1).
    """
    return f"""
        INSERT INTO incidents (client_uuid, category_id, status, level, region_id, region_path, geom, description,
                               priority, source, occurred_at, reported_at, accepted_at, due_at, updated_at,
                               stage_no, stage_started_at, yellow_at, top_level, reminded_stage)
        SELECT md5('bench-escalation:' || s.i)::uuid, k.id, 'accepted', 'grid', c.id, c.path, c.geom, %(mark)s,
               k.priority, 'hotline', t.st - interval '20 minutes', t.st - interval '10 minutes', t.st,
               t.st + interval '1 minute' * k.resolve, t.st, 1, t.st,
               t.st + interval '1 minute' * k.resolve * k.ratio, 'district', CASE WHEN t.overdue THEN 1 ELSE 0 END
        FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) s(i)
        JOIN {CELLS_TABLE} c ON c.n = 1 + (s.i - 1) %% %(cells)s
        JOIN unnest(%(cat_ids)s::int[], %(priorities)s::text[], %(resolve)s::int[], %(ratio)s::float8[])
             WITH ORDINALITY k(id, priority, resolve, ratio, n) ON k.n = 1 + abs(hashint8(s.i)) %% {categories}
        CROSS JOIN LATERAL (SELECT (s.i * %(k)s) / %(n)s > ((s.i - 1) * %(k)s) / %(n)s AS overdue,
                                   (abs(hashint8(s.i * 7 + 3)) %% 10000) / 10000.0 AS u) h
        CROSS JOIN LATERAL (SELECT CASE WHEN h.overdue
                                        THEN %(anchor)s - interval '1 minute' * (k.resolve + 1 + h.u * 2880)
                                        ELSE %(anchor)s - interval '1 minute' * (h.u * 0.9 * k.resolve * k.ratio)
                                   END AS st, h.overdue) t
    """


def _build(conn: psycopg.Connection, dsn: str, city_id: int, incidents: int, overdue: int) -> tuple[datetime, float]:
    """Empty the incidents and insert the fixture in chunks; returns (anchor, seconds)."""
    started = time.perf_counter()
    anchor = datetime.now(timezone.utc).replace(microsecond=0)
    conn.commit()
    reset_incidents(dsn)
    conn.execute(f"DROP TABLE IF EXISTS {CELLS_TABLE}")
    conn.execute(f"""
        CREATE TEMP TABLE {CELLS_TABLE} AS
        SELECT row_number() OVER (ORDER BY md5(g.code)) AS n, g.id, g.path, ST_PointOnSurface(g.geom) AS geom
        FROM regions g JOIN regions city ON city.id = %(city)s
        WHERE g.level = 'grid' AND g.retired_at IS NULL AND g.path LIKE city.path || '%%'
    """, {"city": city_id})
    conn.execute(f"CREATE UNIQUE INDEX ON {CELLS_TABLE} (n)")
    cells = conn.execute(f"SELECT count(*) FROM {CELLS_TABLE}").fetchone()[0]
    categories = _grid_categories(conn)
    params = {"mark": MARK, "cells": cells, "k": overdue, "n": incidents, "anchor": anchor,
              "cat_ids": [c[0] for c in categories], "priorities": [c[1] for c in categories],
              "resolve": [c[2] for c in categories], "ratio": [c[3] for c in categories]}
    sql = _insert_sql(len(categories))
    with progress_bar("incidents") as progress:
        for lo in range(1, incidents + 1, CHUNK):
            hi = min(incidents, lo + CHUNK - 1)
            conn.execute(sql, {**params, "lo": lo, "hi": hi})
            conn.commit()
            progress(hi, incidents, f"{cells:,} cells, {len(categories)} categories")
    conn.execute(f"DROP TABLE {CELLS_TABLE}")
    conn.execute(f"TRUNCATE {OVERDUE_TABLE}")
    conn.execute(f"""
        INSERT INTO {OVERDUE_TABLE} SELECT id, stage_started_at, yellow_at, due_at, updated_at FROM incidents
        WHERE due_at <= %(anchor)s
    """, {"anchor": anchor})
    seconds = time.perf_counter() - started
    conn.execute(f"TRUNCATE {META_TABLE}")
    conn.execute(f"INSERT INTO {META_TABLE} VALUES (%s, %s, %s, now(), %s)", (anchor, incidents, overdue, seconds))
    conn.commit()
    return anchor, seconds


def restore_overdue(dsn: str) -> None:
    """Put the overdue cases back as the fixture made them: what the sweep (or the SQL peer)
    wrote for them is deleted (timeline events, tasks, inbox rows, pushes and their attempts)
    and their stage restored; then VACUUM, so that every run starts from the same table."""
    ids = f"SELECT incident_id FROM {OVERDUE_TABLE}"
    with psycopg.connect(dsn) as conn:
        conn.execute(f"""DELETE FROM outbox_attempts a USING outbox x, notifications n
                         WHERE a.outbox_id = x.id AND x.notification_id = n.id AND n.incident_id IN ({ids})""")
        conn.execute(f"""DELETE FROM outbox x USING notifications n
                         WHERE x.notification_id = n.id AND n.incident_id IN ({ids})""")
        conn.execute(f"DELETE FROM notifications WHERE incident_id IN ({ids})")
        conn.execute(f"DELETE FROM incident_events WHERE incident_id IN ({ids})")
        conn.execute(f"DELETE FROM tasks WHERE incident_id IN ({ids})")
        conn.execute(f"""
            UPDATE incidents i SET status = 'accepted', level = 'grid', stage_no = 1,
                   stage_started_at = o.stage_started_at, yellow_at = o.yellow_at, due_at = o.due_at,
                   top_level = 'district', reminded_stage = 1, supervised_at = NULL, escalation_count = 0,
                   version = 1, updated_at = o.updated_at
            FROM {OVERDUE_TABLE} o
            WHERE i.id = o.incident_id AND (i.version <> 1 OR i.stage_no <> 1 OR i.level <> 'grid'
                                            OR i.supervised_at IS NOT NULL OR i.reminded_stage <> 1)
        """)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM incidents, incident_events, notifications, outbox, outbox_attempts")


def ensure_fixtures(dsn: str, city_id: int, incidents: int = INCIDENTS, overdue: int = OVERDUE
                    ) -> EscalationFixtures:
    """The community supervisors and their phones, and the incidents: reused when they fit,
    else rebuilt (after emptying the incidents); the overdue cases restored either way."""
    with psycopg.connect(dsn) as conn:
        supervisors, devices = _ensure_supervisors(conn, city_id)
        fits = _fixture_fits(conn, incidents, overdue)
        if fits:
            anchor, seconds = fits
            say(f"Reusing the {incidents:,} bench incidents ({overdue:,} overdue) of the fixture of "
                f"{anchor:%Y-%m-%d %H:%M}")
        else:
            say(f"Building {incidents:,} open incidents ({overdue:,} overdue) over the NYC cells "
                "(the incidents table is emptied first)")
            anchor, seconds = _build(conn, dsn, city_id, incidents, overdue)
            say(f"  built in {seconds:.0f} s ({incidents / seconds:,.0f} incidents/s); VACUUM ANALYZE")
    restore_overdue(dsn)
    if not fits:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE incidents")
            try:  # write the build's pages out now, not during the first measured run
                conn.execute("CHECKPOINT")
            except psycopg.errors.InsufficientPrivilege:
                say("  (no CHECKPOINT: the bench database's user may not; the first run may pay for it)")
    return EscalationFixtures(anchor=anchor, incidents=incidents, overdue=overdue, supervisors=supervisors,
                              devices=devices, cached=bool(fits), build_seconds=seconds)


# ------------------------------------------------------------------ the sweep, in worker processes

def _sweep_process(url: str, now: datetime, index: int, ready, go, results) -> None:
    """A worker process (spawned: nothing shared with the runner): its own app, engine and
    session, as ``flask worker`` has. A warm-up pass at an instant when nothing is due yet
    opens the connection; then, once every worker is ready, one ``sweep(now)``."""
    from sqlalchemy import event

    from server import create_app
    from server.extensions import db
    from server.services.sweep import sweep

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        statements = [0]
        event.listen(db.engine, "before_cursor_execute", lambda *args: statements.__setitem__(0, statements[0] + 1))
        warm = sweep(now - timedelta(days=30))
        db.session.remove()
        statements[0] = 0
        ready.wait()
        go.wait()
        started = time.monotonic()
        report = sweep(now)
        finished = time.monotonic()
        db.session.remove()
    results.put({"worker": index, "started": started, "finished": finished, "escalated": report.escalated,
                 "reminded": report.reminded, "supervised": report.supervised, "repushed": report.repushed,
                 "handed_over": report.handed_over, "failed": len(report.failed), "failures": report.failed[:5],
                 "warmup_done": warm.done, "statements": statements[0]})


def _run_processes(target, args: tuple, workers: int, name: str, *, before_go=None, meanwhile=None) -> list[dict]:
    """``workers`` spawned processes running ``target(*args, index, ready, go, results)``: each
    prepares, waits at ``ready``, then (once ``before_go()`` has run here) starts at ``go`` and
    puts one result. ``meanwhile()`` runs every 2 s until all have answered. The results, by
    index; a process that dies without one stops the run, and none is left behind."""
    ctx = multiprocessing.get_context("spawn")
    ready, go, results = ctx.Barrier(workers + 1), ctx.Barrier(workers + 1), ctx.Queue()
    processes = [ctx.Process(target=target, args=(*args, i, ready, go, results), name=f"{name}-{i}")
                 for i in range(workers)]
    for p in processes:
        p.start()
    done: list[dict] = []
    try:
        ready.wait(timeout=120)
        if before_go:
            before_go()
        go.wait(timeout=10)
        while len(done) < workers:
            try:
                done.append(results.get(timeout=2))
            except queue.Empty:
                if not any(p.is_alive() for p in processes) and results.empty():
                    raise RuntimeError(f"a {name} process ended without a result (see its traceback)") from None
            if meanwhile:
                meanwhile()
    finally:
        for p in processes:
            p.join(timeout=10 if len(done) == workers else 0.1)
            if p.is_alive():  # our own child, by its PID
                p.kill()
                p.join()
    return sorted(done, key=lambda r: r["worker"])


def run_sweep(url: str, dsn: str, fixtures: EscalationFixtures, workers: int) -> dict:
    """``workers`` sweeps started together on the restored overdue cases; wall time from the
    first start to the last finish (one monotonic clock for all processes), then SQL's count.
    Progress: the escalate events SQL sees, every 2 s."""
    restore_overdue(dsn)
    with progress_bar("escalations") as progress, psycopg.connect(dsn, autocommit=True) as conn:
        def show() -> None:
            seen = conn.execute("SELECT count(*) FROM incident_events WHERE action = 'escalate'").fetchone()[0]
            progress(seen, fixtures.overdue, f"{workers} worker{'s' if workers > 1 else ''}")

        done = _run_processes(_sweep_process, (url, fixtures.anchor), workers, "bench-sweep", meanwhile=show)
    seconds = max(r["finished"] for r in done) - min(r["started"] for r in done)
    escalated = sum(r["escalated"] for r in done)
    counts = escalation_counts(dsn, fixtures.anchor)
    return {"workers": workers, "seconds": seconds, "escalated": escalated, "per_s": escalated / seconds,
            "statements_per_escalation": sum(r["statements"] for r in done) / max(1, escalated),
            "failed": sum(r["failed"] for r in done), "per_worker": done, "checked": counts}


def escalation_counts(dsn: str, anchor: datetime) -> dict:
    """What SQL holds after a run: per overdue case its ``escalate`` events (exactly one each),
    its stage (community, stage 2, escalated once); escalations of cases that were not
    overdue; inbox rows and pushes written; cases still due at the anchor."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"""
            WITH e AS (SELECT incident_id, count(*) AS n FROM incident_events WHERE action = 'escalate'
                       GROUP BY incident_id)
            SELECT count(*),
                   count(*) FILTER (WHERE e.n = 1),
                   count(*) FILTER (WHERE e.n > 1),
                   count(*) FILTER (WHERE e.n IS NULL),
                   count(*) FILTER (WHERE i.level = 'community' AND i.stage_no = 2 AND i.escalation_count = 1),
                   (SELECT count(*) FROM e WHERE e.incident_id NOT IN (SELECT incident_id FROM {OVERDUE_TABLE})),
                   (SELECT count(*) FROM notifications n JOIN {OVERDUE_TABLE} x ON x.incident_id = n.incident_id),
                   (SELECT count(*) FROM outbox b JOIN notifications n ON n.id = b.notification_id
                    JOIN {OVERDUE_TABLE} x ON x.incident_id = n.incident_id),
                   (SELECT count(*) FROM incidents WHERE status = ANY(%(running)s) AND due_at <= %(anchor)s)
            FROM {OVERDUE_TABLE} o JOIN incidents i ON i.id = o.incident_id
            LEFT JOIN e ON e.incident_id = o.incident_id
        """, {"running": RUNNING, "anchor": anchor}).fetchone()
    keys = ("cases", "escalated_once", "escalated_twice_or_more", "not_escalated", "moved_up_once",
            "escalations_of_others", "notifications", "outbox_rows", "still_due")
    return dict(zip(keys, row))


# ------------------------------------------------------------------ the sweep's SQL peer

def sql_peer_statement() -> str:
    """The same escalations in one statement: claim the overdue cases below their top level
    (``SKIP LOCKED``), move each a level up with a new stage (the category's stage at the new
    level, natural time), append the ``escalate`` event, tell the new level's supervisors
    (inbox row, same cause as the service's) and queue a push to each of their phones."""
    levels = {"grid": "community", "community": "street", "street": "district", "district": "city"}
    next_level = "CASE d.level " + " ".join(f"WHEN '{a}' THEN '{b}'" for a, b in levels.items()) + " END"
    default = DEFAULT_POLICY["levels"]
    default_resolve = "CASE u.level " + " ".join(
        f"WHEN '{lvl}' THEN {stage['resolve_minutes']}" for lvl, stage in default.items()) + " END"
    title_zh, title_en = KIND_LABELS["escalated_in"]
    label = "CASE up.level " + " ".join(f"WHEN '{lvl}' THEN '{zh}'" for lvl, (zh, _) in LEVEL_LABELS.items()) + " END"
    label_en = "CASE up.level " + " ".join(
        f"WHEN '{lvl}' THEN '{en}'" for lvl, (_, en) in LEVEL_LABELS.items()) + " END"
    running = ", ".join(f"'{s}'" for s in RUNNING)
    return f"""
        WITH d AS (
            SELECT i.id, i.level, i.status, i.category_id FROM incidents i
            WHERE i.status IN ({running}) AND i.due_at <= %(now)s AND i.top_level IS NOT NULL
              AND i.level <> i.top_level
            ORDER BY i.due_at FOR UPDATE SKIP LOCKED
        ), u AS (
            SELECT d.*, {next_level} AS level_to, c.policy FROM d JOIN categories c ON c.id = d.category_id
        ), p AS (
            SELECT u.id, u.level AS level_from, u.level_to, u.status,
                   coalesce((u.policy -> 'levels' -> u.level_to ->> 'resolve_minutes')::int,
                            {default_resolve.replace('u.level', 'u.level_to')}) AS resolve,
                   coalesce((u.policy ->> 'yellow_ratio')::float8, {DEFAULT_POLICY['yellow_ratio']}) AS ratio
            FROM u
        ), up AS (
            UPDATE incidents i SET level = p.level_to, stage_no = i.stage_no + 1, stage_started_at = %(now)s,
                   yellow_at = %(now)s + interval '1 minute' * p.resolve * p.ratio,
                   due_at = %(now)s + interval '1 minute' * p.resolve, supervised_at = NULL,
                   escalation_count = i.escalation_count + 1, version = i.version + 1, updated_at = %(now)s
            FROM p WHERE i.id = p.id
            RETURNING i.id, i.level, i.status, i.stage_no, i.region_path, i.due_at, i.category_id, p.level_from
        ), ev AS (
            INSERT INTO incident_events (incident_id, at, actor_id, action, from_status, to_status, from_level,
                                         to_level, note, data)
            SELECT up.id, %(now)s, NULL, 'escalate', up.status, up.status, up.level_from, up.level, %(note)s,
                   jsonb_build_object('reason', %(note)s::text, 'from_level', up.level_from, 'to_level', up.level)
            FROM up
        ), n AS (
            INSERT INTO notifications (user_id, kind, incident_id, level, deadline, title, title_en, body, body_en,
                                       urgent, cause, created_at)
            SELECT s.id, 'escalated_in', up.id, up.level, up.due_at, '{title_zh}', '{title_en}',
                   '#' || up.id || ' ' || c.name || '（' || {label} || '）',
                   '#' || up.id || ' ' || c.name_en || ' (' || {label_en} || ')',
                   true, 'incident:' || up.id || ':stage:' || up.stage_no || ':in', %(now)s
            FROM up JOIN categories c ON c.id = up.category_id
            JOIN users s ON s.role = up.level AND s.is_active
                        AND s.region_id = split_part(up.region_path, '/',
                                                     array_position(ARRAY['city', 'district', 'street',
                                                                          'community'], up.level::text) + 1)::int
            ON CONFLICT (user_id, cause) DO NOTHING
            RETURNING id, user_id, incident_id, level, deadline, title, title_en, created_at
        )
        INSERT INTO outbox (notification_id, device_id, message_id, payload, high_priority, created_at, not_before,
                            next_attempt_at, expires_at)
        SELECT n.id, v.id, m.id,
               jsonb_build_object('type', 'escalated_in', 'message_id', m.id::text, 'notification_id', n.id::text,
                                  'incident_id', n.incident_id::text, 'task_id', '', 'level', n.level,
                                  'deadline', n.deadline::text, 'title', n.title, 'title_en', n.title_en),
               true, %(now)s, %(now)s, %(now)s, n.deadline
        FROM n JOIN devices v ON v.user_id = n.user_id AND v.disabled_at IS NULL
        CROSS JOIN LATERAL (SELECT gen_random_uuid() AS id, v.id AS device) m
    """


def run_sql_peer(dsn: str, fixtures: EscalationFixtures) -> dict:
    """The set-based statement on the restored overdue cases, timed from send to commit."""
    restore_overdue(dsn)
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        cur = conn.execute(sql_peer_statement(), {"now": fixtures.anchor, "note": OVERDUE_NOTE})
        outbox = cur.rowcount
        conn.commit()
        seconds = time.perf_counter() - started
    counts = escalation_counts(dsn, fixtures.anchor)
    escalated = counts["escalated_once"] + counts["escalated_twice_or_more"]
    return {"seconds": seconds, "escalated": escalated, "per_s": escalated / seconds, "outbox_rows": outbox,
            "checked": counts}


# ------------------------------------------------------------------ the fake FCM, in its own process

def _fake_process(pipe, backlog: int, directory: str) -> None:
    """tests/fakefcm.py's FakeFcm (HTTP/1.1 with keep-alive on an asyncio loop), in a process of
    its own so that it does not share the dispatcher's interpreter lock, with a listen backlog
    as deep as FCM's (it does not turn connections away). Answers the runner's commands:
    ``reset`` (forget what was received), ``received`` (the data.message_id of every request,
    token requests, unauthorised requests), ``stop``. Its service-account file (whose
    ``token_uri`` is the fake) is written to ``directory``."""
    from tests.fakefcm import FakeFcm

    serve_fake(pipe, FakeFcm(backlog=backlog), directory)


def serve_fake(pipe, fake, directory: str) -> None:
    """Hand the runner the fake's URL and service-account file, then answer its commands until
    ``stop`` (in the fake's process)."""
    from pathlib import Path

    pipe.send((fake.url, str(fake.service_account(Path(directory)))))
    while True:
        command = pipe.recv()
        if command == "stop":
            break
        with fake._lock:
            if command == "reset":
                fake.received.clear()
                pipe.send(None)
            elif command == "received":
                pipe.send({"message_ids": [s.message.get("data", {}).get("message_id") for s in fake.received],
                           "token_requests": fake.token_requests, "unauthorised": fake.unauthorised})
    fake.close()
    pipe.send("stopped")


class FakeFcmProcess:
    """The runner's handle on the fake FCM process."""

    def __init__(self, backlog: int = 4096):
        directory = OUT_DIR / "fakefcm"
        directory.mkdir(parents=True, exist_ok=True)
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._process = ctx.Process(target=_fake_process, args=(child, backlog, str(directory)),
                                    name="bench-fakefcm")
        self._process.start()
        self.url, self.service_account = self._pipe.recv()

    def reset(self) -> None:
        self._pipe.send("reset")
        self._pipe.recv()

    def received(self) -> dict:
        self._pipe.send("received")
        return self._pipe.recv()

    def close(self) -> None:
        try:
            self._pipe.send("stop")
            self._pipe.recv()
        finally:
            self._process.join(timeout=10)
            if self._process.is_alive():  # our own child, by its PID
                self._process.kill()


@contextmanager
def fcm_sender(fake_url: str, service_account: str):
    """The real FcmSender (firebase-admin, google-auth) pointed at the fake, as the tests do
    (tests/integration/conftest.py): FCM's URL and the service account's ``token_uri`` are the
    fake's, and google-auth does not look up a regional access boundary on the internet."""
    import firebase_admin
    from firebase_admin import messaging
    from google.auth import credentials as google_credentials

    from server.notifications.senders import FcmSender

    lookup = "_is_regional_access_boundary_lookup_required"
    boundary = google_credentials.CredentialsWithRegionalAccessBoundary
    if not hasattr(boundary, lookup) or not hasattr(messaging._MessagingService, "FCM_URL"):
        raise RuntimeError("firebase-admin or google-auth moved what the bench points at the fake FCM")
    saved_url, saved_lookup = messaging._MessagingService.FCM_URL, boundary.__dict__.get(lookup)
    messaging._MessagingService.FCM_URL = fake_url + "/v1/projects/{0}/messages:send"
    setattr(boundary, lookup, lambda self: False)
    sender = FcmSender(service_account, app_name=f"bench-{os.getpid()}-{time.monotonic_ns()}")
    try:
        yield sender
    finally:
        firebase_admin.delete_app(sender._app)
        messaging._MessagingService.FCM_URL = saved_url
        if saved_lookup is None:  # it was inherited
            delattr(boundary, lookup)
        else:
            setattr(boundary, lookup, saved_lookup)


# ------------------------------------------------------------------ the push dispatcher

def queue_pushes(dsn: str, count: int, now: datetime) -> int:
    """``count`` due pushes, as notify() writes them: an inbox row (kind ``escalated_in``, on one
    of the overdue cases) and its outbox row to the supervisor's phone, the supervisors' phones
    in turn. Earlier bench pushes are deleted first; no other push may be pending."""
    with psycopg.connect(dsn) as conn:
        _delete_pushes(conn)
        pending = conn.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')").fetchone()[0]
        if pending:
            raise RuntimeError(f"{pending} other pushes are pending in the bench database: the dispatcher "
                               "would send them too")
        title_zh, title_en = KIND_LABELS["escalated_in"]
        conn.execute(f"""
            WITH phones AS (
                SELECT row_number() OVER (ORDER BY d.id) AS n, d.id AS device_id, d.user_id
                FROM devices d JOIN users u ON u.id = d.user_id
                WHERE u.username LIKE '{SUPERVISOR_PREFIX}%%' AND d.disabled_at IS NULL
            ), cases AS (
                SELECT row_number() OVER (ORDER BY incident_id) AS n, incident_id FROM {OVERDUE_TABLE}
            ), wanted AS (
                SELECT s.i, p.device_id, p.user_id, c.incident_id, gen_random_uuid() AS message_id
                FROM generate_series(1, %(count)s) s(i)
                JOIN phones p ON p.n = 1 + (s.i - 1) %% (SELECT count(*) FROM phones)
                JOIN cases c ON c.n = 1 + (s.i - 1) %% (SELECT count(*) FROM cases)
            ), n AS (
                INSERT INTO notifications (user_id, kind, incident_id, level, deadline, title, title_en, body,
                                           body_en, urgent, cause, created_at)
                SELECT w.user_id, 'escalated_in', w.incident_id, 'community', %(expires)s, '{title_zh}',
                       '{title_en}', '#' || w.incident_id, '#' || w.incident_id, true,
                       '{PUSH_CAUSE}' || w.i, %(now)s
                FROM wanted w
                RETURNING id, user_id, cause
            )
            INSERT INTO outbox (notification_id, device_id, message_id, payload, high_priority, created_at,
                                not_before, next_attempt_at, expires_at)
            SELECT n.id, w.device_id, w.message_id,
                   jsonb_build_object('type', 'escalated_in', 'message_id', w.message_id::text,
                                      'notification_id', n.id::text, 'incident_id', w.incident_id::text,
                                      'task_id', '', 'level', 'community', 'deadline', %(expires)s::text,
                                      'title', '{title_zh}', 'title_en', '{title_en}'),
                   true, %(now)s, %(now)s, %(now)s, %(expires)s
            FROM n JOIN wanted w ON '{PUSH_CAUSE}' || w.i = n.cause
        """, {"count": count, "now": now - timedelta(seconds=1), "expires": now + timedelta(days=1)})
        queued = conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE notifications, outbox, outbox_attempts")
    return queued


def _delete_pushes(conn: psycopg.Connection) -> None:
    bench = f"SELECT id FROM notifications WHERE cause LIKE '{PUSH_CAUSE}%%'"
    conn.execute(f"DELETE FROM outbox_attempts a USING outbox x WHERE a.outbox_id = x.id "
                 f"AND x.notification_id IN ({bench})")
    conn.execute(f"DELETE FROM outbox WHERE notification_id IN ({bench})")
    conn.execute(f"DELETE FROM notifications WHERE cause LIKE '{PUSH_CAUSE}%%'")


def requeue_pushes(dsn: str, now: datetime) -> int:
    """The bench's pushes due again, unsent, their attempts forgotten."""
    with psycopg.connect(dsn) as conn:
        bench = f"SELECT id FROM notifications WHERE cause LIKE '{PUSH_CAUSE}%%'"
        conn.execute(f"DELETE FROM outbox_attempts a USING outbox x WHERE a.outbox_id = x.id "
                     f"AND x.notification_id IN ({bench})")
        cur = conn.execute(f"""
            UPDATE outbox SET status = 'pending', attempts = 0, sent_at = NULL, fcm_name = NULL, last_error = NULL,
                   lease_until = NULL, not_before = %(now)s, next_attempt_at = %(now)s
            WHERE notification_id IN ({bench})
        """, {"now": now - timedelta(seconds=1)})
        count = cur.rowcount
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM outbox, outbox_attempts")
    return count


def push_counts(dsn: str) -> dict:
    """The bench's pushes by status, their attempts and message ids."""
    with psycopg.connect(dsn) as conn:
        bench = f"SELECT id FROM notifications WHERE cause LIKE '{PUSH_CAUSE}%%'"
        statuses = dict(conn.execute(
            f"SELECT status, count(*) FROM outbox WHERE notification_id IN ({bench}) GROUP BY status").fetchall())
        attempts = conn.execute(f"""
            SELECT count(*), count(DISTINCT a.outbox_id) FROM outbox_attempts a JOIN outbox x ON x.id = a.outbox_id
            WHERE x.notification_id IN ({bench})""").fetchone()
        ids = {str(r[0]) for r in conn.execute(
            f"SELECT message_id FROM outbox WHERE notification_id IN ({bench})").fetchall()}
    return {"statuses": statuses, "attempts": attempts[0], "rows_attempted": attempts[1], "message_ids": ids}


def _verify_received(fake: FakeFcmProcess, expected_ids: set[str]) -> dict:
    """The fake's requests against the outbox: one per row, none for a message not in it."""
    got = fake.received()
    ids = got["message_ids"]
    distinct = set(ids)
    return {"requests": len(ids), "distinct_message_ids": len(distinct),
            "missing": len(expected_ids - distinct), "unknown": len(distinct - expected_ids),
            "extra_requests": len(ids) - len(distinct), "unauthorised": got["unauthorised"]}


def _warm_up(sender, now: datetime) -> None:
    """A first call: the OAuth token from the fake, the HTTP connections, the thread pool."""
    from server.notifications.senders import Push

    pushes = [Push(token=f"bench-warmup-{i}", token_kind="registration_token", data={"type": "warmup"},
                   high_priority=True, expires_at=now + timedelta(hours=1)) for i in range(FCM_WIDTH)]
    sender.send(pushes, now)


class NullSender:
    """Answers every push ``sent`` without sending it: the dispatcher's database side alone."""

    name = "null"

    def send(self, pushes, now):
        from server.notifications.senders import PushResult

        return [PushResult("sent", name=f"null/{push.data.get('message_id', '')}") for push in pushes]


class TimedSender:
    """A sender that times another one's ``send`` calls: the dispatcher's time in HTTP."""

    def __init__(self, sender):
        self.name, self._sender, self.seconds, self.calls = sender.name, sender, 0.0, 0

    def send(self, pushes, now):
        started = time.perf_counter()
        try:
            return self._sender.send(pushes, now)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1


def _dispatch_process(url: str, fake: tuple[str, str] | None, index: int, ready, go, results) -> None:
    """A dispatcher process as ``flask worker`` runs one (its own app and session): FcmSender to the fake at ``fake`` = (URL, service-account file), or
    NullSender without one. Warmed up (token, connections, threads), it waits for the runner,
    then runs ``dispatch(now, sender)`` until no due push is left."""
    from contextlib import nullcontext

    from sqlalchemy import text

    from server import create_app
    from server.extensions import db
    from server.notifications.dispatcher import dispatch

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context(), (fcm_sender(*fake) if fake else nullcontext(NullSender())) as sender, \
            _quiet_pool_warnings() as discarded:
        _warm_up(sender, datetime.now(timezone.utc))
        db.session.execute(text("SELECT 1"))  # the database connection too
        db.session.remove()
        ready.wait()
        go.wait()
        discarded.count = 0
        timed = TimedSender(sender)
        started = time.monotonic()
        report = dispatch(datetime.now(timezone.utc), timed)
        finished = time.monotonic()
        db.session.remove()
    results.put({"worker": index, "started": started, "finished": finished, "sent": report.sent,
                 "send_seconds": timed.seconds, "send_calls": timed.calls, "retried": report.retried,
                 "dead": report.dead, "failed": report.failed, "expired": report.expired,
                 "errors": report.errors[:3], "discarded_connections": discarded.count})


def run_dispatch(url: str, fake: FakeFcmProcess | None, label: str, workers: int = 1) -> dict:
    """``workers`` dispatcher processes started together on the due pushes (to the fake, or
    with NullSender when ``fake`` is None); wall time from the first start to the last finish."""
    target = (fake.url, fake.service_account) if fake else None
    done = _run_processes(_dispatch_process, (url, target), workers, "bench-dispatch",
                          before_go=fake.reset if fake else None)  # the fake forgets the warm-up pushes
    seconds = max(r["finished"] for r in done) - min(r["started"] for r in done)
    sent = sum(r["sent"] for r in done)
    totals = {key: sum(r[key] for r in done) for key in ("retried", "dead", "failed", "expired", "send_calls",
                                                         "discarded_connections")}
    return {"sender": label, "workers": workers, "seconds": seconds, "sent": sent, "per_s": sent / seconds,
            "send_seconds": max(r["send_seconds"] for r in done), **totals,
            "errors": [e for r in done for e in r["errors"]][:3], "per_worker": done}


def fcm_bodies(sender, dsn: str, now: datetime) -> list[bytes]:
    """The request bodies send_each posts for the bench's pushes (firebase-admin's own encoding)."""
    from server.notifications.senders import Push

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f"""
            SELECT d.token, d.token_kind, x.payload, x.high_priority, x.expires_at FROM outbox x
            JOIN devices d ON d.id = x.device_id
            WHERE x.notification_id IN (SELECT id FROM notifications WHERE cause LIKE '{PUSH_CAUSE}%%')
            ORDER BY x.id
        """).fetchall()
    service = sender._service
    return [json.dumps(service._message_data(sender._message(
        Push(token=token, token_kind=kind, data={k: str(v) for k, v in payload.items()}, high_priority=high,
             expires_at=expires), now), False)).encode() for token, kind, payload, high, expires in rows]


def run_requests_peer(fake: FakeFcmProcess, bodies: list[bytes], width: int = FCM_WIDTH) -> dict:
    """Plain requests POSTs of ``bodies`` to the fake from ``width`` threads sharing one session
    with the FcmSender's adapter (100 kept connections, no retries), with a static bearer token."""
    import requests

    from tests.fakefcm import ACCESS_TOKEN, PROJECT

    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=FCM_POOL, pool_maxsize=FCM_POOL,
                                                           max_retries=0))
    url = f"{fake.url}/v1/projects/{PROJECT}/messages:send"
    headers = {"Authorization": f"Bearer {ACCESS_TOKEN}", "Content-Type": "application/json",
               "X-GOOG-API-FORMAT-VERSION": "2"}

    def post(body: bytes) -> int:
        try:
            return session.post(url, data=body, headers=headers, timeout=10).status_code
        except requests.RequestException:
            return 0

    with ThreadPoolExecutor(max_workers=width) as pool:
        list(pool.map(post, bodies[:width]))  # warm-up: the threads and the kept connections
        fake.reset()
        started = time.perf_counter()
        statuses = list(pool.map(post, bodies))
        seconds = time.perf_counter() - started
    session.close()
    ok = sum(1 for s in statuses if s == 200)
    return {"seconds": seconds, "requests": len(bodies), "ok": ok, "errors": len(bodies) - ok,
            "per_s": ok / seconds, "width": width}


@contextmanager
def _quiet_pool_warnings():
    """send_each runs up to 500 threads on 100 kept connections: urllib3 warns for every
    connection it discards beyond them. Counted, not printed."""
    logger = logging.getLogger("urllib3.connectionpool")
    counter = _CountingHandler()
    propagate = logger.propagate
    logger.addHandler(counter)
    logger.propagate = False
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.propagate = propagate


class _CountingHandler(logging.Handler):
    """A logging handler that counts the records it is given."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def emit(self, record) -> None:
        self.count += 1  # under the handler's own lock (Handler.handle)


def measure_push(url: str, dsn: str, count: int, repeat: int = 1) -> dict:
    """The dispatcher to the fake FCM in one and in two worker processes, plain requests to
    the same fake, then the dispatcher with no sender, each ``repeat`` times (the median run
    kept, with every run's rate); every run checked against the outbox and what the fake
    received."""
    fake = FakeFcmProcess()
    runs, queued = [], 0
    try:
        for workers in (1, 2):
            tries = []
            for n in range(1, repeat + 1):
                now = datetime.now(timezone.utc)
                queued = requeue_pushes(dsn, now) if queued else queue_pushes(dsn, count, now)
                say(f"Push: {queued:,} due pushes through dispatch() and FcmSender (firebase-admin) to the fake "
                    f"FCM, {workers} worker process{'es' if workers > 1 else ''} (run {n} of {repeat})")
                fcm = run_dispatch(url, fake, "dispatch() + FcmSender (send_each)", workers)
                stored = push_counts(dsn)
                fcm.update(queued=queued, checked={**_verify_received(fake, stored["message_ids"]),
                                                   "statuses": stored["statuses"], "attempts": stored["attempts"],
                                                   "rows_attempted": stored["rows_attempted"]})
                tries.append(fcm)
                k = fcm["checked"]
                say(f"    {fcm['per_s']:,.0f} pushes/s; the fake got {k['requests']:,} requests for {queued:,} rows, "
                    f"{k['extra_requests']} extra, {k['missing']} missing")
            runs.append(median_run(tries))
        tries = []
        with fcm_sender(fake.url, fake.service_account) as sender, _quiet_pool_warnings() as discarded:
            bodies = fcm_bodies(sender, dsn, now)
            for n in range(1, repeat + 1):
                discarded.count = 0
                say(f"Push: the same {len(bodies):,} bodies as plain requests POSTs from {FCM_WIDTH} threads "
                    f"(run {n} of {repeat})")
                peer = run_requests_peer(fake, bodies)
                peer.update(discarded_connections=discarded.count,
                            checked=_verify_received(fake, stored["message_ids"]))
                tries.append(peer)
                say(f"    {peer['per_s']:,.0f} requests/s, {peer['errors']} errors")
        peer = median_run(tries)
        tries = []
        for n in range(1, repeat + 1):
            requeue_pushes(dsn, datetime.now(timezone.utc))
            say(f"Push: the {queued:,} pushes again through dispatch() with a sender that sends nothing "
                f"(run {n} of {repeat})")
            null = run_dispatch(url, None, "dispatch() + a sender that sends nothing")
            null["checked"] = {"statuses": push_counts(dsn)["statuses"]}
            tries.append(null)
            say(f"    {null['per_s']:,.0f} pushes/s")
        null = median_run(tries)
    finally:
        fake.close()
    return {"pushes": queued, "width": FCM_WIDTH, "pool": FCM_POOL, "fcm": runs[0], "fcm_runs": runs,
            "requests": peer, "null": null}


# ------------------------------------------------------------------ all of it

TARGET = {"escalations_per_s": 2000, "pushes_per_s": 1000}


def targets(sweeps: list[dict], peer: dict, push: dict) -> list[dict]:
    """Each measured rate against the design's targets, with its ratio to its peer."""
    rows = []
    for run in sweeps:
        checks = run.get("runs_checked") or [run["checked"]]
        rows.append({"what": f"sweep, {run['workers']} worker{'s' if run['workers'] > 1 else ''}",
                     "rate": run["per_s"], "target": TARGET["escalations_per_s"], "unit": "escalations/s",
                     "met": run["per_s"] >= TARGET["escalations_per_s"], "peer": "one SQL statement",
                     "ratio": run["per_s"] / peer["per_s"], "runs": len(checks),
                     "twice": sum(c["escalated_twice_or_more"] for c in checks),
                     "missed": sum(c["not_escalated"] + c["still_due"] for c in checks),
                     "exact": all(c["escalated_once"] == c["cases"] == c["moved_up_once"]
                                  and not c["escalations_of_others"] and not c["still_due"] for c in checks)})
    requests_peer = push["requests"]
    for fcm in push["fcm_runs"]:
        checks = fcm.get("runs_checked") or [fcm["checked"]]
        rows.append({"what": f"dispatcher to the fake FCM, {fcm['workers']} worker{'s' if fcm['workers'] > 1 else ''}",
                     "rate": fcm["per_s"], "target": TARGET["pushes_per_s"], "unit": "pushes/s",
                     "met": fcm["per_s"] >= TARGET["pushes_per_s"], "runs": len(checks),
                     "peer": f"plain requests, {push['width']} threads", "ratio": fcm["per_s"] / requests_peer["per_s"],
                     "twice": sum(k["extra_requests"] for k in checks), "missed": sum(k["missing"] for k in checks),
                     "exact": all(k["requests"] == push["pushes"] == k["statuses"].get("sent", 0) == k["attempts"]
                                  and not k["unknown"] for k in checks)})
    return rows


def measure(app: Flask, url: str, dsn: str, city_id: int, args) -> dict:
    """Fixture, then the sweep in one and in two worker processes, its SQL peer, and the push
    dispatcher with its peers; the overdue cases restored after each and at the end."""
    from server.services.categories import seed_categories

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with app.app_context():
        seed_categories()  # idempotent: upserts by code (the report fixtures do the same)
    fixtures = ensure_fixtures(dsn, city_id, args.escalation_incidents, args.escalation_overdue)
    sweeps = []
    for workers in (1, 2):
        runs = []
        for n in range(1, args.escalation_repeat + 1):
            say(f"Escalation: sweep(now) over {fixtures.overdue:,} overdue of {fixtures.incidents:,} open incidents, "
                f"{workers} worker process{'es' if workers > 1 else ''} (run {n} of {args.escalation_repeat})")
            runs.append(run_sweep(url, dsn, fixtures, workers))
            run, c = runs[-1], runs[-1]["checked"]
            say(f"    {run['per_s']:,.1f} escalations/s ({run['seconds']:.1f} s); SQL: {c['escalated_once']:,} "
                f"escalated once, {c['escalated_twice_or_more']} twice or more, {c['not_escalated']} not at all")
        sweeps.append(median_run(runs))
    runs = []
    for n in range(1, args.escalation_repeat + 1):
        say(f"Escalation: the same escalations as one set-based SQL statement (run {n} of {args.escalation_repeat})")
        runs.append(run_sql_peer(dsn, fixtures))
        say(f"    {runs[-1]['per_s']:,.0f} escalations/s ({runs[-1]['seconds']:.2f} s)")
    peer = median_run(runs)
    restore_overdue(dsn)
    push = measure_push(url, dsn, args.pushes, args.escalation_repeat)
    restore_overdue(dsn)
    return {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "fixture": {"incidents": fixtures.incidents, "overdue": fixtures.overdue,
                        "supervisors": fixtures.supervisors, "devices": fixtures.devices, "cached": fixtures.cached,
                        "build_seconds": fixtures.build_seconds, "anchor": fixtures.anchor.isoformat()},
            "sweeps": sweeps, "sql_peer": peer, "push": push, "targets": targets(sweeps, peer, push),
            "sql_peer_statement": " ".join(sql_peer_statement().split()),
            "repeat": args.escalation_repeat, "seconds": time.perf_counter() - started, "load_before": load_before,
            "load_after": os.getloadavg()[0]}


def median_run(runs: list[dict]) -> dict:
    """The run with the median rate (the lower of the two middle ones for an even count), with
    every run's rate and checks: on two shared cores one run is not a measurement."""
    ordered = sorted(runs, key=lambda r: r["per_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["runs_per_s"] = [r["per_s"] for r in runs]
    chosen["runs_checked"] = [r["checked"] for r in runs if "checked" in r]
    return chosen
