"""Open311 GeoReport v2 (docs/OPEN311.md) through gunicorn against what PostgreSQL itself does
for the same rows, in the same run.

- *Writing, API*: gunicorn as for locate; C client threads (``requests``, keep-alive) post
  ``POST /open311/v2/requests.json`` form-encoded with the key of a client app issued for the
  run (``open311_clients.issue`` as the system, ``rate_per_minute`` 100,000), each form
  distinct (its description numbered), ``service_code`` one of the public leaf categories
  without required attributes in turn, ``lat``/``long`` a point inside one of POINTS live grid
  cells of the bench city (one point a cell, cells in a stable pseudo-random order). Each POST
  authenticates the key, counts the call (upsert, committed), takes the form's advisory lock,
  locates the cell, inserts the incident, its ``report`` event, the ``open311_requests`` row,
  and the supervisors' inbox and outbox rows.
- *Writing, peer*: C psycopg connections, per request one statement inserting an equivalent
  incident row (the same point, cell, category, level, priority and description) and its
  ``report`` event, committed: the least PostgreSQL does to store a request.
- *Retries*: the API run's forms posted again, byte for byte (answered 200 from the stored
  answer, no new case).
- *Reading*: ``GET /open311/v2/requests.json`` and ``.xml`` without filters (the last 90 days,
  the 1,000 newest requests of public categories), by C client threads, after the writes:
  the newest rows are then the requests just posted, each with its ``report`` step and its
  ``open311_requests`` row. Peers: the service's own statement (``_REQUESTS_SQL`` with the
  list's filter, exactly as ``list_requests`` executes it, caught on its way to psycopg: the
  laterals for the step, the department and the supervising region) by psycopg, and a
  minimal SELECT of the same incidents joined to their categories (no laterals), same
  window, filter, order and LIMIT: what PostgreSQL needs to hand over 1,000 rows. The same
  ids in the same order on every side are checked once before the runs.

Each side runs ``--warmup`` seconds, then ``--duration`` seconds measured. The peer's
incidents are deleted after each peer run; at the end the API's incidents (with their
events, inbox and outbox rows and ``open311_requests`` rows), the run's client and its usage
are deleted and the touched tables vacuumed, so the other benchmarks' fixtures are left as
they were. When an API/peer throughput ratio is below PROFILE_BELOW, that side is profiled
once in-process (cProfile, the app's test client) to say where the time goes.
"""
from __future__ import annotations

import cProfile
import itertools
import json
import os
import pstats
import shutil
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from urllib.parse import urlencode
from xml.etree import ElementTree

import psycopg
import requests
from flask import Flask

from sqlalchemy import event
from werkzeug.datastructures import MultiDict

from server.cli.progress import progress_bar
from server.domain.open311 import PERSONAL_KINDS
from server.domain.permissions import SYSTEM
from server.extensions import db
from server.services import open311 as open311_reads
from server.services import open311_clients
from server.services.open311 import MAX_REQUESTS, MAX_SPAN

from . import OUT_DIR, httpbench, say
from .stats import summarise
from .tilebench import code_state

CLIENT_NAME = "bench open311"
MARK = "bench open311"  # every description the bench writes starts with it (API and peer)
PEER_MARK = MARK + " peer"
MERGED_INDEX = "bench_open311_merged_into"  # made for the clean-up only (see _delete_incidents)
POINTS = 2000  # live cells posted from, one point each
RATE = 100_000  # calls a minute: the most a client may be given; the bench never reaches it
PROFILE_BELOW = 0.1  # profile a side in-process when its API/peer throughput ratio is below this
PROFILE_CALLS = 20
REQUESTS_PATH = "/open311/v2/requests"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

# The peer of a read: the same incidents (public categories, not of a personal kind: a list
# shows none of those), their category, nothing else (no laterals).
READ_PEER_SQL = """
SELECT i.id, i.status, i.description, i.address, i.reported_at, i.updated_at, i.due_at,
       ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, c.code, c.name
FROM incidents i
JOIN categories c ON c.id = i.category_id AND c.public
WHERE i.reported_at >= %(start)s AND i.reported_at <= %(end)s AND c.kind <> ALL(%(personal)s)
ORDER BY i.reported_at DESC, i.id DESC
LIMIT %(limit)s
"""
PEER_PARAMS = {"personal": sorted(PERSONAL_KINDS), "limit": MAX_REQUESTS}

