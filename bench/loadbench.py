"""The load test (``--only load``): a city's morning peak of phones, supervisors and street-office
map screens against gunicorn on the bench database, with ``flask worker`` sending the pushes to
a fake FCM, driven by locust (``bench/loadmix.py``); step by step up to the knee, then at the
target peak; a floor of the same harness; what it all wrote; then everything the run added is
deleted.

The model (``CITY``, ``MODEL``) is explained and defended in docs/BENCHMARKS.md ("The load
test"): the bench's NYC territory as a city of 8,000 grid workers (one per ~400 households),
7,200 of them on duty at the morning peak with a phone each; the 2,167 communities' supervisors
at their desks; one map screen in each of the 59 street offices. Each person acts in turns at
the model's pace; a step of the load is a number of streets at their peak, all their people.

- *People*: the phones are grid workers made for the run (``bench-load-phone-NNNN``), 3 or 4 a
  community (7,200 in all), each primary on a cell of its community with one Android phone
  registered for pushes; the supervisors are the escalation benchmark's
  (``bench-community-<code>``, one a community, each with a phone); the screens are street users
  made for the run (``bench-load-street-<code>``). Every one has its own access token (a sign-in
  session minted by the runner, as ``flask incidents replay`` does) and each phone starts with a
  sync cursor of the run's start (made by the service's own encoder: the phone synced just
  before), as phones are at the peak.
- *The server*: gunicorn as for the other benchmarks (2 workers, gthread, 2 threads, keep-alive);
  ``flask worker`` beside it (``bench/loadworker.py``: the real command, its FcmSender pointed at
  ``tests/fakefcm.py``'s fake in a process of its own); all on the same two cores as PostgreSQL
  and locust, whose CPU is measured per process group for every step.
- *After*: the incidents the phones reported, with everything that hangs on them (timeline, tasks,
  inbox, pushes, keys), the run's users, devices and sessions are deleted and the tables vacuumed:
  the fixtures of the other benchmarks are left as they were.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psycopg
from flask import Flask

from server.config import PROJECT_ROOT
from server.domain.permissions import Actor
from server.services import replay
from server.services.sync import KINDS, _Cursor, encode_cursor

from . import OUT_DIR, httpbench, say
from .escalationbench import SUPERVISOR_PREFIX, FakeFcmProcess, _ensure_supervisors, serve_fake

LOCUST = PROJECT_ROOT / ".venv" / "bin" / "locust"
LOCUSTFILE = Path(__file__).with_name("loadmix.py")
DATA_FILE = OUT_DIR / "load-data.json"
RECORD_FILE = OUT_DIR / "load-records.json"
CHART = PROJECT_ROOT / "docs" / "img" / "load.svg"
PHONE_PREFIX = "bench-load-phone-"
SCREEN_PREFIX = "bench-load-street-"
MARK = "bench load:"  # every description the phones write starts with it
USER_AGENT = "bench/loadmix"  # the sign-in sessions minted for the run
NO_PASSWORD = "!bench load: tokens are minted by the runner"

# The city at its morning peak (08:30–09:30): who is online.
CITY = {
    "households": 3_200_000,  # NYC, the bench's territory
    "households_per_worker": 400,  # urban grids are drawn at 300–500 households, one full-time worker each
    "workers": 8000,
    "on_duty": 0.9,  # share of the workers on duty with the app open at the peak
    "phones": 7200,
    "phones_per_community": 3,  # at least; the rest of the 7,200 as a fourth phone in some
}

# How each person acts at the peak: a turn every ``turn_s`` seconds (see bench/loadmix.py).
MODEL = {
    "phone": {
        "turn_s": 300,  # sync every 5 minutes while on duty (docs/SYNC.md: "every few minutes")
        "report_per_turn": 1 / 12,  # one report an hour: the morning patrol's finds
        "retry_share": 0.05,  # a report sent twice: the first answer was lost
    },
    "supervisor": {
        "turn_s": 180,  # a look at the queues every 3 minutes
        "acts_per_queue": 3,  # at most this many new (or resolved) cases handled a turn
        "reject_share": 0.05,  # 不予立案
    },
    "screen": {
        "turn_s": 5,  # map.js polls /map/changes every 5 s when the server has no stream to spare
        "pan_s": 60,  # a pan or zoom a minute on average
        "zooms": [12, 13, 14, 15, 16],
        "zoom_weights": [0.1, 0.2, 0.3, 0.25, 0.15],
        "canvas_px": [1000, 700],  # the map beside the side list, at 1366 × 768
    },
}
CATEGORY_LEVELS = ("grid", "community")  # cases the community supervisors take
GRID_SHARE = 0.7  # of the reports, those of categories that start at the grid
DESCRIPTIONS = ("路面坑洼，影响通行", "垃圾堆放未清运", "井盖松动", "占道经营", "共享单车乱停放", "路灯不亮",
                "违规张贴小广告", "绿化带损毁", "噪音扰民", "楼道堆物，存在消防隐患")
KNEE = {"p99_ms": 1000, "late_share": 0.05, "min_samples": 20}
STEP_FACTORS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
POOL = 64  # keep-alive connections from the load generator (a reverse proxy's upstream pool)
TIMEOUT_S = 30
SPAWN_RATE = 1000
TARGET_SETTLE_S = 60  # left out at the start of the target peak: 8,900 people arrive at once; screens open in a minute
FLOOR_RATES = (10, 30, 100)  # req/s the floor is paced at (the steps' rates fall among them)


# ------------------------------------------------------------------ the people

def clean_up(dsn: str, vacuum: bool = True) -> dict:
    """Delete what a run added (this one's or an interrupted one's): the phones' incidents with
    what hangs on them, the run's users, their devices, sessions and inbox, the supervisors'
    sessions minted for the run; VACUUM ANALYZE what was touched."""
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TEMP TABLE bench_load_users ON COMMIT DROP AS SELECT id FROM users "
                     "WHERE username LIKE %s OR username LIKE %s", (PHONE_PREFIX + "%", SCREEN_PREFIX + "%"))
        conn.execute("CREATE TEMP TABLE bench_load_gone ON COMMIT DROP AS SELECT i.id FROM incidents i "
                     "JOIN bench_load_users u ON u.id = i.reporter_id")
        gone = {}
        for name, sql in (
            ("pushes", """DELETE FROM outbox x USING notifications n WHERE x.notification_id = n.id
                          AND (n.incident_id IN (SELECT id FROM bench_load_gone)
                               OR n.user_id IN (SELECT id FROM bench_load_users))"""),
            ("inbox", """DELETE FROM notifications n WHERE n.incident_id IN (SELECT id FROM bench_load_gone)
                         OR n.user_id IN (SELECT id FROM bench_load_users)"""),
            ("keys", "DELETE FROM idempotency_keys k WHERE k.incident_id IN (SELECT id FROM bench_load_gone) "
                     "OR k.user_id IN (SELECT id FROM bench_load_users)"),
            ("followers", "DELETE FROM incident_followers f WHERE f.incident_id IN (SELECT id FROM bench_load_gone)"),
            ("tasks", "DELETE FROM tasks t WHERE t.incident_id IN (SELECT id FROM bench_load_gone)"),
            ("events", "DELETE FROM incident_events e WHERE e.incident_id IN (SELECT id FROM bench_load_gone)"),
            ("incidents", "DELETE FROM incidents i WHERE i.id IN (SELECT id FROM bench_load_gone)"),
            ("devices", "DELETE FROM devices d WHERE d.user_id IN (SELECT id FROM bench_load_users)"),
            ("duty", "DELETE FROM worker_duty w WHERE w.user_id IN (SELECT id FROM bench_load_users)"),
            ("sessions", "DELETE FROM auth_sessions s WHERE s.user_agent = %s "
                         "OR s.user_id IN (SELECT id FROM bench_load_users)"),
            ("assignments", "DELETE FROM grid_assignments a WHERE a.user_id IN (SELECT id FROM bench_load_users)"),
            ("users", "DELETE FROM users u WHERE u.id IN (SELECT id FROM bench_load_users)"),
        ):
            gone[name] = conn.execute(sql, (USER_AGENT,) if "%s" in sql else None).rowcount
        conn.commit()
    if vacuum and any(gone.values()):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE incidents, incident_events, incident_milestones, tasks, notifications, "
                         "outbox, outbox_attempts, idempotency_keys, incident_followers, users, devices, "
                         "auth_sessions, grid_assignments")
    return gone


def _streets(conn: psycopg.Connection, city_id: int) -> list[tuple]:
    """(id, code, name, path) of the city's live streets in a stable pseudo-random order: the
    order in which the steps bring them in."""
    return conn.execute("""
        SELECT s.id, s.code, s.name, s.path FROM regions s JOIN regions c ON c.id = %s
        WHERE s.level = 'street' AND s.retired_at IS NULL AND s.path LIKE c.path || '%%' ORDER BY md5(s.code)
    """, (city_id,)).fetchall()


def _phone_counts(conn: psycopg.Connection, city_id: int, phones: int) -> dict[int, int]:
    """Phones per community: CITY's base in each (at most its free cells), the rest as one more in
    communities with room, in a stable pseudo-random order."""
    rows = conn.execute("""
        SELECT c.id, count(g.id) AS free FROM regions c JOIN regions city ON city.id = %s
        JOIN regions g ON g.parent_id = c.id AND g.level = 'grid' AND g.retired_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM grid_assignments a WHERE a.region_id = g.id AND a.duty = 'primary')
        WHERE c.level = 'community' AND c.retired_at IS NULL AND c.path LIKE city.path || '%%'
        GROUP BY c.id, c.code ORDER BY md5(c.code)
    """, (city_id,)).fetchall()
    counts = {cid: min(CITY["phones_per_community"], free) for cid, free in rows}
    left = phones - sum(counts.values())
    for cid, free in rows:
        if left <= 0:
            break
        if free > counts[cid]:
            counts[cid] += 1
            left -= 1
    if left > 0:
        raise RuntimeError(f"not enough free cells for {phones} phones")
    return counts


def make_people(dsn: str, city_id: int) -> dict:
    """The run's phones and street users (made afresh), the escalation benchmark's community
    supervisors (made if missing); returns them, street by street, with what each needs."""
    with psycopg.connect(dsn) as conn:
        supervisors, _ = _ensure_supervisors(conn, city_id)
        counts = _phone_counts(conn, city_id, CITY["phones"])
        # each phone: a free cell of its community (stable order), a user scoped to the community
        conn.execute("""
            CREATE TEMP TABLE bench_load_cells ON COMMIT DROP AS
            SELECT row_number() OVER (ORDER BY c.community_id, g.code) AS n, c.community_id, g.id AS cell_id
            FROM unnest(%(ids)s::int[], %(ns)s::int[]) AS c(community_id, n)
            CROSS JOIN LATERAL (
                SELECT g.id, g.code FROM regions g
                WHERE g.parent_id = c.community_id AND g.level = 'grid' AND g.retired_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM grid_assignments a WHERE a.region_id = g.id AND a.duty = 'primary')
                ORDER BY md5(g.code) LIMIT c.n) g
        """, {"ids": list(counts), "ns": list(counts.values())})
        conn.execute(f"""
            INSERT INTO users (username, display_name, role, region_id, password_hash, is_active, version,
                               created_at, updated_at)
            SELECT '{PHONE_PREFIX}' || lpad(n::text, 4, '0'), '负载测试网格员 ' || n, 'grid_worker', community_id,
                   %s, true, 1, now(), now()
            FROM bench_load_cells ORDER BY n
        """, (NO_PASSWORD,))
        conn.execute(f"""
            INSERT INTO grid_assignments (user_id, region_id, duty, created_at)
            SELECT u.id, c.cell_id, 'primary', now() FROM bench_load_cells c
            JOIN users u ON u.username = '{PHONE_PREFIX}' || lpad(c.n::text, 4, '0')
        """)
        conn.execute(f"""
            INSERT INTO devices (user_id, token, token_kind, platform, app_version, created_at, last_seen_at)
            SELECT u.id, 'bench-load-' || encode(sha256(convert_to(u.username, 'UTF8')), 'hex'),
                   'registration_token', 'android', 'bench', now(), now()
            FROM users u WHERE u.username LIKE '{PHONE_PREFIX}%%'
        """)
        conn.execute(f"""
            INSERT INTO users (username, display_name, role, region_id, password_hash, is_active, version,
                               created_at, updated_at)
            SELECT '{SCREEN_PREFIX}' || s.code, '负载测试街道 ' || s.code, 'street', s.id, %s, true, 1, now(), now()
            FROM regions s JOIN regions c ON c.id = %s
            WHERE s.level = 'street' AND s.retired_at IS NULL AND s.path LIKE c.path || '%%'
        """, (NO_PASSWORD, city_id))
        conn.commit()
        phones = conn.execute(f"""
            SELECT u.id, u.region_id, r.path, a.region_id AS cell_id, street.id AS street_id,
                   (SELECT array_agg(ARRAY[ST_X(d.geom), ST_Y(d.geom)])
                    FROM ST_Dump(ST_GeneratePoints(g.geom, 8, u.id)) d) AS points,
                   (SELECT token FROM devices v WHERE v.user_id = u.id) AS device
            FROM users u JOIN regions r ON r.id = u.region_id
            JOIN grid_assignments a ON a.user_id = u.id AND a.duty = 'primary'
            JOIN regions g ON g.id = a.region_id
            JOIN regions street ON street.id = r.parent_id
            WHERE u.username LIKE '{PHONE_PREFIX}%%' ORDER BY u.id
        """).fetchall()
        sups = conn.execute(f"""
            SELECT u.id, u.region_id, r.path, r.parent_id AS street_id FROM users u JOIN regions r ON r.id = u.region_id
            WHERE u.username LIKE '{SUPERVISOR_PREFIX}%%' AND u.is_active ORDER BY u.id
        """).fetchall()
        screens = conn.execute(f"""
            SELECT u.id, u.region_id, r.path,
                   (SELECT array_agg(ARRAY[ST_X(p), ST_Y(p)]) FROM (
                        SELECT ST_PointOnSurface(g.geom) AS p FROM regions g
                        WHERE g.level = 'grid' AND g.retired_at IS NULL AND g.path LIKE r.path || '%%'
                        ORDER BY md5(g.code) LIMIT 40) x) AS centres
            FROM users u JOIN regions r ON r.id = u.region_id WHERE u.username LIKE '{SCREEN_PREFIX}%%' ORDER BY u.id
        """).fetchall()
        streets = _streets(conn, city_id)
        categories = conn.execute("""
            SELECT code, start_level FROM categories
            WHERE parent_id IS NOT NULL AND retired_at IS NULL AND NOT requires_after_photo
              AND start_level = ANY(%s) AND NOT jsonb_path_exists(attributes, '$[*] ? (@.required == true)')
            ORDER BY code
        """, (list(CATEGORY_LEVELS),)).fetchall()
        for table in ("users", "grid_assignments", "devices"):
            conn.execute(f"ANALYZE {table}")
        conn.commit()
    return {"phones": phones, "supervisors": sups, "screens": screens, "streets": streets,
            "categories": categories, "supervisors_ensured": supervisors}


def _xmin(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return int(conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()[0])


def quiet_instant(dsn: str) -> datetime:
    """An instant at which nothing open in the database is due: a minute before the earliest
    resolve deadline, unreminded yellow instant or acknowledge deadline (see bench/loadworker.py)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("""
            SELECT least((SELECT min(due_at) FROM incidents WHERE status NOT IN ('closed', 'rejected', 'merged',
                                                                               'suspended', 'resolved')),
                         (SELECT min(yellow_at) FROM incidents WHERE status NOT IN ('closed', 'rejected', 'merged',
                                                                                  'suspended', 'resolved')
                                                                 AND reminded_stage < stage_no),
                         (SELECT min(ack_deadline) FROM tasks WHERE status = 'open'),
                         now()) - interval '1 minute'
        """).fetchone()
    return row[0]


