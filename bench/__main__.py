"""``python -m bench``: build (or reuse) NYC in the bench database, then measure locate and
reporting through the API against their raw SQL, the escalation sweep and push dispatcher
against set-based SQL and plain HTTP, the map's vector tiles against tipg, and a quarter's
evaluation figures against the SQL that reads the quarter's timeline, GPS ingest through the
API against plain SQL inserts and a day's patrol coverage against one plain buffer-and-
intersect statement, and Open311's reads and writes against plain SQL of the same rows, in the
same run, and a load test of a realistic mix at a city's morning peak (phones, supervisors, street
offices' maps, with the worker pushing to a fake FCM) step by step to its knee, and write
docs/BENCHMARKS.md.

    python -m bench [--only locate,report,escalation,tiles,stats,gps,coverage,open311,load] [--rebuild]
                    [--duration 15] [--warmup 3] [--concurrency 1,4] ...

The database is ``BENCH_DATABASE_URL`` or the embedded cluster's ``fengqiao_bench``.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import datetime, timezone

from server import create_app
from server.config import embedded_database_url

from . import (
    dataset, escalationbench, httpbench, loadbench, machine, open311bench, patrolbench, report, reportbench, say,
    sqlbench, statsbench, tilebench,
)

SECTIONS = ("locate", "report", "escalation", "tiles", "stats", "gps", "coverage", "open311", "load")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--rebuild", action="store_true", help="rebuild NYC even when the bench database has it")
    p.add_argument("--duration", type=int, default=15, help="seconds of each measured load run")
    p.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before each load run")
    p.add_argument("--concurrency", default="1,4", help="comma-separated client counts (pgbench and wrk alike)")
    p.add_argument("--reference-seconds", type=float, default=10, help="seconds of each sequential Python reference")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--worker-class", default="gthread", help="gunicorn worker class (gthread keeps connections alive)")
    p.add_argument("--threads", type=int, default=2, help="threads per gthread worker")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help="comma-separated benchmarks to run (locate, report, escalation, tiles, stats, gps, coverage, "
                        "open311, load); the others' last results stay in the doc")
    p.add_argument("--retry-share", type=float, default=0.05,
                   help="report: share of requests that re-send an earlier report byte for byte (a client retry)")
    p.add_argument("--escalation-incidents", type=int, default=escalationbench.INCIDENTS,
                   help="escalation: open incidents in the fixture")
    p.add_argument("--escalation-overdue", type=int, default=escalationbench.OVERDUE,
                   help="escalation: how many of them are overdue (the sweep escalates these)")
    p.add_argument("--pushes", type=int, default=escalationbench.PUSHES,
                   help="escalation: due pushes the dispatcher sends to the fake FCM")
    p.add_argument("--escalation-repeat", type=int, default=3,
                   help="escalation: runs of each measurement (the median run is reported, with every run's rate)")
    p.add_argument("--tile-zooms", default=",".join(str(z) for z in tilebench.ZOOMS),
                   help="tiles: comma-separated zooms")
    p.add_argument("--tiles-per-zoom", type=int, default=tilebench.TILES_PER_ZOOM,
                   help="tiles: distinct tiles a zoom (fewer where the city has fewer)")
    p.add_argument("--tile-rounds", type=int, default=tilebench.ROUNDS,
                   help="tiles: measured passes over each zoom's tiles (after one warm-up pass)")
    p.add_argument("--tile-seed", type=int, default=tilebench.SEED, help="tiles: seed of the tile sample")
    p.add_argument("--tile-timeout", type=float, default=20,
                   help="tiles: statement timeout of both servers' connections, seconds (a tile that takes longer "
                        "fails, and counts as failed)")
    p.add_argument("--tipg-jit", action="store_true",
                   help="tiles: leave tipg's connections with the database's jit setting (default: jit = off, as our "
                        "tile statements run)")
    p.add_argument("--no-tipg-regions", action="store_true",
                   help="tiles: skip tipg's regions tiles (the second peer)")
    p.add_argument("--no-screenshot", action="store_true", help="tiles: do not take docs/img/map.png")
    p.add_argument("--stats-incidents", type=int, default=statsbench.INCIDENTS,
                   help="stats: incidents (with their timelines) in the fixture")
    p.add_argument("--stats-repeat", type=int, default=statsbench.REPEAT,
                   help="stats: measured repetitions of each call and statement (after one warm-up)")
    p.add_argument("--gps-patrols", type=int, default=patrolbench.GPS_PATROLS,
                   help="gps: patrols sent batches (each side, each concurrency)")
    p.add_argument("--gps-batches", type=int, default=patrolbench.GPS_BATCHES,
                   help="gps: batches of 1,000 fixes a patrol, in time order")
    p.add_argument("--coverage-borough", default=patrolbench.BOROUGH,
                   help="coverage: the borough whose every cell gets a walker")
    p.add_argument("--coverage-repeat", type=int, default=patrolbench.REPEAT,
                   help="coverage: measured repetitions of each side (after one warm-up)")
    p.add_argument("--load-steps", default=",".join(f"{f:g}" for f in loadbench.STEP_FACTORS),
                   help="load: the steps, as shares of the target peak's people (streets brought in whole; above "
                        "1 everyone speeds up); 1 is the target peak, run for --load-seconds")
    p.add_argument("--load-step-seconds", type=int, default=90,
                   help="load: seconds of each step (the first one twice: it warms up)")
    p.add_argument("--load-seconds", type=int, default=240,
                   help="load: seconds at the target peak (its first minute left out: everyone arrives at once)")
    p.add_argument("--load-settle", type=int, default=20,
                   help="load: seconds left out at the start of each step (the people it adds are spawned)")
    p.add_argument("--load-floor-seconds", type=int, default=20,
                   help="load: seconds of each floor run (GET /healthz at 10, 30, 100 req/s and unpaced)")
    p.add_argument("--no-doc", action="store_true", help="do not rewrite docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    try:
        args.tile_zooms = [int(z) for z in args.tile_zooms.split(",") if z.strip()]
    except ValueError:
        p.error("--tile-zooms takes a comma-separated list of zooms")
    if not args.tile_zooms or not all(0 <= z <= 22 for z in args.tile_zooms) or args.tiles_per_zoom < 1 \
            or args.tile_rounds < 1 or args.tile_timeout <= 0:
        p.error("--tile-zooms from 0 to 22, --tiles-per-zoom and --tile-rounds at least 1")
    if not args.only or set(args.only) - set(SECTIONS):
        p.error(f"--only takes a comma-separated list of {', '.join(SECTIONS)}")
    if not 0 <= args.retry_share < 1:
        p.error("--retry-share is a share: 0 ≤ s < 1")
    try:
        args.load_steps = sorted({float(f) for f in args.load_steps.split(",") if f.strip()})
    except ValueError:
        p.error("--load-steps takes a comma-separated list of shares of the target peak")
    if not args.load_steps or min(args.load_steps) <= 0 or args.load_step_seconds < 10 or args.load_seconds < 10:
        p.error("--load-steps above 0, --load-step-seconds and --load-seconds at least 10")
    if not 0 < args.escalation_overdue <= args.escalation_incidents or args.pushes < 1 or args.escalation_repeat < 1:
        p.error("--escalation-overdue must be from 1 to --escalation-incidents, --pushes and --escalation-repeat "
                "at least 1")
    if args.stats_incidents < 1000 or args.stats_repeat < 1:
        p.error("--stats-incidents at least 1,000, --stats-repeat at least 1")
    return args


def database_url() -> str:
    """The bench database as a SQLAlchemy URL (psycopg 3 driver)."""
    url = os.environ.get("BENCH_DATABASE_URL") or embedded_database_url("fengqiao_bench")
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", url)


def prepare(url: str, rebuild: bool, reports: bool):
    """Migrate, build or reuse NYC, (re)set the bench administrator and, for the report
    benchmark, its grid workers and report points; returns (app, dataset, credentials, fixtures)."""
    # tokens the runner mints live as long as those of the bench's gunicorn (httpbench.gunicorn)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "ACCESS_TOKEN_TTL": 3600})
    with app.app_context():
        say("Migrating the bench database")
        dataset.migrate()
        data = dataset.ensure_dataset(rebuild)
        credentials = httpbench.ensure_admin(data.city_id)
        fixtures = dataset.ensure_report_fixtures(data.city_id) if reports else None
    return app, data, credentials, fixtures


def measure_locate(url: str, dsn: str, bbox, credentials, args) -> dict:
    """Raw SQL and API at each concurrency, back to back, so that each pair sees the same machine."""
    options = httpbench.ServerOptions(workers=args.workers, worker_class=args.worker_class, threads=args.threads)
    raw, api, floor = [], [], []
    with httpbench.gunicorn(url, options) as (base_url, command):
        token = httpbench.sign_in(base_url, *credentials)
        for concurrency in args.concurrency:
            say(f"Locate at C={concurrency}: raw SQL (pgbench), the API (wrk), then /healthz (wrk)")
            raw.append(sqlbench.run_pgbench(dsn, bbox, concurrency, args.duration, args.warmup))
            api.append(httpbench.run_wrk(base_url, bbox, token, concurrency, args.duration, args.warmup))
            floor.append(httpbench.run_wrk(base_url, bbox, token, concurrency, args.duration, args.warmup,
                                           httpbench.FLOOR_PATH))
        say("Sequential references from Python: psycopg, then requests")
        references = {"raw": sqlbench.run_psycopg(dsn, bbox, args.reference_seconds, args.warmup),
                      "api": httpbench.run_requests(base_url, bbox, token, args.reference_seconds, args.warmup)}
    return {"raw": [r.as_dict() for r in raw], "api": [r.as_dict() for r in api],
            "floor": [r.as_dict() for r in floor], "server_command": command,
            "reference": {side: r.as_dict() for side, r in references.items()}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = database_url()
    dsn = sqlbench.conninfo(url)
    app, data, credentials, fixtures = prepare(url, args.rebuild, "report" in args.only)
    sqlbench.vacuum_analyze(dsn)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results = report.carried_over(args.only)  # the last results of the benchmarks not run now
    results.update({
        "generated_at": now,
        "machine": {**results.get("machine", {}), **machine.describe(dsn)},
        "dataset": {"cells": data.cells, "bbox": data.bbox, "cached": data.cached, "build": data.build},
    })
    if "locate" in args.only:
        load_before = os.getloadavg()[0]
        locate = measure_locate(url, dsn, data.bbox, credentials, args)
        results["machine"].update(load_before=load_before, load_after=os.getloadavg()[0])
        results.update({
            "settings": {"duration_s": args.duration, "warmup_s": args.warmup, "reference_s": args.reference_seconds,
                         "concurrency": args.concurrency},
            "server": {"command": locate["server_command"], "workers": args.workers,
                       "worker_class": args.worker_class, "threads": args.threads},
            "raw": locate["raw"], "api": locate["api"], "floor": locate["floor"], "reference": locate["reference"],
            "ratios": report.locate_ratios(locate["raw"], locate["api"]),
            "locate_measured_at": now,
        })
    if "report" in args.only:
        results["report"] = reportbench.measure(app, url, dsn, fixtures, args)
        results["report"]["server"] = {"workers": args.workers, "worker_class": args.worker_class,
                                       "threads": args.threads}
    if "escalation" in args.only:  # after report: its runs empty the incidents, this one fills them
        results["escalation"] = escalationbench.measure(app, url, dsn, data.city_id, args)
    if "tiles" in args.only:  # the escalation fixture's incidents (rebuilt if the report benchmark emptied them)
        results["tiles"] = tilebench.measure(app, url, dsn, data.city_id, credentials, args)
    if "load" in args.only:  # over the incidents the table holds (after the two above: theirs); deletes its own
        results["load"] = loadbench.measure(app, url, dsn, data.city_id, args)
    if "stats" in args.only:  # last: its incidents replace the open ones of the three above (they rebuild theirs)
        results["stats"] = statsbench.measure(app, url, dsn, data.city_id, args)
    if "gps" in args.only or "coverage" in args.only:  # their own patrols and points: nothing of the others'
        results.update(patrolbench.measure(app, url, dsn, data.city_id, args, args.only))
    if "open311" in args.only:  # its writes and the peer's are deleted afterwards: the others' fixtures stay
        results["open311"] = open311bench.measure(app, url, dsn, data.city_id, args)
    report.write_json(results)
    if not args.no_doc:
        report.write_doc(results)
        say(f"Wrote {report.DOC}")
    print(report.summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