# The peer of a write: the incident and its report event, one statement, committed.
WRITE_PEER_SQL = """
WITH i AS (
    INSERT INTO incidents (client_uuid, category_id, status, level, region_id, region_path, geom, description,
                           priority, source, occurred_at, reported_at, due_at, updated_at)
    VALUES (gen_random_uuid(), %(category)s, 'reported', %(level)s, %(cell)s, %(path)s,
            ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(description)s, %(priority)s, 'open311',
            now(), now(), now() + interval '1 day', now())
    RETURNING id, level)
INSERT INTO incident_events (incident_id, at, action, to_status, to_level, data)
SELECT id, now(), 'report', 'reported', level, '{}' FROM i
"""


def service_statement(app: Flask) -> tuple[str, dict]:
    """The very statement and parameters ``GET requests`` without filters executes (the service
    called in an app context, the statement caught on its way to psycopg), so that this side
    follows the service when it changes. ``start`` and ``end`` are set afresh on each call."""
    caught: list[tuple[str, dict]] = []

    def catch(conn, cursor, statement, parameters, context, executemany):
        if "FROM incidents i" in statement and isinstance(parameters, dict) and "start" in parameters:
            caught.append((statement, dict(parameters)))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", catch)
        try:
            open311_reads.list_requests(MultiDict(), False, datetime.now(timezone.utc))
        finally:
            event.remove(db.engine, "before_cursor_execute", catch)
            db.session.remove()
    if len(caught) != 1:
        raise RuntimeError(f"list_requests ran {len(caught)} statements on incidents with a window; expected 1")
    statement, params = caught[0]
    return statement, {k: v for k, v in params.items() if k not in ("start", "end")}


# ------------------------------------------------------------------ fixture and clean-up

def _points(conn: psycopg.Connection, city_id: int) -> list[tuple]:
    """(lon, lat, cell id, cell path) of a point inside each of POINTS live cells of the city."""
    return conn.execute("""
        SELECT ST_X(p.geom), ST_Y(p.geom), g.id, g.path
        FROM (SELECT g.id, g.path, g.geom, g.code FROM regions g JOIN regions c ON c.id = %(city)s
              WHERE g.level = 'grid' AND g.retired_at IS NULL AND g.path LIKE c.path || '%%'
              ORDER BY md5(g.code) LIMIT %(n)s) g
        CROSS JOIN LATERAL (SELECT ST_GeometryN(ST_GeneratePoints(g.geom, 1, 1 + abs(hashtext(g.code) %% 1000000)), 1)
                            AS geom) p
        ORDER BY md5(g.code)
    """, {"city": city_id, "n": POINTS}).fetchall()


def _categories(conn: psycopg.Connection) -> list[tuple]:
    """(id, code, start level, default priority) of the live public leaves a form needs no attribute for."""
    return conn.execute("""
        SELECT c.id, c.code, c.start_level, c.default_priority FROM categories c JOIN categories p ON p.id = c.parent_id
        WHERE c.public AND c.retired_at IS NULL AND p.retired_at IS NULL
          AND NOT jsonb_path_exists(c.attributes, '$[*] ? (@.required == true)')
        ORDER BY c.code
    """).fetchall()


def _delete_incidents(conn: psycopg.Connection, description_like: str) -> int:
    """Delete the bench's Open311 incidents whose description is LIKE ``description_like``, with
    their inbox and outbox rows, ``open311_requests`` rows and timeline; how many.

    ``incidents.merged_into_id`` has no index: the foreign key's check of each deleted row would
    read the whole table (hours for a run's rows among a million). A partial index of the
    non-null values (empty here, made in milliseconds) serves the check while the rows go, and is
    dropped after: the schema is left as it was."""
    conn.execute(f"CREATE INDEX IF NOT EXISTS {MERGED_INDEX} ON incidents (merged_into_id) "
                 "WHERE merged_into_id IS NOT NULL")
    conn.commit()
    try:
        return _delete_marked(conn, description_like)
    finally:
        conn.rollback()
        conn.execute(f"DROP INDEX IF EXISTS {MERGED_INDEX}")
        conn.commit()


