"""Report an incident over HTTP against the SQL it costs at the least, in the same run.

Target (DESIGN.md): reporting over HTTP (gunicorn, keep-alive) sustains ≥ 400 reports/s
on the 2-core machine with p99 < 100 ms, 0 errors, and 0 duplicates under client retries.

- *API*: gunicorn as for locate; wrk (``bench/report.lua``) posts ``POST /api/v1/incidents``
  as the bench's grid workers, each request from a random point of a worker's cell with that
  worker's bearer token (minted by the runner, one short session each, written with the
  points into a Lua data file), a fresh client_uuid per report and a share of retries that
  re-send an earlier request byte for byte. After the run, SQL counts what was stored.
- *Raw SQL*: pgbench runs, per transaction, what a report must do at the least: draw a
  sample point, locate its live cell with the report service's own predicate
  (``server.services.regions._CELL_SQL``), insert the incident and its timeline event.

The bench's incidents are deleted before every measured run (the bench database holds no
others), so each run starts from the same empty table.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from flask import Flask

from server.services import replay
from server.services.regions import _CELL_SQL  # the report service's own locate statement

from . import OUT_DIR, httpbench, say, sqlbench
from .dataset import POINTS_TABLE, ReportFixtures
from .stats import RunResult

REPORT_PATH = "/api/v1/incidents"
LUA_SCRIPT = Path(__file__).with_name("report.lua")
DATA_FILE = OUT_DIR / "report-data.lua"


# ------------------------------------------------------------------ the database side

def _settle(conn: psycopg.Connection, timeout_s: float = 10) -> None:
    """Wait until no other session of this database is inside a transaction: the requests still
    in flight when a load generator stopped finish first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL").fetchone()[0]:
        time.sleep(0.2)


