"""Field work (docs/FIELD.md): GPS ingest through the API against the same rows inserted by
plain SQL, and a day's patrol coverage of a borough's cells against one plain
``ST_Intersection(ST_Buffer(…), cell)`` statement, in the same run.

- *GPS ingest, API*: gunicorn as for locate; ``--gps-patrols`` patrols of the bench's patrol
  workers, started six hours before, each sent ``--gps-batches`` batches of 1,000 fixes (5 s
  apart, walking in the worker's cell) as ``POST /api/v1/patrols/{id}/points`` with the
  worker's bearer token, batch after batch in time order as a phone sends them, by C client
  threads over keep-alive connections (``requests``; the bodies are encoded before the clock
  starts). Each batch is stored, the patrol's points judged again and its days marked for
  coverage, as in production.
- *GPS ingest, plain SQL*: the same batches of the same number of fresh patrols, each one
  ``INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING`` committed, by C psycopg
  connections: the least PostgreSQL does to store the rows.
- *Coverage, the day*: ``server.services.coverage.compute_day`` for the fixture's day, once,
  as the worker runs it (the day's marks and rows replaced, every cell computed in one
  statement, the rows stored): cells/s.
- *Coverage, ours against the peer*, for the community of the borough with about
  COMPARE_CELLS cells (the peer takes about a second a cell: the whole borough would take
  hours): our statement (``_COVERAGE`` for the community, what a read of a live day runs)
  against one plain statement: per cell, the day's stored tracks near it buffered by 30 m on
  the spheroid (``ST_Buffer(geography)``), intersected with the cell, the area on the spheroid
  over the cell's: the share only (ours also measures minutes, metres, workers). Both shares
  are compared cell by cell.
- Fixture: one grid worker per live cell of the borough (``--coverage-borough``), each with one
  patrol on one local day, two hours of kept fixes every 20 s walking from the middle of its
  cell at 0.75 m/s in five-minute legs of random directions, built by set-based SQL and
  cached.
"""
from __future__ import annotations

import json
import os
import threading
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import requests
from flask import Flask

from server.cli.progress import progress_bar

from . import httpbench, say
from .dataset import NO_PASSWORD

WORKER_PREFIX = "bench-patrol-worker-"
META_TABLE = "bench_coverage_fixture"
VERSION = 2  # of the fixture's walk: a fixture of another version is built again
FIX_EVERY_S = 20
WALK_FIXES = 360  # two hours at a fix every 20 s
CHUNK = 1000  # cells a chunk while building
GPS_PATROLS = 100
GPS_BATCHES = 4
BATCH = 1000
REPEAT = 3
COMPARE_CELLS = 100  # the community the peer is measured on: about this many cells (the peer takes ~1 s a cell)
BOROUGH = "Manhattan"
UUID_NS = "bench-patrol:"  # the fixture's patrols: client_uuid = md5 of this and the cell code


# ------------------------------------------------------------------ the walkers

def _ensure_workers(conn: psycopg.Connection, borough_path: str) -> int:
    """One active grid worker per live cell of the borough (``bench-patrol-worker-<cell code>``,
    scoped to the cell's community); returns how many there are."""
    conn.execute("""
        INSERT INTO users (username, display_name, role, region_id, password_hash, is_active, version,
                           created_at, updated_at)
        SELECT %(prefix)s || g.code, 'Bench patrol worker ' || g.code, 'grid_worker', g.parent_id, %(nopw)s, true, 1,
               now(), now()
        FROM regions g
        WHERE g.level = 'grid' AND g.retired_at IS NULL AND g.path LIKE %(path)s || '%%'
          AND NOT EXISTS (SELECT 1 FROM users u WHERE lower(u.username) = lower(%(prefix)s || g.code))
    """, {"prefix": WORKER_PREFIX, "nopw": NO_PASSWORD, "path": borough_path})
    conn.commit()
    return conn.execute("SELECT count(*) FROM users u JOIN regions g ON g.code = substr(u.username, %(n)s) "
                        "WHERE u.username LIKE %(prefix)s || '%%' AND g.path LIKE %(path)s || '%%'",
                        {"n": len(WORKER_PREFIX) + 1, "prefix": WORKER_PREFIX, "path": borough_path}).fetchone()[0]