def data_file(app: Flask, dsn: str, base_url: str, people: dict, args, run_id: str,
              push_port: int) -> tuple[dict, replay.TokenBook]:
    """The locust data file: every person street by street with their token (and a phone's cursor
    and points, a screen's places), the model, the steps and the knee's rules."""
    ids = [p[0] for p in people["phones"]] + [s[0] for s in people["supervisors"]] + [s[0] for s in people["screens"]]
    with app.app_context():
        book = replay.TokenBook(user_agent=USER_AGENT)
        tokens = {}
        for i in range(0, len(ids), 2000):  # one commit a chunk
            tokens.update(book.tokens_for(ids[i:i + 2000]))
        xmin = _xmin(dsn)
        caught_up = _Cursor(positions={kind: (xmin, 0) for kind in KINDS}, first="")
        cursors = {p[0]: encode_cursor(Actor(user_id=p[0], role="grid_worker", scope_path=p[2]), caught_up)
                   for p in people["phones"]}
    by_street: dict[int, list[dict]] = defaultdict(list)
    screen_of = {s[1]: s for s in people["screens"]}
    street_order = [s[0] for s in people["streets"]]
    for street_id in street_order:
        s = screen_of.get(street_id)
        if s is not None:
            by_street[street_id].append({"kind": "screen", "user_id": s[0], "token": tokens[s[0]],
                                         "centres": s[3]})
    for u in people["supervisors"]:
        by_street[u[3]].append({"kind": "supervisor", "user_id": u[0], "token": tokens[u[0]]})
    for p in people["phones"]:
        by_street[p[4]].append({"kind": "phone", "user_id": p[0], "token": tokens[p[0]], "cursor": cursors[p[0]],
                                "points": p[5], "device": p[6]})
    ordered, cumulative = [], [0]
    for street_id in street_order:
        ordered += by_street[street_id]
        cumulative.append(len(ordered))
    kinds_by_streets = {kind: [0] for kind in MODEL}
    for street_id in street_order:
        for kind, counts in kinds_by_streets.items():
            counts.append(counts[-1] + sum(1 for x in by_street[street_id] if x["kind"] == kind))
    phones_by_streets = kinds_by_streets["phone"]
    steps = plan_steps(args.load_steps, phones_by_streets, args.load_step_seconds, args.load_seconds)
    codes = [c[0] for c in people["categories"]]
    grid = [c for c, level in people["categories"] if level == "grid"]
    weights = [(GRID_SHARE / len(grid)) if level == "grid" else ((1 - GRID_SHARE) / (len(codes) - len(grid)))
               for _, level in people["categories"]]
    data = {
        "base_url": base_url, "mark": f"{MARK} {run_id}", "pool": POOL, "timeout_s": TIMEOUT_S, "push_port": push_port,
        "spawn_rate": SPAWN_RATE, "settle_s": args.load_settle, "target_settle_s": TARGET_SETTLE_S, "model": MODEL,
        "knee": KNEE,
        "people": ordered, "people_by_streets": cumulative, "phones_by_streets": phones_by_streets,
        "kinds_by_streets": kinds_by_streets,
        "phone_ids": [p[0] for p in people["phones"]], "categories": codes, "category_weights": weights,
        "descriptions": list(DESCRIPTIONS), "steps": steps["plan"], "target_step": steps["target"],
    }
    DATA_FILE.write_text(json.dumps(data, ensure_ascii=False))
    return data, book