def _delete_marked(conn: psycopg.Connection, description_like: str) -> int:
    conn.execute("CREATE TEMP TABLE bench_open311_gone ON COMMIT DROP AS "
                 "SELECT id FROM incidents WHERE source = 'open311' AND description LIKE %s", (description_like,))
    conn.execute("""DELETE FROM outbox x USING notifications n, bench_open311_gone g
                    WHERE x.notification_id = n.id AND n.incident_id = g.id""")
    conn.execute("DELETE FROM notifications n USING bench_open311_gone g WHERE n.incident_id = g.id")
    conn.execute("DELETE FROM open311_updates u USING bench_open311_gone g WHERE u.incident_id = g.id")
    conn.execute("DELETE FROM open311_requests q USING bench_open311_gone g WHERE q.incident_id = g.id")
    conn.execute("DELETE FROM incident_events e USING bench_open311_gone g WHERE e.incident_id = g.id")
    gone = conn.execute("DELETE FROM incidents i USING bench_open311_gone g WHERE i.id = g.id").rowcount
    conn.commit()
    return gone


ANALYZE = ("ANALYZE incidents, incident_events, incident_milestones, notifications, outbox, open311_requests, "
           "open311_usage, open311_clients")


def clean_up(dsn: str) -> dict:
    """Everything the bench wrote (this run's or an interrupted run's): incidents, the client
    apps named CLIENT_NAME with their requests and usage; then VACUUM ANALYZE what was touched."""
    with psycopg.connect(dsn) as conn:
        incidents = _delete_incidents(conn, MARK + "%")
        conn.execute("DELETE FROM open311_requests q USING open311_clients k WHERE k.id = q.client_id AND k.name = %s",
                     (CLIENT_NAME,))
        clients = conn.execute("DELETE FROM open311_clients WHERE name = %s", (CLIENT_NAME,)).rowcount
        conn.commit()
    if incidents or clients:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM " + ANALYZE)
    return {"incidents": incidents, "clients": clients}


def _stored(dsn: str, client_id: int) -> dict:
    """What the API's writes left in the database (this run's client)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("""
            WITH q AS (SELECT incident_id FROM open311_requests WHERE client_id = %(client)s)
            SELECT (SELECT count(*) FROM q), (SELECT count(*) FROM q WHERE incident_id IS NOT NULL),
                   (SELECT count(*) FROM incident_events e JOIN q ON q.incident_id = e.incident_id),
                   (SELECT count(*) FROM notifications n JOIN q ON q.incident_id = n.incident_id),
                   (SELECT count(*) FROM outbox x JOIN notifications n ON n.id = x.notification_id
                    JOIN q ON q.incident_id = n.incident_id),
                   (SELECT coalesce(sum(calls), 0) FROM open311_usage WHERE client_id = %(client)s)
        """, {"client": client_id}).fetchone()
    return dict(zip(("requests", "incidents", "events", "inbox", "outbox", "calls_counted"), row, strict=True))


# ------------------------------------------------------------------ the load

def run_load(label: str, client: str, concurrency: int, seconds: float, warmup: float, open_state, send,
             close_state=lambda state: state.close()) -> dict:
    """C threads, each with its own ``open_state()``, calling ``send(state, n)`` (``n`` a number
    drawn from one counter) back to back: ``warmup`` seconds, then ``seconds`` measured.
    ``send`` returns (status, detail): a 2xx status is a success, anything else is counted and
    its first ``detail`` kept. Returns the RunResult's dict with the statuses."""
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter = Counter()
    details: dict = {}
    clock = {}
    start = threading.Barrier(concurrency + 1, action=lambda: clock.update(t0=time.perf_counter()))
    last = [0.0]
    failures: list[BaseException] = []

    def loop():
        state = open_state()
        try:
            start.wait()
            warm_end, end = clock["t0"] + warmup, clock["t0"] + warmup + seconds
            while (t := time.perf_counter()) < end:
                status, detail = send(state, next(counter))
                done = time.perf_counter()
                if t < warm_end:
                    continue
                with lock:
                    latencies.append((done - t) * 1000)
                    statuses[status] += 1
                    if not (isinstance(status, int) and 200 <= status < 300) and status not in details:
                        details[status] = detail
                    last[0] = max(last[0], done)
        except BaseException as exc:  # a failing client thread must not leave the others waiting
            failures.append(exc)
            start.abort()
        finally:
            close_state(state)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    with progress_bar("s") as progress:
        while any(t.is_alive() for t in threads):
            elapsed = min(time.perf_counter() - clock.get("t0", time.perf_counter()), warmup + seconds)
            progress(int(elapsed), int(warmup + seconds), f"{label} C={concurrency}: {len(latencies):,} measured")
            time.sleep(0.5)
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    measured = last[0] - (clock["t0"] + warmup)
    errors = sum(n for s, n in statuses.items() if not (isinstance(s, int) and 200 <= s < 300))
    run = summarise(client, concurrency, measured, latencies, errors=errors)
    return {"side": label, **run.as_dict(), "statuses": {str(s): n for s, n in sorted(statuses.items(), key=str)},
            "non_2xx": {str(s): d for s, d in details.items()}}