# a walk from the middle of a cell: legs of LEG fixes (five minutes), each in a direction drawn
# from a hash of the cell and the leg, STEP_M metres a fix (0.75 m/s): a patrol of the streets
# around, crossing a few dozen cells in two hours
LEG = 15
STEP_M = 15.0
_WALK = f"""
    ST_SetSRID(ST_MakePoint(
        ST_X(g.centre) + sum({STEP_M} * cos(h.angle)) OVER w / (111320 * cos(radians(ST_Y(g.centre)))),
        ST_Y(g.centre) + sum({STEP_M} * sin(h.angle)) OVER w / 110574), 4326)
"""


def _build_fixture(conn: psycopg.Connection, borough_path: str, day_start: datetime) -> dict:
    conn.execute("DELETE FROM patrols p USING users u WHERE u.id = p.user_id AND u.username LIKE %s || '%%'",
                 (WORKER_PREFIX,))
    conn.commit()
    cells = conn.execute("""
        SELECT g.id FROM regions g WHERE g.level = 'grid' AND g.retired_at IS NULL AND g.path LIKE %s || '%%'
        ORDER BY g.id
    """, (borough_path,)).fetchall()
    ids = [c[0] for c in cells]
    started = time.perf_counter()
    with progress_bar("cells") as progress:
        for lo in range(0, len(ids), CHUNK):
            chunk = ids[lo:lo + CHUNK]
            conn.execute("""
                INSERT INTO patrols (user_id, client_uuid, region_path, state, started_at, ended_at, updated_at)
                SELECT u.id, CAST(md5(%(ns)s || g.code) AS uuid), k.path, 'ended', %(start)s,
                       %(start)s + make_interval(secs => %(every)s * %(n)s), now()
                FROM regions g JOIN regions k ON k.id = g.parent_id
                JOIN users u ON u.username = %(prefix)s || g.code
                WHERE g.id = ANY(%(ids)s)
            """, {"ns": UUID_NS, "start": day_start, "every": FIX_EVERY_S, "n": WALK_FIXES, "prefix": WORKER_PREFIX,
                  "ids": chunk})
            conn.execute(f"""
                INSERT INTO patrol_points (patrol_id, slot, t, geom, accuracy_m)
                SELECT p.id, floor(extract(epoch FROM p.started_at + make_interval(secs => %(every)s * k)) / 5),
                       p.started_at + make_interval(secs => %(every)s * k), {_WALK}, 5
                FROM regions g JOIN users u ON u.username = %(prefix)s || g.code
                JOIN patrols p ON p.user_id = u.id AND p.client_uuid = CAST(md5(%(ns)s || g.code) AS uuid)
                CROSS JOIN generate_series(0, %(n)s - 1) k
                CROSS JOIN LATERAL (SELECT 2 * pi() * (abs(hashtext(g.code || ':' || k / {LEG})) %% 3600) / 3600.0
                                    AS angle) h
                WHERE g.id = ANY(%(ids)s)
                WINDOW w AS (PARTITION BY p.id ORDER BY k)
            """, {"ns": UUID_NS, "every": FIX_EVERY_S, "n": WALK_FIXES, "prefix": WORKER_PREFIX, "ids": chunk})
            conn.execute("""
                UPDATE patrols p SET track = t.track, distance_m = t.distance_m, points_kept = t.n
                FROM (SELECT pp.patrol_id, ST_Multi(ST_MakeLine(pp.geom ORDER BY pp.t)) AS track,
                             ST_Length(ST_MakeLine(pp.geom ORDER BY pp.t)::geography) AS distance_m, count(*) AS n
                      FROM patrol_points pp JOIN patrols q ON q.id = pp.patrol_id
                      JOIN users u ON u.id = q.user_id JOIN regions g ON g.code = substr(u.username, %(len)s)
                      WHERE u.username LIKE %(prefix)s || '%%' AND g.id = ANY(%(ids)s)
                      GROUP BY pp.patrol_id) t
                WHERE p.id = t.patrol_id
            """, {"len": len(WORKER_PREFIX) + 1, "prefix": WORKER_PREFIX, "ids": chunk})
            conn.commit()
            progress(min(lo + CHUNK, len(ids)), len(ids), f"{min(lo + CHUNK, len(ids)):,} cells")
    seconds = time.perf_counter() - started
    for table in ("patrols", "patrol_points", "users"):
        conn.execute(f"ANALYZE {table}")
    conn.commit()
    return {"cells": len(ids), "seconds": seconds}