def plan_steps(factors: list[float], phones_by_streets: list[int], seconds: int, target_seconds: int) -> dict:
    """Each factor as the fewest streets whose phones make at least that share of the city's;
    factors above 1 keep every street and speed everyone up. The target (1.0) runs longer."""
    total = phones_by_streets[-1]
    plan = []
    for f in factors:
        if f > 1:
            step = {"streets": len(phones_by_streets) - 1, "rate": f}
        else:
            k = next(i for i, n in enumerate(phones_by_streets) if n >= f * total - 1e-9 and i > 0)
            step = {"streets": k, "rate": 1.0}
        share = phones_by_streets[step["streets"]] / total * step["rate"]
        step.update(factor=round(share, 4), label=f"{share:.2f}x", seconds=seconds)
        if abs(f - 1.0) < 1e-9:
            step.update(target=True, seconds=target_seconds, label="target 1.00x")
        if not plan or plan[-1]["streets"] != step["streets"] or plan[-1]["rate"] != step["rate"]:
            plan.append(step)
    # after the knee, the steps left are skipped but the target peak (if asked for) still runs
    target = next((dict(s) for s in plan if s.get("target")), None)
    if plan:  # the first step also warms up: the server, the caches, the closed loop
        plan[0]["seconds"] += seconds
        plan[0]["warmup_s"] = seconds
    return {"plan": plan, "target": target}