def _session() -> requests.Session:
    return requests.Session()


def _body(answer: requests.Response) -> str:
    return answer.text[:500]


def _http(call):
    """(status, body if not 2xx) of one HTTP call; a transport failure is counted, not raised."""
    try:
        answer = call()
    except requests.RequestException as exc:
        return "transport error", f"{type(exc).__name__}: {exc}"[:500], None
    return answer.status_code, None if 200 <= answer.status_code < 300 else _body(answer), answer


class Writes:
    """The forms of the write runs: form ``n`` is point ``n mod POINTS``, category ``n mod
    categories``, description numbered by the run and ``n``."""

    def __init__(self, key: str, points: list[tuple], categories: list[tuple]):
        self.key, self.points, self.categories = key, points, categories
        self.sent: dict[bytes, bytes] = {}  # every body answered 201, with its answer (for the retries)
        self.lock = threading.Lock()

    def fields(self, run: str, n: int) -> dict:
        lon, lat, cell, path = self.points[n % len(self.points)]
        category = self.categories[n % len(self.categories)]
        return {"lon": lon, "lat": lat, "cell": cell, "path": path, "category": category,
                "description": f"{MARK} {run} #{n}: 路边垃圾堆放，请尽快清理 (a citizen's report, numbered)"}

    def api(self, base_url: str, run: str):
        url = f"{base_url}{REQUESTS_PATH}.json"

        def send(session: requests.Session, n: int):
            f = self.fields(run, n)
            body = urlencode({"api_key": self.key, "service_code": f["category"][1], "lat": repr(f["lat"]),
                              "long": repr(f["lon"]), "description": f["description"]}).encode()
            status, detail, answer = _http(lambda: session.post(url, data=body, headers=FORM, timeout=60))
            if status == 201:
                with self.lock:
                    self.sent[body] = answer.content
            return status, detail
        return send

    def peer(self, run: str):
        def send(conn: psycopg.Connection, n: int):
            f = self.fields(run, n)
            category = f["category"]
            conn.execute(WRITE_PEER_SQL, {"category": category[0], "level": category[2], "cell": f["cell"],
                                          "path": f["path"], "lon": f["lon"], "lat": f["lat"],
                                          "description": PEER_MARK + f["description"][len(MARK):],
                                          "priority": category[3]})
            conn.commit()
            return 201, None
        return send

    def retries(self, base_url: str):
        """The bodies answered 201, again in turn; a retry must be 200 with the first answer's bytes."""
        url = f"{base_url}{REQUESTS_PATH}.json"
        bodies = list(self.sent.items())
        same = Counter()

        def send(session: requests.Session, n: int):
            body, first = bodies[n % len(bodies)]
            status, detail, answer = _http(lambda: session.post(url, data=body, headers=FORM, timeout=60))
            with self.lock:
                same[answer is not None and answer.content == first] += 1
            return status, detail
        return send, same


def measure_writes(dsn: str, base_url: str, writes: Writes, args) -> tuple[list[dict], list[dict]]:
    """API then peer at each concurrency (the peer's incidents deleted after its run); then the
    retries at each concurrency."""
    runs, retries = [], []
    for concurrency in args.concurrency:
        say(f"Open311 POST at C={concurrency}: the API ({args.warmup} s warm-up, {args.duration} s)")
        runs.append(run_load("api", "requests", concurrency, args.duration, args.warmup, _session,
                             writes.api(base_url, f"api-c{concurrency}")))
        say(f"Open311 POST at C={concurrency}: the peer (incident + event, plain psycopg)")
        runs.append(run_load("peer", "psycopg", concurrency, args.duration, args.warmup,
                             lambda: psycopg.connect(dsn), writes.peer(f"peer-c{concurrency}")))
        with psycopg.connect(dsn) as conn:
            runs[-1]["incidents_deleted"] = _delete_incidents(conn, PEER_MARK + "%")
        _say_pair(runs[-2], runs[-1], "requests/s")
    for concurrency in args.concurrency:
        say(f"Open311 POST retries at C={concurrency}: {len(writes.sent):,} forms answered 201, posted again")
        send, same = writes.retries(base_url)
        run = run_load("retry", "requests", concurrency, args.duration, args.warmup, _session, send)
        run["same_bytes"], run["other_bytes"] = same[True], same[False]  # warm-up included
        retries.append(run)
        say(f"    {run['rps']:,.0f} retries/s, p99 {run['p99_ms']:.1f} ms, statuses {run['statuses']}")
    return runs, retries