def ensure_fixture(conn: psycopg.Connection, borough_path: str, day: date, zone: str) -> dict:
    """The walkers and their walks of ``day``; reused when the meta row says they are there."""
    conn.execute(f"""CREATE TABLE IF NOT EXISTS {META_TABLE} (
        version int NOT NULL, borough_path text NOT NULL, day date NOT NULL, cells int NOT NULL,
        points bigint NOT NULL, build_seconds float8 NOT NULL)""")
    conn.commit()
    workers = _ensure_workers(conn, borough_path)
    meta = conn.execute(f"SELECT day, cells, points, build_seconds FROM {META_TABLE} "
                        "WHERE version = %s AND borough_path = %s", (VERSION, borough_path)).fetchone()
    points = conn.execute("SELECT count(*) FROM patrol_points pp JOIN patrols p ON p.id = pp.patrol_id "
                          "JOIN users u ON u.id = p.user_id WHERE u.username LIKE %s || '%%'",
                          (WORKER_PREFIX,)).fetchone()[0]
    if meta and meta[2] == points and meta[1] == workers:
        say(f"Coverage: reusing the walks of {meta[1]:,} workers on {meta[0]} ({points:,} fixes)")
        return {"day": meta[0], "cells": meta[1], "points": points, "build_seconds": meta[3], "cached": True}
    day_start = datetime.combine(day, datetime.min.time(), ZoneInfo(zone)) + timedelta(hours=9)
    say(f"Coverage: building the walks of {workers:,} workers on {day} (a fix every {FIX_EVERY_S} s for two hours)")
    built = _build_fixture(conn, borough_path, day_start)
    points = WALK_FIXES * built["cells"]
    conn.execute(f"DELETE FROM {META_TABLE}")
    conn.execute(f"INSERT INTO {META_TABLE} VALUES (%s, %s, %s, %s, %s, %s)",
                 (VERSION, borough_path, day, built["cells"], points, built["seconds"]))
    conn.commit()
    say(f"  {points:,} fixes in {built['seconds']:.0f} s")
    return {"day": day, "cells": built["cells"], "points": points, "build_seconds": built["seconds"], "cached": False}


# ------------------------------------------------------------------ coverage

# the peer: the day's tracks near each cell, buffered by 30 m on the spheroid, intersected with
# the cell; the covered area on the spheroid over the cell's
PEER_SQL = """
SELECT c.id, ST_Area(ST_Intersection(ST_Buffer(ST_Collect(p.track)::geography, 30)::geometry, c.geom)::geography)
             / ST_Area(c.geom::geography) AS share
FROM regions c JOIN patrols p ON c.geom && ST_Expand(p.track, 0.0005)
WHERE c.level = 'grid' AND c.retired_at IS NULL AND c.path LIKE %(path)s || '%%'
  AND p.started_at >= %(lo)s AND p.started_at < %(hi)s AND p.track IS NOT NULL
  AND ST_DWithin(p.track::geography, c.geom::geography, 30)
GROUP BY c.id
"""


def _percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds, dtype=float) * 1000
    p50, p95 = np.percentile(ms, [50, 95])
    return {"runs": int(ms.size), "p50_ms": float(p50), "p95_ms": float(p95), "min_ms": float(ms.min()),
            "max_ms": float(ms.max()), "every_ms": [round(v, 1) for v in ms.tolist()]}


def _community(conn: psycopg.Connection, borough_path: str) -> dict:
    """The community of the borough whose live cells number closest to COMPARE_CELLS (then by code)."""
    row = conn.execute("""
        SELECT k.id, k.name, k.code, k.path, count(*) AS cells FROM regions k
        JOIN regions g ON g.parent_id = k.id AND g.level = 'grid' AND g.retired_at IS NULL
        WHERE k.level = 'community' AND k.path LIKE %s || '%%'
        GROUP BY k.id ORDER BY abs(count(*) - %s), k.code LIMIT 1
    """, (borough_path, COMPARE_CELLS)).fetchone()
    return {"id": row[0], "name": row[1], "code": row[2], "path": row[3], "cells": row[4]}