# ------------------------------------------------------------------ the fake FCM, telling the phones

def _forwarding_fake(pipe, backlog: int, directory: str, port: int) -> None:
    """tests/fakefcm.py's FakeFcm in a process of its own (as the escalation benchmark runs it),
    which also sends each push's registration token in a UDP datagram to the load generator on
    ``port``: the phone it was for wakes up, as a phone does on a push (docs/SYNC.md: sync after a
    push). Commands from the runner: ``received`` (every push's message id, the token requests,
    the unauthorised requests), ``stop``."""
    import socket
    from dataclasses import dataclass

    from tests.fakefcm import SEND_PATH, FakeFcm

    @dataclass
    class Forwarding(FakeFcm):
        def _answer(self, method, path, headers, body):
            answer = super()._answer(method, path, headers, body)
            if answer[0] == 200 and SEND_PATH.match(path):
                token = json.loads(body)["message"].get("token") or ""
                out.sendto(token.encode(), ("127.0.0.1", port))
            return answer

    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    serve_fake(pipe, Forwarding(backlog=backlog), directory)


class LoadFakeFcm(FakeFcmProcess):
    """The runner's handle on the forwarding fake (``FakeFcmProcess``'s, with a UDP port to tell)."""

    def __init__(self, port: int, backlog: int = 4096):
        import multiprocessing
        directory = OUT_DIR / "fakefcm"
        directory.mkdir(parents=True, exist_ok=True)
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._process = ctx.Process(target=_forwarding_fake, args=(child, backlog, str(directory), port),
                                    name="bench-load-fakefcm")
        self._process.start()
        self.url, self.service_account = self._pipe.recv()


def _free_udp_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ CPU per process group

def _ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def _postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip().startswith("postgres"):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def _machine_busy() -> int:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values) - values[3] - values[4]  # all but idle and iowait


class CpuSampler:
    """CPU seconds used by each process group (cumulative), sampled every ``every_s`` seconds with
    the wall-clock time: locust, gunicorn (master and workers), flask worker, the fake FCM,
    PostgreSQL (every postgres process of the machine), and the whole machine."""

    def __init__(self, groups: dict, every_s: float = 1.0):
        self.groups, self.every_s = groups, every_s
        self.samples: list[tuple[float, dict]] = []
        self._stop = threading.Event()
        self._hz = os.sysconf("SC_CLK_TCK")
        self._seen: dict[int, int] = {}  # pid → last ticks (a process that exits keeps what it used)
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-cpu")

    def _group_pids(self) -> dict[str, list[int]]:
        return {name: find() for name, find in self.groups.items()}

    def sample(self) -> None:
        totals = {}
        for name, pids in self._group_pids().items():
            total = 0
            for pid in pids:
                ticks = _ticks(pid)
                key = (name, pid)
                self._seen[key] = max(self._seen.get(key, 0), ticks)
            total = sum(t for (g, _), t in self._seen.items() if g == name)
            totals[name] = total / self._hz
        totals["machine"] = _machine_busy() / self._hz
        self.samples.append((time.time(), totals))

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def share(self, start: float, end: float) -> dict:
        """Each group's CPU over [start, end] as a share of the machine's cores (1.0 = every core)."""
        times = [t for t, _ in self.samples]
        a = self.samples[max(0, min(len(times) - 1, int(np.searchsorted(times, start))))]
        b = self.samples[max(0, min(len(times) - 1, int(np.searchsorted(times, end)) - 1))]
        seconds = max(1e-9, b[0] - a[0])
        cores = os.cpu_count() or 1
        shares = {name: (b[1][name] - a[1][name]) / seconds / cores for name in b[1]}
        known = sum(v for k, v in shares.items() if k != "machine")
        shares["other"] = max(0.0, shares["machine"] - known)
        return shares