def _say_pair(api: dict, peer: dict, unit: str) -> None:
    say(f"    API {api['rps']:,.1f} {unit} (p50 {api['p50_ms']:.1f}, p99 {api['p99_ms']:.1f} ms, statuses "
        f"{api['statuses']}); peer {peer['rps']:,.1f}; API/peer {api['rps'] / peer['rps']:.3f}")


# ------------------------------------------------------------------ the reads

def _window() -> dict:
    now = datetime.now(timezone.utc)
    return {"start": now - MAX_SPAN, "end": now}


def read_sides(base_url: str, dsn: str, statement: tuple[str, dict]) -> dict:
    """Each side of a read as (client, open_state, send)."""

    def http(fmt: str):
        url = f"{base_url}{REQUESTS_PATH}.{fmt}"

        def send(session: requests.Session, n: int):
            status, detail, _ = _http(lambda: session.get(url, timeout=60))
            return status, detail
        return send

    def sql(text: str, params: dict):
        def send(conn: psycopg.Connection, n: int):
            rows = conn.execute(text, {**_window(), **params}).fetchall()
            return (200 if len(rows) == MAX_REQUESTS else f"{len(rows)} rows"), f"{len(rows)} rows"
        return send

    def connect():
        return psycopg.connect(dsn, autocommit=True)

    return {
        "api json": ("requests", _session, http("json")),
        "api xml": ("requests", _session, http("xml")),
        "statement": ("psycopg", connect, sql(*statement)),
        "peer": ("psycopg", connect, sql(READ_PEER_SQL, PEER_PARAMS)),
    }


def check_reads(base_url: str, dsn: str, statement: tuple[str, dict]) -> dict:
    """One answer of each side: the same ids in the same order; what the 1,000 rows hold; sizes."""
    json_answer = requests.get(f"{base_url}{REQUESTS_PATH}.json", timeout=60)
    xml_answer = requests.get(f"{base_url}{REQUESTS_PATH}.xml", timeout=60)
    if json_answer.status_code != 200 or xml_answer.status_code != 200:
        raise RuntimeError(f"GET requests answered {json_answer.status_code} / {xml_answer.status_code}: "
                           f"{json_answer.text[:300]} {xml_answer.text[:300]}")
    items = json_answer.json()
    xml_ids = [node.findtext("service_request_id") for node in ElementTree.fromstring(xml_answer.content)]
    with psycopg.connect(dsn) as conn:
        window = _window()
        ours = [str(r[0]) for r in conn.execute(statement[0], {**statement[1], **window}).fetchall()]
        peer = [str(r[0]) for r in conn.execute(READ_PEER_SQL, {**PEER_PARAMS, **window}).fetchall()]
        sources = conn.execute("""
            SELECT i.source, count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM incident_events e
                                                                     WHERE e.incident_id = i.id))
            FROM incidents i WHERE i.id = ANY(%s) GROUP BY 1 ORDER BY 2 DESC""",
                               ([int(item["service_request_id"]) for item in items],)).fetchall()
        in_window = conn.execute("""
            SELECT count(*), min(i.reported_at), max(i.reported_at) FROM incidents i
            JOIN categories c ON c.id = i.category_id AND c.public
            WHERE i.reported_at >= %(start)s AND i.reported_at <= %(end)s AND c.kind <> ALL(%(personal)s)""",
                                 {**window, **PEER_PARAMS}).fetchone()
    ids = [item["service_request_id"] for item in items]
    differ = {name: sorted(set(ids) ^ set(other))[:10] for name, other in
              (("xml", xml_ids), ("statement", ours), ("peer", peer)) if other != ids}
    if differ:
        say(f"    the sides do not read the same rows (ids in one list but not the other): {differ}")
    return {
        "rows": len(items), "same_ids": not differ, "differ": differ,
        "json_bytes": len(json_answer.content), "xml_bytes": len(xml_answer.content),
        "with_description": sum(item["description"] is not None for item in items),
        "with_status_notes": sum(item["status_notes"] is not None for item in items),
        "with_agency": sum(item["agency_responsible"] is not None for item in items),
        "sources": [{"source": r[0], "rows": r[1], "with_timeline": r[2]} for r in sources],
        "public_in_window": in_window[0], "window_oldest": in_window[1].isoformat(timespec="seconds"),
        "window_newest": in_window[2].isoformat(timespec="seconds"),
    }