def measure_coverage(app: Flask, dsn: str, borough: dict, fixture: dict, repeat: int) -> dict:
    """The worker's computation of the whole day, once; then, for one community, our statement
    and the peer in turn, a warm-up and ``repeat`` repetitions; the two sides' shares compared."""
    from sqlalchemy import text

    from server.extensions import db
    from server.services import coverage

    day = fixture["day"]
    with psycopg.connect(dsn, autocommit=True) as peer_conn:
        community = _community(peer_conn, borough["path"])
        with app.app_context():
            params = coverage._params(day, community["path"])
            say(f"Coverage: the whole day {day} as the worker computes it (compute_day)")
            t0 = time.perf_counter()
            stored = coverage.compute_day(day)
            day_seconds = time.perf_counter() - t0
            db.session.remove()
        say(f"    {stored:,} cells stored in {day_seconds:.1f} s")
        figures = peer_conn.execute("""
            SELECT avg(share), avg(minutes), avg(metres), avg(workers), count(*) FROM patrol_coverage WHERE day = %s
        """, (day,)).fetchone()
        peer_conn.execute("SET jit = off")
        lo, hi = params["lo"], params["hi"]
        times = {"statement": [], "peer": []}
        answers: dict = {}

        def statement():
            with app.app_context():
                with coverage.analytic():
                    rows = db.session.execute(text(coverage._COVERAGE), params).all()
                db.session.remove()
            return {r.cell_id: r.share for r in rows}

        def peer():
            return dict(peer_conn.execute(PEER_SQL, {"path": community["path"], "lo": lo, "hi": hi}).fetchall())

        sides = {"statement": statement, "peer": peer}
        names = list(sides)
        for n in range(repeat + 1):  # repetition 0 warms up
            say(f"Coverage: {community['name']} ({community['cells']} cells), repetition {n}"
                f"{' (warm-up)' if n == 0 else ''}: {', '.join(names)}")
            for name in (names if n % 2 == 0 else names[::-1]):
                t0 = time.perf_counter()
                answers[name] = sides[name]()
                if n:
                    times[name].append(time.perf_counter() - t0)
    ours_share, peer_share = answers["statement"], answers["peer"]
    both = set(ours_share) & set(peer_share)
    diffs = np.asarray([abs(ours_share[c] - peer_share[c]) for c in both] or [0.0])
    result = {name: _percentiles(t) for name, t in times.items()}
    return {**result, "community": community, "answers": {name: len(a) for name, a in answers.items()},
            "day": {"cells": stored, "seconds": day_seconds, "cells_per_s": stored / day_seconds},
            "ratio_p50": result["statement"]["p50_ms"] / result["peer"]["p50_ms"],
            "agreement": {"cells_both": len(both), "only_ours": len(set(ours_share) - set(peer_share)),
                          "only_peer": len(set(peer_share) - set(ours_share)),
                          "max_abs_diff": float(diffs.max()), "mean_abs_diff": float(diffs.mean())},
            "means": {"share": float(figures[0]), "minutes": float(figures[1]), "metres": float(figures[2]),
                      "workers": float(figures[3]), "cells": int(figures[4])},
            "peer_sql": " ".join(PEER_SQL.replace("%%", "%").split())}


# ------------------------------------------------------------------ GPS ingest

def _walk_batches(cell: tuple[float, float, float, float], started: datetime, batches: int) -> list[list[dict]]:
    """``batches`` × BATCH fixes 5 s apart from ``started``, on a Lissajous walk in the box ``cell``."""
    cx, cy, w, h = cell
    fixes = [{"t": (started + timedelta(seconds=5 * k)).isoformat(),
              "lon": cx + 0.4 * w / 2 * float(np.sin(2 * np.pi * k / 170)),
              "lat": cy + 0.4 * h / 2 * float(np.sin(2 * np.pi * k / 230 + 1)), "accuracy_m": 5.0}
             for k in range(batches * BATCH)]
    return [fixes[b * BATCH:(b + 1) * BATCH] for b in range(batches)]