# ------------------------------------------------------------------ the runs

def _env(url: str) -> dict:
    return {**os.environ, "DATABASE_URL": url, "FENGQIAO_ACCESS_TOKEN_TTL": "3600"}


def start_worker(url: str, fake: FakeFcmProcess, quiet: datetime) -> subprocess.Popen:
    env = {**_env(url), "FENGQIAO_FCM_CREDENTIALS": fake.service_account, "FENGQIAO_LOAD_FAKE_FCM": fake.url}
    log = open(OUT_DIR / "load-worker.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "bench.loadworker", quiet.isoformat()], cwd=PROJECT_ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    say(f"flask worker pid {proc.pid} (bench/loadworker.py; the sweep told it is {quiet.isoformat()}), "
        f"pushes to the fake FCM at {fake.url}")
    return proc


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # it stops after the pass under way
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_locust(env_extra: dict, extra_args: list[str], log_name: str) -> tuple[subprocess.Popen, float]:
    """locust --headless in a subprocess; its progress lines (stderr) pass through, its stdout is kept."""
    command = [str(LOCUST), "-f", str(LOCUSTFILE), "--headless", "--only-summary", "--loglevel", "WARNING",
               "--stop-timeout", "10", *extra_args]
    log = open(OUT_DIR / log_name, "w")
    proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env={**os.environ, **env_extra}, stdout=log, stderr=sys.stderr)
    log.close()
    return proc, time.time()


def _percentiles(values) -> dict:
    v = np.asarray(values, dtype=float)
    if not v.size:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None, "max_ms": None}
    p50, p95, p99 = np.percentile(v, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "mean_ms": float(v.mean()),
            "max_ms": float(v.max())}


def _expected(status: int, code) -> bool:
    return 200 <= status < 300 or (status == 409 and code in ("incident.version_conflict",
                                                              "incident.invalid_transition"))


def window_stats(records: dict, start: float, end: float, server_ms: dict | None = None) -> dict:
    """Per operation and in all over [start, end): requests, req/s, p50/p95/p99, answers by status,
    expected conflicts, unexpected answers; the server's own time (the request log) where known."""
    cols = records
    idx = [i for i, s in enumerate(cols["start"]) if start <= s < end]
    seconds = end - start
    by_op: dict[str, list[int]] = defaultdict(list)
    for i in idx:
        by_op[cols["op"][i]].append(i)
    ops = {}
    for op, ii in sorted(by_op.items()):
        statuses = Counter(str(cols["status"][i]) for i in ii)
        codes = Counter(f"{cols['status'][i]} {cols['code'][i]}" for i in ii if cols["status"][i] >= 300
                        or cols["status"][i] == 0)
        conflicts = sum(1 for i in ii if cols["status"][i] == 409 and _expected(409, cols["code"][i]))
        unexpected = sum(1 for i in ii if not _expected(cols["status"][i], cols["code"][i]))
        row = {"requests": len(ii), "rps": len(ii) / seconds, **_percentiles([cols["ms"][i] for i in ii]),
               "statuses": dict(statuses), "not_2xx": dict(codes), "conflicts": conflicts, "unexpected": unexpected}
        if server_ms:
            own = [server_ms[cols["request_id"][i]] for i in ii if cols["request_id"][i] in server_ms]
            row["server"] = {"requests": len(own), **_percentiles(own), "total_s": sum(own) / 1000}
        ops[op] = row
    every = [cols["ms"][i] for i in idx]
    total = {"requests": len(idx), "rps": len(idx) / seconds, **_percentiles(every),
             "over_timeout": sum(1 for ms in every if ms > TIMEOUT_S * 1000),  # waited longer than a client would
             "conflicts": sum(o["conflicts"] for o in ops.values()),
             "unexpected": sum(o["unexpected"] for o in ops.values())}
    return {"seconds": seconds, "ops": ops, "total": total}