def explain(dsn: str, statement: tuple[str, dict], rows: int = MAX_REQUESTS) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of the service's statement, once (bench/out/open311-explain.json):
    execution and planning time, JIT, parallel workers, and the nodes run once a row (the
    laterals and joins under the LIMIT: the outermost node run at least half as many times as
    there are rows), each with its time summed over its runs."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement[0],
                            {**statement[1], **_window()}).fetchone()[0][0]
        jit = conn.execute("SHOW jit").fetchone()[0]
    (OUT_DIR / "open311-explain.json").write_text(json.dumps(plan, indent=1))
    per_row, workers = [], []

    def name(node: dict) -> str:
        return " ".join(filter(None, (node["Node Type"], node.get("Relation Name"), node.get("Index Name"))))

    def walk(node: dict, looped: bool) -> None:
        if "Workers Launched" in node:
            workers.append({"node": name(node), "launched": node["Workers Launched"],
                            "first_row_ms": node["Actual Startup Time"]})
        if not looped and node.get("Actual Loops", 1) >= rows // 2:
            below, inner = node, []
            while below.get("Plans") and below["Node Type"] in ("Limit", "Sort", "Memoize", "Nested Loop"):
                below = below["Plans"][0]
                inner.append(name(below))
            per_row.append({"node": " → ".join([name(node), *inner]), "loops": node["Actual Loops"],
                            "ms": node["Actual Total Time"] * node["Actual Loops"]})
            looped = True
        for child in node.get("Plans", []):
            walk(child, looped)

    walk(plan["Plan"], False)
    return {"execution_ms": plan["Execution Time"], "planning_ms": plan["Planning Time"],
            "limit_ms": plan["Plan"]["Actual Total Time"], "jit": jit,
            "jit_ms": (plan.get("JIT") or {}).get("Timing", {}).get("Total"), "workers": workers,
            "per_row": sorted(per_row, key=lambda n: n["ms"], reverse=True), "file": "bench/out/open311-explain.json"}