def _ingest_patrols(conn: psycopg.Connection, count: int, started: datetime) -> list[tuple]:
    """``count`` fresh patrols (on) of the first walkers; (patrol id, user id, cell box) each."""
    rows = conn.execute("""
        WITH w AS (
            SELECT u.id AS user_id, k.path, g.centre, g.geom FROM users u
            JOIN regions g ON g.code = substr(u.username, %(len)s) JOIN regions k ON k.id = g.parent_id
            WHERE u.username LIKE %(prefix)s || '%%' ORDER BY u.id LIMIT %(n)s
        ), p AS (
            INSERT INTO patrols (user_id, client_uuid, region_path, state, started_at, updated_at)
            SELECT user_id, gen_random_uuid(), path, 'on', %(started)s, now() FROM w RETURNING id, user_id
        )
        SELECT p.id, p.user_id, ST_X(w.centre), ST_Y(w.centre), ST_XMax(w.geom) - ST_XMin(w.geom),
               ST_YMax(w.geom) - ST_YMin(w.geom)
        FROM p JOIN w ON w.user_id = p.user_id ORDER BY p.id
    """, {"len": len(WORKER_PREFIX) + 1, "prefix": WORKER_PREFIX, "n": count, "started": started}).fetchall()
    conn.commit()
    return rows


def _delete_ingest_patrols(conn: psycopg.Connection, ids: list[int]) -> None:
    conn.execute("DELETE FROM patrols WHERE id = ANY(%s)", (ids,))
    conn.commit()


def _run_threads(jobs: list, concurrency: int, send) -> tuple[float, list[float], int]:
    """Send ``jobs`` (in order, each taken by the next free thread); wall seconds, latencies, errors."""
    lock, latencies, errors, position = threading.Lock(), [], [0], [0]

    def loop(state):
        while True:
            with lock:
                if position[0] >= len(jobs):
                    return
                job = jobs[position[0]]
                position[0] += 1
            t0 = time.perf_counter()
            ok = send(state, job)
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                latencies.append(elapsed)
                errors[0] += 0 if ok else 1

    states = [send.state() for _ in range(concurrency)]
    threads = [threading.Thread(target=loop, args=(s,)) for s in states]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    for s in states:
        s.close()
    return seconds, latencies, errors[0]


def _stored(conn: psycopg.Connection, ids: list[int]) -> int:
    return conn.execute("SELECT count(*) FROM patrol_points WHERE patrol_id = ANY(%s)", (ids,)).fetchone()[0]


def _summary(side: str, concurrency: int, seconds: float, latencies: list[float], errors: int, stored: int) -> dict:
    ms = np.asarray(latencies, dtype=float)
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"side": side, "concurrency": concurrency, "seconds": seconds, "batches": int(ms.size), "errors": errors,
            "stored": stored, "points_per_s": stored / seconds, "batches_per_s": ms.size / seconds,
            "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}


_SQL_INSERT = """
INSERT INTO patrol_points (patrol_id, slot, t, geom, accuracy_m)
SELECT %(id)s, floor(extract(epoch FROM t) / 5), t, ST_SetSRID(ST_MakePoint(lon, lat), 4326), acc
FROM unnest(%(t)s::timestamptz[], %(lon)s::float8[], %(lat)s::float8[], %(acc)s::float8[]) AS b(t, lon, lat, acc)
ON CONFLICT DO NOTHING
"""