def _server_ms() -> dict[str, float]:
    """request id → the app's own time for it (ms), from gunicorn's request log."""
    found = {}
    with open(OUT_DIR / "gunicorn.log", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("{"):
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if row.get("request_id"):
                    found[row["request_id"]] = row["ms"]
    return found


def _turn_lateness(turns: list, start: float, end: float) -> dict:
    if not turns:
        return {}
    due, kinds, lags = turns
    out = {}
    for kind in sorted(set(kinds)):
        lag = [lags[i] for i in range(len(due)) if kinds[i] == kind and start <= due[i] < end]
        if lag:
            out[kind] = {"turns": len(lag), "late_share": sum(1 for x in lag if x > 1.0) / len(lag),
                         "p99_lag_s": float(np.percentile(lag, 99))}
    return out


def measure_mix(app: Flask, url: str, dsn: str, city_id: int, args) -> dict:
    """Fixture, servers, the locust run (steps, knee, target), the floor, what the run wrote."""
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    say("Load: cleaning what an earlier run may have left")
    clean_up(dsn)
    started = time.perf_counter()
    people = make_people(dsn, city_id)
    say(f"Load: {len(people['phones']):,} phones (grid workers made for the run), {len(people['supervisors']):,} "
        f"community supervisors, {len(people['screens']):,} street map screens, in {len(people['streets'])} streets; "
        f"{len(people['categories'])} categories reported ({time.perf_counter() - started:.0f} s)")
    push_port = _free_udp_port()
    with psycopg.connect(dsn) as conn:
        total, open_now = conn.execute("SELECT count(*), count(*) FILTER (WHERE status NOT IN ('closed', 'rejected', "
                                       "'merged')) FROM incidents").fetchone()
    fake = LoadFakeFcm(push_port)
    quiet = quiet_instant(dsn)
    options = httpbench.ServerOptions(workers=args.workers, worker_class=args.worker_class, threads=args.threads)
    worker = start_worker(url, fake, quiet)
    result: dict = {"run_id": run_id, "quiet_instant": quiet.isoformat(),
                    "fixture": {"incidents": total, "open": open_now}}
    try:
        with httpbench.gunicorn(url, options) as (base_url, command):
            gunicorn_pid = _gunicorn_pid()
            data, book = data_file(app, dsn, base_url, people, args, run_id, push_port)
            groups = {
                "locust": lambda: [p for p in [_LOCUST_PID.get("pid")] if p] + _children(_LOCUST_PID.get("pid") or -1),
                "gunicorn": lambda: [gunicorn_pid, *_children(gunicorn_pid)],
                "worker": lambda: [worker.pid],
                "fake_fcm": lambda: [fake._process.pid],
                "postgres": _postgres_pids,
            }
            sampler = CpuSampler(groups)
            sampler.start()
            try:
                floor = _run_floor(args)
                load_before = os.getloadavg()
                records, steps = _run_mix()
                load_after = os.getloadavg()
            finally:
                sampler.stop()
                with app.app_context():
                    book.revoke("bench_done")
            result.update(server_command=command, load_before=list(load_before), load_after=list(load_after))
        shutil.copy(OUT_DIR / "gunicorn.log", OUT_DIR / "gunicorn-load.log")
    finally:
        stop_worker(worker)
        received = fake.received()
        fake.close()
    server_ms = _server_ms()
    result.update(analyse(records, steps, server_ms, sampler, data))
    result["floor"] = floor
    result["stored"] = stored(dsn, data, received)
    result["people"] = {"phones": len(people["phones"]), "supervisors": len(people["supervisors"]),
                        "screens": len(people["screens"]), "streets": len(people["streets"]),
                        "categories": [c[0] for c in people["categories"]]}
    say("Load: deleting what the run added")
    result["removed"] = clean_up(dsn)
    return result


_LOCUST_PID: dict = {}


def _gunicorn_pid() -> int:
    """The master of the gunicorn just started (the newest gunicorn whose parent is this process)."""
    kids = [p for p in _children(os.getpid()) if "gunicorn" in _cmdline(p)]
    return max(kids)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _run_mix() -> tuple[dict, list[dict]]:
    env = {"FENGQIAO_LOAD_DATA": str(DATA_FILE), "FENGQIAO_LOAD_OUT": str(RECORD_FILE)}
    proc, _ = run_locust(env, ["Person"], "locust-load.log")
    _LOCUST_PID["pid"] = proc.pid
    code = proc.wait()
    _LOCUST_PID.pop("pid", None)
    if code not in (0, 1):  # 1: some requests failed (they are counted and reported)
        raise RuntimeError(f"locust exited with {code}; see bench/out/locust-load.log")
    out = json.loads(RECORD_FILE.read_text())
    columns = dict(zip(out["columns"], out["records"], strict=True))
    columns["turns"] = out["turns"]
    columns["pushes"] = out.get("pushes", {})
    return columns, out["steps"]


def _run_floor(args) -> dict:
    """The harness's floor, on the fresh server before the mix: ``GET /healthz`` (no database, no
    token check) through the same locust (its users sharing the same pool of connections) and the
    same gunicorn, paced at each of FLOOR_RATES, then unpaced: the most the harness gives."""
    runs = {}
    for pace in (*FLOOR_RATES, 0):
        name = f"floor-{pace}" if pace else "ceiling"
        out = OUT_DIR / f"load-{name}.json"
        env = {"FENGQIAO_LOAD_DATA": str(DATA_FILE), "FENGQIAO_LOAD_OUT": str(out), "FENGQIAO_LOAD_FLOOR": f"{pace}"}
        seconds = args.load_floor_seconds
        say("Load floor: GET /healthz through the same locust and gunicorn, "
            + (f"{pace} req/s" if pace else "unpaced") + f", {seconds} s")
        proc, t0 = run_locust(env, ["FloorUser", "-u", str(POOL), "-r", str(POOL), "-t", f"{seconds}s"],
                              f"locust-{name}.log")
        _LOCUST_PID["pid"] = proc.pid
        proc.wait()
        _LOCUST_PID.pop("pid", None)
        found = json.loads(out.read_text())
        cols = dict(zip(found["columns"], found["records"], strict=True))
        interval = POOL / pace if pace else 0.0  # each user's first request comes within one interval
        begin = min(cols["start"]) + min(interval + 1.0, seconds / 2) if cols["start"] else t0
        end = max(cols["start"]) if cols["start"] else t0 + seconds
        stats = window_stats(cols, begin, end)
        runs[name] = {**stats["total"], "seconds": end - begin, "paced_at": pace or None}
        r = runs[name]
        say(f"    {r['rps']:,.0f} req/s, p50 {r['p50_ms'] or 0:.1f} ms, p99 {r['p99_ms'] or 0:.1f} ms, "
            f"{r['unexpected']} unexpected")
    return runs


def _knee(steps: list[dict]) -> dict:
    """The first step that broke with the next step broken too (a lone broken step is noise); the
    steps in the order they ran, their load rising."""
    plain = steps
    for i, s in enumerate(plain):
        if not s["verdict"]["ok"]:
            following = plain[i + 1] if i + 1 < len(plain) else None
            if following is None or not following["verdict"]["ok"]:
                last_good = next((p for p in reversed(plain[:i]) if p["verdict"]["ok"]), None)
                return {"step": s["label"], "factor": s["factor"], "reasons": s["verdict"]["reasons"],
                        "last_good": last_good["label"] if last_good else None,
                        "last_good_factor": last_good["factor"] if last_good else None}
    return {"step": None, "factor": None, "reasons": [], "last_good": plain[-1]["label"] if plain else None,
            "last_good_factor": plain[-1]["factor"] if plain else None}


def analyse(records: dict, steps: list[dict], server_ms: dict, sampler: CpuSampler, data: dict) -> dict:
    rows = []
    for s in steps:
        start, end = s["measured_from"], s["end"]
        stats = window_stats(records, start, end, server_ms)
        people = data["people_by_streets"][s["streets"]]
        rows.append({
            "label": s["label"], "factor": s["factor"], "streets": s["streets"], "rate": s.get("rate", 1.0),
            "people": people, "phones": data["phones_by_streets"][s["streets"]], "target": bool(s.get("target")),
            "start": start, "end": end, "seconds": end - start, "verdict": s["verdict"],
            "total": stats["total"], "ops": stats["ops"],
            "cpu": sampler.share(start, end), "turns": _turn_lateness(records["turns"], start, end),
            "load_avg": None,
        })
    # any answer other than the expected ones, over the whole run (warm-up included), with its count
    unexpected = Counter()
    for i, status in enumerate(records["status"]):
        if not _expected(status, records["code"][i]):
            unexpected[(records["op"][i], status, records["code"][i])] += 1
    for row in rows:  # what each kind of person sent: requests a second, and an hour per person
        kinds = {kind: data["kinds_by_streets"][kind][row["streets"]] for kind in MODEL}
        sent = Counter()
        for op, o in row["ops"].items():
            sent[_kind_of(op)] += o["requests"]
        row["by_kind"] = {kind: {"people": n, "rps": sent[kind] / row["seconds"],
                                 "per_person_h": sent[kind] / row["seconds"] * 3600 / n if n else None}
                          for kind, n in kinds.items()}
    knee = _knee(steps)
    good = next((r for r in rows if r["label"] == knee.get("last_good")), None)
    offered = None
    if good:  # the target's people at the pace each kind kept at the last step that held
        everyone = {kind: data["kinds_by_streets"][kind][-1] for kind in MODEL}
        by_kind = {kind: good["by_kind"][kind]["per_person_h"] * n / 3600 for kind, n in everyone.items()
                   if good["by_kind"][kind]["per_person_h"] is not None}
        offered = {"from_step": good["label"], "by_kind": by_kind, "total": sum(by_kind.values())}
    return {"steps": rows, "knee": knee, "offered_at_target": offered,
            "unexpected": [{"op": op, "status": st, "code": code, "count": n}
                           for (op, st, code), n in unexpected.most_common()],
            "requests_total": len(records["start"]), "pushes_to_phones": records.get("pushes", {}),
            "run_seconds": (max(records["start"]) - min(records["start"])) if records["start"] else 0}


_PHONE_OPS = {"GET /sync", "GET /me/notifications", "POST /me/notifications/read", "GET /me/tasks", "POST /incidents",
              "POST /incidents (retry)", "POST acknowledge", "POST resolve"}


def _kind_of(op: str) -> str:
    """Who sends an operation (the names bench/loadmix.py gives them)."""
    if op.startswith("GET /map/") or op.endswith("(map)"):
        return "screen"
    return "phone" if op in _PHONE_OPS else "supervisor"


def stored(dsn: str, data: dict, received: dict) -> dict:
    """What the run wrote, read back before it is deleted: the closed loop's progress, duplicates,
    the inbox and the pushes (their delay from queued to sent, what the fake FCM got)."""
    phones = data["phone_ids"]
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TEMP TABLE bench_load_run ON COMMIT DROP AS SELECT id, client_uuid, status FROM incidents "
                     "WHERE reporter_id = ANY(%s)", (phones,))
        by_status = dict(conn.execute("SELECT status, count(*) FROM bench_load_run GROUP BY 1").fetchall())
        incidents, uuids = conn.execute("SELECT count(*), count(DISTINCT client_uuid) FROM bench_load_run").fetchone()
        keys = conn.execute("SELECT count(*), count(DISTINCT incident_id) FROM idempotency_keys k "
                            "JOIN bench_load_run r ON r.id = k.incident_id").fetchone()
        events = dict(conn.execute("SELECT e.action, count(*) FROM incident_events e JOIN bench_load_run r "
                                   "ON r.id = e.incident_id GROUP BY 1").fetchall())
        tasks = dict(conn.execute("SELECT t.status, count(*) FROM tasks t JOIN bench_load_run r ON r.id = t.incident_id "
                                  "GROUP BY 1").fetchall())
        inbox = dict(conn.execute("SELECT n.kind, count(*) FROM notifications n JOIN bench_load_run r "
                                  "ON r.id = n.incident_id GROUP BY 1").fetchall())
        pushes = conn.execute("""
            SELECT x.status, count(*),
                   percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM x.sent_at - x.created_at)),
                   max(extract(epoch FROM x.sent_at - x.created_at))
            FROM outbox x JOIN notifications n ON n.id = x.notification_id JOIN bench_load_run r ON r.id = n.incident_id
            GROUP BY 1""").fetchall()
        message_ids = {str(m) for (m,) in conn.execute(
            "SELECT x.message_id FROM outbox x JOIN notifications n ON n.id = x.notification_id "
            "JOIN bench_load_run r ON r.id = n.incident_id WHERE x.status = 'sent'").fetchall()}
        conn.rollback()
    got = Counter(m for m in received["message_ids"] if m)
    return {
        "incidents": incidents, "distinct_client_uuids": uuids, "by_status": by_status,
        "idempotency_keys": keys[0], "keyed_incidents": keys[1], "events": events, "tasks": tasks, "inbox": inbox,
        "pushes": {status: {"count": n, "p50_s": q[0] if q else None, "p95_s": q[1] if q else None,
                            "p99_s": q[2] if q else None, "max_s": float(mx) if mx is not None else None}
                   for status, n, q, mx in pushes},
        "fake_fcm": {"requests": sum(got.values()), "of_run_sent": len(message_ids & set(got)),
                     "sent_not_received": len(message_ids - set(got)),
                     "received_twice": sum(1 for m in message_ids if got.get(m, 0) > 1),
                     "token_requests": received["token_requests"], "unauthorised": received["unauthorised"]},
    }