def reset_incidents(dsn: str) -> None:
    """Delete every incident and what hangs on it (timeline, keys, followers…): the bench's own."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for attempt in range(3):
            _settle(conn)
            try:
                conn.execute("TRUNCATE incidents RESTART IDENTITY CASCADE")
                return
            except psycopg.errors.DeadlockDetected:  # a straggling request took a lock first
                if attempt == 2:
                    raise


def stored_counts(dsn: str, run_id: int | None = None, settle_s: float = 10) -> dict:
    """What the database holds after a run: incidents, distinct client UUIDs, report events, keys.

    With ``run_id`` (report.lua's client UUIDs start with it in hex), only the run's own
    incidents are counted; ``earlier_run`` counts the others: reports of the warm-up still
    in flight when the incidents were emptied, stored just after. One statement (one
    snapshot), once no other session is inside a transaction, repeated until two readings
    half a second apart agree.
    """
    def mine(alias: str) -> str:
        return f"{alias}.client_uuid::text LIKE %(prefix)s" if run_id is not None else "true"

    query = f"""
        SELECT count(*) FILTER (WHERE {mine('n')}), count(DISTINCT client_uuid) FILTER (WHERE {mine('n')}),
               count(*) FILTER (WHERE NOT {mine('n')}),
               (SELECT count(*) FROM incident_events e JOIN incidents i ON i.id = e.incident_id
                WHERE e.action = 'report' AND {mine('i')}),
               (SELECT count(*) FROM idempotency_keys k JOIN incidents i ON i.id = k.incident_id WHERE {mine('i')})
        FROM incidents n"""
    params = {"prefix": f"{run_id:08x}-%"} if run_id is not None else {}
    deadline = time.monotonic() + settle_s
    with psycopg.connect(dsn, autocommit=True) as conn:
        _settle(conn, settle_s)
        counts = conn.execute(query, params).fetchone()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            again, counts = counts, conn.execute(query, params).fetchone()
            if again == counts:
                break
    incidents, uuids, earlier, events, keys = counts
    return {"incidents": incidents, "distinct_client_uuids": uuids, "report_events": events,
            "idempotency_keys": keys, "earlier_run": earlier}


def _sql_one_line(statement: str) -> str:
    """A statement on one line without its -- comments (pgbench's \\gset ends the line it is on)."""
    return " ".join(re.sub(r"--[^\n]*", "", statement).split())


def pgbench_script(points: int) -> str:
    """One report at the least: a random sample point, its cell, the incident and its event."""
    return (
        f"\\set i random(1, {points})\n"
        f"SELECT lon, lat, user_id, scope, category_id, level, priority FROM {POINTS_TABLE} WHERE id = :i \\gset\n"
        "BEGIN;\n"
        f"{_sql_one_line(_CELL_SQL.text)} \\gset cell_\n"
        "INSERT INTO incidents (client_uuid, category_id, status, level, region_id, region_path, geom, "
        "description, priority, source, reporter_id, occurred_at, reported_at, due_at, updated_at) "
        "VALUES (gen_random_uuid(), :category_id, 'reported', :level, :cell_id, :cell_path, "
        "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'pgbench report', :priority, 'phone', :user_id, "
        "now(), now(), now() + interval '3 days', now()) RETURNING id \\gset incident_\n"
        "INSERT INTO incident_events (incident_id, at, actor_id, action, to_status, to_level, data) "
        "VALUES (:incident_id, now(), :user_id, 'report', 'reported', :level, '{}');\n"
        "END;\n"
    )


def run_pgbench(dsn: str, fixtures: ReportFixtures, concurrency: int, seconds: int, warmup: int) -> dict:
    reset_incidents(dsn)
    run = sqlbench.run_pgbench_script(dsn, "report", pgbench_script(fixtures.points), concurrency, seconds,
                                      warmup, before_measure=lambda: reset_incidents(dsn))
    stored = stored_counts(dsn)
    return {**run.as_dict(), "stored": stored}


# ------------------------------------------------------------------ the API side

def _points(dsn: str) -> list[tuple[str, str, int, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f"SELECT lon, lat, user_id, category FROM {POINTS_TABLE} ORDER BY id").fetchall()
    # repr() keeps every digit: the API gets the very point pgbench uses
    return [(repr(lon), repr(lat), user_id, category) for lon, lat, user_id, category in rows]


def write_lua_data(tokens: dict[int, str], points: list[tuple[str, str, int, str]]) -> None:
    """The Lua data file report.lua reads at init: tokens by index, points with their token's index."""
    index = {user_id: i for i, user_id in enumerate(sorted(tokens), 1)}
    lines = ["-- written by bench/reportbench.py for bench/report.lua: access tokens and report points",
             "tokens = {"] + [f'  "{tokens[u]}",' for u in sorted(tokens)] + ["}", "points = {"]
    lines += [f'  {{"{lon}", "{lat}", {index[user_id]}, "{category}"}},' for lon, lat, user_id, category in points]
    lines.append("}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    DATA_FILE.write_text("\n".join(lines) + "\n")


def _wrk_command(base_url: str, concurrency: int, seconds: int, run_id: int, retry_share: float) -> list[str]:
    # one thread per connection: report.lua matches each answer to the request it answers
    return ["wrk", "-t", str(concurrency), "-c", str(concurrency), "-d", f"{seconds}s", "--timeout", "10s",
            "-s", str(LUA_SCRIPT), base_url + REPORT_PATH, "--", str(DATA_FILE), str(run_id), f"{retry_share:g}"]


def _run_wrk(command: list[str]) -> tuple[subprocess.CompletedProcess, dict]:
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return done, json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))


def run_wrk(app: Flask, dsn: str, base_url: str, fixtures: ReportFixtures, concurrency: int, seconds: int,
            warmup: int, retry_share: float) -> dict:
    """Warm up, empty the incidents, run wrk for ``seconds``; then count what SQL holds."""
    with app.app_context():
        book = replay.TokenBook(user_agent="bench/report.lua")
        tokens = book.tokens_for(fixtures.worker_ids)
    try:
        write_lua_data(tokens, _points(dsn))
        reset_incidents(dsn)
        run_id = int(time.time()) & 0x7FFFFFFF
        if warmup:
            _run_wrk(_wrk_command(base_url, concurrency, warmup, run_id, retry_share))
        reset_incidents(dsn)
        command = _wrk_command(base_url, concurrency, seconds, run_id + 1, retry_share)
        shown = " ".join(command).replace(base_url, "http://127.0.0.1:$PORT").replace(str(OUT_DIR), "bench/out")
        shown = shown.replace(str(LUA_SCRIPT), "bench/report.lua").replace(f" {run_id + 1} ", " $RUN ")
        say(f"  {shown}")
        done, summary = _run_wrk(command)
        (OUT_DIR / f"wrk-report-c{concurrency}.txt").write_text(done.stdout + done.stderr)
        stored = stored_counts(dsn, run_id + 1)
    finally:
        with app.app_context():
            book.revoke("bench_done")
    return _api_result(summary, stored, concurrency, shown)


def _api_result(summary: dict, stored: dict, concurrency: int, command: str) -> dict:
    seconds = summary["duration_us"] / 1e6
    transport = sum(summary["errors"][k] for k in ("connect", "read", "write", "timeout"))
    errors = transport + summary["other_status"]
    # client_uuid is unique in incidents, so a second row for one UUID cannot exist; what could
    # go wrong is a stored incident that no fresh request explains, or a retry answered as new.
    duplicates = (stored["incidents"] - stored["distinct_client_uuids"]
                  + max(0, stored["incidents"] - summary["fresh"]) + summary["retry_created"])
    run = RunResult(client="wrk", concurrency=concurrency, seconds=seconds, requests=summary["requests"],
                    rps=summary["requests"] / seconds, mean_ms=summary["mean_us"] / 1000,
                    p50_ms=summary["p50_us"] / 1000, p95_ms=summary["p95_us"] / 1000,
                    p99_ms=summary["p99_us"] / 1000, errors=errors, command=command)
    return {**run.as_dict(), "reports_per_s": summary["created"] / seconds, "fresh": summary["fresh"],
            "retries": summary["retries"], "created": summary["created"], "replayed": summary["replayed"],
            "fresh_replayed": summary["fresh_replayed"], "retry_created": summary["retry_created"],
            "first_error": summary["first_error"], "duplicates": duplicates, "stored": stored}


# ------------------------------------------------------------------ both, at each concurrency

TARGET = {"reports_per_s": 400, "p99_ms": 100, "errors": 0, "duplicates": 0}


def targets(api: list[dict], raw: list[dict]) -> list[dict]:
    """Each API run against the design's targets, and its throughput as a share of pgbench's."""
    raw_by_c = {r["concurrency"]: r for r in raw}
    rows = []
    for a in api:
        r = raw_by_c.get(a["concurrency"])
        checks = {"reports_per_s": a["reports_per_s"] >= TARGET["reports_per_s"],
                  "p99_ms": a["p99_ms"] < TARGET["p99_ms"], "errors": a["errors"] == 0,
                  "duplicates": a["duplicates"] == 0}
        rows.append({"concurrency": a["concurrency"], "reports_per_s": a["reports_per_s"], "p99_ms": a["p99_ms"],
                     "errors": a["errors"], "duplicates": a["duplicates"], "checks": checks,
                     "met": all(checks.values()),
                     "throughput_ratio": a["reports_per_s"] / r["rps"] if r else None,
                     "latency_ratio": a["mean_ms"] / r["mean_ms"] if r else None})
    return rows


def measure(app: Flask, url: str, dsn: str, fixtures: ReportFixtures, args) -> dict:
    """pgbench then wrk at each concurrency, back to back, against one gunicorn."""
    options = httpbench.ServerOptions(workers=args.workers, worker_class=args.worker_class, threads=args.threads)
    raw, api = [], []
    load_before = os.getloadavg()[0]
    with httpbench.gunicorn(url, options) as (base_url, command):
        for concurrency in args.concurrency:
            say(f"Report at C={concurrency}: raw SQL locate-and-insert (pgbench), then the API (wrk)")
            raw.append(run_pgbench(dsn, fixtures, concurrency, args.duration, args.warmup))
            api.append(run_wrk(app, dsn, base_url, fixtures, concurrency, args.duration, args.warmup,
                               args.retry_share))
            a = api[-1]
            say(f"    {a['reports_per_s']:.0f} reports/s, p99 {a['p99_ms']:.1f} ms, {a['errors']} errors, "
                f"{a['replayed']} replays, {a['duplicates']} duplicates")
    shutil.copy(OUT_DIR / "gunicorn.log", OUT_DIR / "gunicorn-report.log")
    reset_incidents(dsn)
    measured_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"measured_at": measured_at, "raw": raw, "api": api, "targets": targets(api, raw),
            "server_command": command, "retry_share": args.retry_share, "workers": len(fixtures.worker_ids),
            "points": fixtures.points, "categories": fixtures.categories, "load_before": load_before,
            "load_after": os.getloadavg()[0],
            "settings": {"duration_s": args.duration, "warmup_s": args.warmup, "concurrency": args.concurrency}}