def measure_ingest(app: Flask, url: str, dsn: str, args) -> dict:
    from server.services import replay

    started = datetime.now(timezone.utc) - timedelta(hours=6)
    options = httpbench.ServerOptions(workers=args.workers, worker_class=args.worker_class, threads=args.threads)
    runs = []
    with httpbench.gunicorn(url, options) as (base_url, command), psycopg.connect(dsn) as conn:
        for concurrency in args.concurrency:
            # the API: each batch a POST with the worker's token, a patrol's batches in time order
            patrols = _ingest_patrols(conn, args.gps_patrols, started)
            ids = [p[0] for p in patrols]
            with app.app_context():
                book = replay.TokenBook(user_agent="bench/patrolbench.py")
                tokens = book.tokens_for([p[1] for p in patrols])
            walks = {p[0]: _walk_batches(p[2:], started, args.gps_batches) for p in patrols}
            jobs = [(f"{base_url}/api/v1/patrols/{p[0]}/points",
                     {"Authorization": f"Bearer {tokens[p[1]]}", "Content-Type": "application/json"},
                     json.dumps({"points": walks[p[0]][b]}).encode())
                    for b in range(args.gps_batches) for p in patrols]

            class Api:
                @staticmethod
                def state():
                    return requests.Session()

                def __call__(self, session, job):
                    answer = session.post(job[0], headers=job[1], data=job[2], timeout=60)
                    return answer.status_code == 200 and answer.json()["stored"] == BATCH

            say(f"GPS ingest at C={concurrency}: the API, {len(jobs)} batches of {BATCH} fixes over "
                f"{len(patrols)} patrols")
            seconds, latencies, errors = _run_threads(jobs, concurrency, Api())
            with app.app_context():
                book.revoke("bench_done")
            runs.append(_summary("api", concurrency, seconds, latencies, errors, _stored(conn, ids)))
            _delete_ingest_patrols(conn, ids)
            # plain SQL: the same batches into as many fresh patrols, a transaction each
            patrols = _ingest_patrols(conn, args.gps_patrols, started)
            ids = [p[0] for p in patrols]
            fresh = dict(zip(walks, ids, strict=True))
            jobs = [(fresh[old], {"t": [f["t"] for f in batch], "lon": [f["lon"] for f in batch],
                                  "lat": [f["lat"] for f in batch], "acc": [f["accuracy_m"] for f in batch]})
                    for b in range(args.gps_batches) for old, batches in walks.items() for batch in [batches[b]]]

            class Sql:
                @staticmethod
                def state():
                    return psycopg.connect(dsn)

                def __call__(self, connection, job):
                    connection.execute(_SQL_INSERT, {"id": job[0], **job[1]})
                    connection.commit()
                    return True

            say(f"GPS ingest at C={concurrency}: plain SQL, the same {len(jobs)} batches")
            seconds, latencies, errors = _run_threads(jobs, concurrency, Sql())
            runs.append(_summary("sql", concurrency, seconds, latencies, errors, _stored(conn, ids)))
            _delete_ingest_patrols(conn, ids)
            api, sql = runs[-2], runs[-1]
            say(f"    API {api['points_per_s']:,.0f} fixes/s (p99 {api['p99_ms']:.0f} ms a batch, {api['errors']} "
                f"errors); SQL {sql['points_per_s']:,.0f} fixes/s; API/SQL {api['points_per_s'] / sql['points_per_s']:.2f}")
    return {"runs": runs, "server_command": command, "patrols": args.gps_patrols, "batches": args.gps_batches,
            "batch": BATCH, "ratios": [{"concurrency": c, "throughput_ratio": a["points_per_s"] / s["points_per_s"]}
                                       for c, a, s in zip(args.concurrency, runs[0::2], runs[1::2], strict=True)]}


# ------------------------------------------------------------------ both

def measure(app: Flask, url: str, dsn: str, city_id: int, args, only: list[str]) -> dict:
    """The fixture, then the GPS ingest and the coverage as ``only`` asks; {"gps": …, "coverage": …}."""
    load_before = os.getloadavg()[0]
    out: dict = {}
    zone = app.config["TIMEZONE"]
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT b.id, b.name, b.path FROM regions b JOIN regions c ON c.id = %s "
                           "WHERE b.parent_id = c.id AND b.name = %s", (city_id, args.coverage_borough)).fetchone()
        if row is None:
            raise SystemExit(f"No borough {args.coverage_borough!r} under the bench city")
        borough = {"id": row[0], "name": row[1], "path": row[2]}
        day = datetime.now(ZoneInfo(zone)).date() - timedelta(days=10)
        fixture = ensure_fixture(conn, borough["path"], day, zone)
    if "gps" in only:
        out["gps"] = {"measured_at": _now(), "load_before": load_before, **measure_ingest(app, url, dsn, args),
                      "load_after": os.getloadavg()[0]}
    if "coverage" in only:
        load_before = os.getloadavg()[0]
        out["coverage"] = {"measured_at": _now(), "load_before": load_before, "borough": borough,
                           "fixture": {**fixture, "day": fixture["day"].isoformat()}, "fix_every_s": FIX_EVERY_S,
                           "walk_fixes": WALK_FIXES, "repeat": args.coverage_repeat,
                           **measure_coverage(app, dsn, borough, fixture, args.coverage_repeat),
                           "load_after": os.getloadavg()[0]}
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