# ------------------------------------------------------------------ the chart

def chart(result: dict, path: Path = CHART) -> None:
    """Latency percentiles of the whole mix at each step against the step's share of the target
    peak's people (log scale), each step's requests per second written by it, the knee marked: an
    SVG drawn by hand."""
    points = result["steps"]
    if not points:
        return
    w, h, left, right, top, bottom = 760, 440, 70, 30, 50, 60
    ys = [v for s in points for v in (s["total"]["p50_ms"], s["total"]["p95_ms"], s["total"]["p99_ms"]) if v]
    x_max = max(1.0, max(s["factor"] * s.get("rate", 1.0) for s in points)) * 1.05
    y_lo, y_hi = 10 ** math.floor(math.log10(max(0.5, min(ys)))), 10 ** math.ceil(math.log10(max(ys)))

    def px(x):
        return left + (w - left - right) * x / x_max

    def py(y):
        return top + (h - top - bottom) * (1 - (math.log10(y) - math.log10(y_lo)) /
                                           (math.log10(y_hi) - math.log10(y_lo)))

    server = result.get("server", {})
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           'font-family="sans-serif" font-size="12">', f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">The mix: latency against load '
           f'(gunicorn {server.get("workers", 2)} × {server.get("threads", 2)} threads; everything on 2 cores)</text>']
    decade = y_lo
    while decade <= y_hi:
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{py(decade):.1f}" y2="{py(decade):.1f}" stroke="#ddd"/>')
        label = f"{decade / 1000:g} s" if decade >= 1000 else f"{decade:g} ms"
        out.append(f'<text x="{left - 6}" y="{py(decade) + 4:.1f}" text-anchor="end">{label}</text>')
        decade *= 10
    tick = 0.0
    while tick <= x_max + 1e-9:
        out.append(f'<line x1="{px(tick):.1f}" x2="{px(tick):.1f}" y1="{top}" y2="{h - bottom}" stroke="#eee"/>')
        out.append(f'<text x="{px(tick):.1f}" y="{h - bottom + 16}" text-anchor="middle">{tick:.1f}</text>')
        tick += 0.1
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 20}" text-anchor="middle">share of the target peak\'s '
               'people (1.0: the target); each point a step, its requests per second written above it</text>')
    for key, colour in (("p50_ms", "#1a9850"), ("p95_ms", "#fdae61"), ("p99_ms", "#d73027")):
        line = [(px(s["factor"] * s.get("rate", 1.0)), py(s["total"][key])) for s in points if s["total"][key]]
        out.append('<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>'.format(
            colour, " ".join(f"{x:.1f},{y:.1f}" for x, y in line)))
        for x, y in line:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"/>')
    for s in points:
        if s["total"]["p99_ms"]:
            out.append(f'<text x="{px(s["factor"] * s.get("rate", 1.0)):.1f}" y="{py(s["total"]["p99_ms"]) - 8:.1f}" '
                       f'text-anchor="middle" font-size="10">{s["total"]["rps"]:.0f}/s</text>')
    k = next((s for s in points if s["label"] == result["knee"]["step"]), None)
    if k:
        x = px(k["factor"] * k.get("rate", 1.0))
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{h - bottom}" stroke="#555" '
                   'stroke-dasharray="4 3"/>')
        anchor, dx = ("end", -4) if x > w * 0.7 else ("start", 4)
        out.append(f'<text x="{x + dx:.1f}" y="{h - bottom - 6}" text-anchor="{anchor}">knee ({k["label"]})</text>')
    for i, (name, colour) in enumerate((("p50", "#1a9850"), ("p95", "#fdae61"), ("p99", "#d73027"))):
        out.append(f'<rect x="{left + 10 + 70 * i}" y="{top - 16}" width="12" height="4" fill="{colour}"/>'
                   f'<text x="{left + 26 + 70 * i}" y="{top - 10}">{name}</text>')
    out.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")