def measure_reads(base_url: str, dsn: str, statement: tuple[str, dict], args) -> list[dict]:
    """At each concurrency, each side in turn: the API (JSON, XML), the statement, the peer."""
    runs = []
    sides = read_sides(base_url, dsn, statement)
    for concurrency in args.concurrency:
        for side, (client, open_state, send) in sides.items():
            say(f"Open311 GET requests at C={concurrency}: {side}")
            runs.append(run_load(side, client, concurrency, args.duration, args.warmup, open_state, send))
            r = runs[-1]
            say(f"    {r['rps']:,.1f} requests/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                f"statuses {r['statuses']}")
    return runs


# ------------------------------------------------------------------ ratios and the profile

def ratios(runs: list[dict], pairs: list[tuple[str, str]]) -> list[dict]:
    """``side``/``peer`` throughput and p50 latency at each concurrency, for each (side, peer) pair."""
    by = {(r["side"], r["concurrency"]): r for r in runs}
    rows = []
    for side, peer in pairs:
        for c in sorted({r["concurrency"] for r in runs}):
            a, p = by.get((side, c)), by.get((peer, c))
            if a and p:
                rows.append({"side": side, "peer": peer, "concurrency": c, "throughput_ratio": a["rps"] / p["rps"],
                             "p50_ratio": a["p50_ms"] / p["p50_ms"]})
    return rows


# the functions whose cumulative time says where a request's time goes: (label, file suffix, name)
_WAIT = ("waiting for PostgreSQL (psycopg's wait)", "psycopg/connection.py", "wait")
PROFILE_SPOTS = {
    "GET": (
        ("the view", "server/api/open311.py", "top"),
        ("list_requests: the statement, its rows, the views", "server/services/open311.py", "list_requests"),
        ("Session.execute: the statement run, its rows received", "sqlalchemy/orm/session.py", "execute"),
        _WAIT,
        ("Result.all: rows into Row objects", "sqlalchemy/engine/result.py", "all"),
        ("_request_view: 1,000 rows into Open311 dicts", "server/services/open311.py", "_request_view"),
        ("_local: times into the city's zone", "server/services/open311.py", "_local"),
        ("wire.render: the answer written", "server/open311/wire.py", "render"),
        ("wire._plain: datetimes into text", "server/open311/wire.py", "_plain"),
        ("json.dumps", "json/__init__.py", "dumps"),
        ("wire.to_xml", "server/open311/wire.py", "to_xml"),
    ),
    "POST": (
        ("the view", "server/api/open311.py", "post"),
        ("authenticate: the key, the rate counted and committed", "server/services/open311_clients.py",
         "authenticate"),
        ("submit_request", "server/services/open311_intake.py", "submit_request"),
        ("regions.cell_at: locating the cell", "server/services/regions.py", "cell_at"),
        ("open_incident: the incident and its event", "server/services/incidents.py", "open_incident"),
        ("notify: inbox and outbox rows", "server/services/notify.py", "notify"),
        ("Session.flush", "sqlalchemy/orm/session.py", "flush"),
        ("Session.commit", "sqlalchemy/orm/session.py", "commit"),
        _WAIT,
    ),
}


def _spots(stats: pstats.Stats, total: float, spots) -> list[dict]:
    found = []
    for label, suffix, name in spots:
        entries = [value for key, value in stats.stats.items() if key[0].endswith(suffix) and key[2] == name]
        if not entries:
            continue
        # the outermost of same-named functions (Session.commit calls SessionTransaction.commit): the largest
        # cumulative time; cProfile's cumulative time of a recursive function counts its outermost calls only
        cumulative = max(value[3] for value in entries)
        found.append({"what": label, "seconds": cumulative, "share": cumulative / total})
    return found


def profile(app: Flask, method: str, path: str, forms=None, calls: int = PROFILE_CALLS) -> dict:
    """``calls`` requests through the app's test client in this process under cProfile (one
    warm-up first): the time a request, where it goes, the top functions by own time, and the
    SQL statements and commits a request."""
    client = app.test_client()
    send = (lambda n: client.get(path)) if method == "GET" else (lambda n: client.post(path, data=forms(n)))
    answer = send(-1)
    if answer.status_code >= 300:
        raise RuntimeError(f"{method} {path} answered {answer.status_code} in process: {answer.get_data()[:300]}")
    counts = Counter()

    def statement(*_):
        counts["statements"] += 1

    def commit(*_):
        counts["commits"] += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    profiler = cProfile.Profile()
    statuses = Counter()
    started = time.perf_counter()
    try:
        profiler.enable()
        for n in range(calls):
            statuses[send(n).status_code] += 1
        profiler.disable()
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
    wall = time.perf_counter() - started
    name = f"open311-{method.lower()}{path.replace('/', '-')}.prof"
    profiler.dump_stats(OUT_DIR / name)
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    own = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:12]
    return {"method": method, "path": path, "calls": calls, "statuses": {str(k): v for k, v in statuses.items()},
            "ms_per_call": 1000 * wall / calls, "profiled_ms_per_call": 1000 * total / calls,
            "statements_per_call": counts["statements"] / calls, "commits_per_call": counts["commits"] / calls,
            "spots": _spots(stats, total, PROFILE_SPOTS[method]), "file": f"bench/out/{name}",
            "top_own": [{"function": f"{_short(key[0])}:{key[1]}({key[2]})", "calls": value[1],
                         "own_ms_per_call": 1000 * value[2] / calls, "share": value[2] / total}
                        for key, value in own]}


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# ------------------------------------------------------------------ all of it

def measure(app: Flask, url: str, dsn: str, city_id: int, args) -> dict:
    """Writes, retries, reads through one gunicorn; profiles where a ratio is low; clean up."""
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    left = clean_up(dsn)
    if left["incidents"] or left["clients"]:
        say(f"Open311: removed what an earlier run left: {left['incidents']:,} incidents, {left['clients']} clients")
    with psycopg.connect(dsn) as conn:
        points, categories = _points(conn, city_id), _categories(conn)
        fixture_incidents = conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
    with app.app_context():
        issued = open311_clients.issue(SYSTEM, {"name": CLIENT_NAME, "contact": "bench/open311bench.py",
                                                "rate_per_minute": RATE})
    writes = Writes(issued["api_key"], points, categories)
    options = httpbench.ServerOptions(workers=args.workers, worker_class=args.worker_class, threads=args.threads)
    result: dict = {}
    try:
        with httpbench.gunicorn(url, options) as (base_url, command):
            write_runs, retry_runs = measure_writes(dsn, base_url, writes, args)
            stored = _stored(dsn, issued["id"])
            say(f"Open311: stored by the API's writes: {stored}; ANALYZE of the tables written (as autovacuum "
                "would after so many new rows), so the reads are planned on what the tables hold")
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(ANALYZE)
            say("Open311 GET requests: checking that every side reads the same 1,000 rows")
            statement = service_statement(app)
            checks = check_reads(base_url, dsn, statement)
            say(f"    {checks}")
            plan = explain(dsn, statement)
            say(f"    EXPLAIN ANALYZE of the service's statement: {plan['execution_ms']:.1f} ms (jit {plan['jit']}"
                f"{'' if plan['jit_ms'] is None else ', %.1f ms of it' % plan['jit_ms']}); per row: "
                + "; ".join(f"{n['node']} ×{n['loops']:,} {n['ms']:.1f} ms" for n in plan["per_row"])
                + "".join(f"; {w['node']}: {w['launched']} workers, first row at {w['first_row_ms']:.1f} ms"
                          for w in plan["workers"]))
            read_runs = measure_reads(base_url, dsn, statement, args)
        shutil.copy(OUT_DIR / "gunicorn.log", OUT_DIR / "gunicorn-open311.log")
        write_ratios = ratios(write_runs, [("api", "peer")])
        read_ratios = ratios(read_runs, [("api json", "peer"), ("api xml", "peer"), ("statement", "peer"),
                                         ("api json", "statement")])
        profiles = {}
        if any(r["throughput_ratio"] < PROFILE_BELOW for r in read_ratios if r["peer"] == "peer"
               and r["side"].startswith("api")):
            say(f"Open311: profiling GET requests.json in process ({PROFILE_CALLS} calls)")
            profiles["read"] = profile(app, "GET", f"{REQUESTS_PATH}.json")
        if any(r["throughput_ratio"] < PROFILE_BELOW for r in write_ratios):
            say(f"Open311: profiling POST requests.json in process ({PROFILE_CALLS} calls)")

            def forms(n: int) -> dict:
                f = writes.fields("profile", n + 1)
                return {"api_key": writes.key, "service_code": f["category"][1], "lat": repr(f["lat"]),
                        "long": repr(f["lon"]), "description": f["description"]}
            profiles["write"] = profile(app, "POST", f"{REQUESTS_PATH}.json", forms)
        for p in profiles.values():
            say(f"    {p['method']} {p['ms_per_call']:.1f} ms a call in process, {p['statements_per_call']:.1f} "
                f"statements, {p['commits_per_call']:.1f} commits; "
                + "; ".join(f"{s['what']} {100 * s['share']:.0f} %" for s in p["spots"]))
        result = {
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "load_before": load_before,
            "server_command": command,
            "server": {"workers": args.workers, "worker_class": args.worker_class, "threads": args.threads},
            "settings": {"duration_s": args.duration, "warmup_s": args.warmup, "concurrency": args.concurrency},
            "code": code_state(), "points": len(points), "categories": [c[1] for c in categories],
            "fixture_incidents": fixture_incidents, "rate_per_minute": RATE,
            "writes": write_runs, "retries": retry_runs, "stored": stored, "reads": read_runs, "checks": checks, "explain": plan,
            "write_ratios": write_ratios, "read_ratios": read_ratios, "profiles": profiles,
            "read_statement_sql": " ".join(statement[0].split()),
            "read_peer_sql": " ".join(READ_PEER_SQL.split()),
            "write_peer_sql": " ".join(WRITE_PEER_SQL.split()),
        }
    finally:
        say("Open311: deleting the bench's incidents, requests and client app; VACUUM ANALYZE")
        removed = clean_up(dsn)
        say(f"    {removed['incidents']:,} incidents, {removed['clients']} client app removed")
    with psycopg.connect(dsn) as conn:
        after = conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
    result.update(removed=removed, fixture_incidents_after=after, load_after=os.getloadavg()[0],
                  seconds=time.perf_counter() - started)
    (OUT_DIR / "open311.json").write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str))
    return result