# ------------------------------------------------------------------ the section

def model_rates() -> dict:
    """What each kind of person sends an hour at the peak by the model, before the closed loop
    (acknowledge, resolve, accept, dispatch, verify follow the reports)."""
    p, s, sc = MODEL["phone"], MODEL["supervisor"], MODEL["screen"]
    return {"phone": {"turns_per_h": 3600 / p["turn_s"], "reports_per_h": 3600 / p["turn_s"] * p["report_per_turn"]},
            "supervisor": {"turns_per_h": 3600 / s["turn_s"]},
            "screen": {"turns_per_h": 3600 / sc["turn_s"], "pans_per_h": 3600 / sc["pan_s"]}}


def measure(app: Flask, url: str, dsn: str, city_id: int, args) -> dict:
    started = time.perf_counter()
    result = measure_mix(app, url, dsn, city_id, args)
    chart(result)
    result.update(measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  seconds=time.perf_counter() - started, city=CITY, model=MODEL, model_rates=model_rates(),
                  knee_rules=KNEE, pool=POOL, timeout_s=TIMEOUT_S,
                  server={"workers": args.workers, "worker_class": args.worker_class, "threads": args.threads},
                  settings={"steps": args.load_steps, "step_seconds": args.load_step_seconds,
                            "target_seconds": args.load_seconds, "settle_s": args.load_settle,
                            "floor_seconds": args.load_floor_seconds})
    (OUT_DIR / "load.json").write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str))
    return result
