#!/usr/bin/env python3
"""Durability, as a script: reports under load while the database, the web server and the
worker are killed with SIGKILL and restarted, then every idempotency key replayed and what
the database holds checked (docs/OPERATIONS.md, "Durability").

    .venv/bin/python scripts/durability.py [--duration 90] [--clients 4] [--rate 12] …
    make durability DURABILITY_ARGS="--duration 60"

What it sets up, all of it its own and thrown away at the end: a PostgreSQL cluster in a
temporary directory (scripts/pg.sh with PG_DIR, socket only), migrated with ``flask db
upgrade``; a small territory (a city, a district, a street, two communities, four cells), grid
workers and supervisors, each with two phones registered through the API; categories whose
stages last seconds, so that the worker's sweep reminds, escalates and supervises during the
run; gunicorn (2 gthread workers on loopback) and ``flask worker``, whose pushes go through
firebase-admin to a fake FCM on loopback (tests/fakefcm.py) that records every message.

Then: client threads report incidents through a relay on loopback, each with its own
Idempotency-Key and client_uuid; a 2xx is an acknowledgement, anything else (a refused or
cut connection, 5xx) is retried later with the same key and body; a supervisor accepts and
dispatches some of the new cases (pushed tasks). Meanwhile: SIGKILL to the postmaster and
its backends, restart; SIGKILL to gunicorn (master and workers) and the worker, restart;
SIGKILL to the worker while it is sending pushes, restart; for the load's last tenth the
relay cuts half the answers on their way back (stored, never heard of). After the load
every key is replayed, the outbox drained and the sweep left to settle (every case at its
top level and supervised); then the verdict: every acknowledged report exists exactly once
and answers the same incident on replay, none without a key; no push lost (each outbox row
delivered at least once; duplicates counted by message id); no escalation doubled or
missed. Exit status 0 only when every check holds.
"""
from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PASSWORD = "durability horse battery"
LEVEL_CHAIN = ("grid", "community", "street", "district")
SHOWN = 20  # offending rows printed per failed check


# ------------------------------------------------------------------ processes

def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat and stat[1] == pid:
                found.append(int(entry))
    return found


def gone(pid: int) -> bool:
    """True once ``pid`` has ended (reaped, or a zombie nobody reaped yet)."""
    try:
        os.waitpid(pid, os.WNOHANG)  # our own child (or an orphan handed to us): reap it
    except ChildProcessError:
        pass
    stat = _stat(pid)
    return stat is None or stat[0] in ("Z", "X")


def kill9(pids: list[int], timeout: float = 15) -> None:
    """SIGKILL each of ``pids`` (processes this script started, or their children) and wait
    until every one has ended."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while not all(gone(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} still alive {timeout:g} s after SIGKILL")
        time.sleep(0.05)


def become_subreaper() -> None:
    """Orphans of the processes started here (the postmaster once pg_ctl has gone, gunicorn's
    workers once their master is killed) become this script's children, so that it can reap
    them: a zombie postmaster would keep its lock file alive and the cluster from restarting
    where PID 1 does not reap (a container without an init)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


class Service:
    """A process this script runs (gunicorn or the worker), in a session of its own, its output
    appended to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict, log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.died_alone: list[str] = []  # exits nobody asked for

    def start(self) -> None:
        with open(self.log, "ab") as out:
            out.write(f"\n==== start {self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        self.starts += 1

    def pids(self) -> list[int]:
        if self.process is None or self.process.poll() is not None:
            return []
        return [self.process.pid, *children(self.process.pid)]

    def kill9(self) -> int:
        """SIGKILL the process and its children at once; how many processes were killed."""
        pids = self.pids()
        kill9(pids)
        if self.process is not None:
            self.process.wait()
        return len(pids)

    def check(self, clock: float) -> bool:
        """False (and the exit noted) when the process ended without being asked to."""
        if self.process is not None and self.process.poll() is not None:
            self.died_alone.append(f"{self.name} exited with status {self.process.returncode} at {clock:.1f} s "
                                   f"(see {self.log})")
            self.process = None
            return False
        return True

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        pids = self.pids()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        kill9([pid for pid in pids if not gone(pid)])


class Cluster:
    """A throwaway PostgreSQL cluster made and started by scripts/pg.sh (PG_DIR, PGPORT)."""

    def __init__(self, base: Path, port: int):
        self.base, self.port = base, port
        self.env = {**os.environ, "PG_DIR": str(base), "PGPORT": str(port)}

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://fengqiao@/fengqiao?host={self.base / 'run'}&port={self.port}"

    @property
    def dsn(self) -> str:
        return f"host={self.base / 'run'} port={self.port} user=fengqiao dbname=fengqiao"

    def _pg(self, *args: str) -> None:
        done = subprocess.run([str(ROOT / "scripts" / "pg.sh"), *args], env=self.env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"scripts/pg.sh {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                               f"see {self.base / 'log' / 'postgres.log'}")

    def create(self) -> None:
        self._pg("createdb", "fengqiao")

    def start(self) -> None:
        self._pg("start")

    def postmaster(self) -> int | None:
        try:
            return int((self.base / "data" / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def kill9(self) -> int:
        """SIGKILL the postmaster and every process it started (backends, checkpointer, …) at
        once, as a crash of the machine would; how many processes."""
        pid = self.postmaster()
        if pid is None or gone(pid):
            return 0
        pids = [pid, *children(pid)]
        kill9(pids)
        return len(pids)

    def stop(self) -> None:
        pid = self.postmaster()
        if pid is None or gone(pid):
            return
        try:
            subprocess.run([str(ROOT / "scripts" / "pg.sh"), "stop"], env=self.env, timeout=60,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pass
        if not gone(pid):
            self.kill9()


def free_port(first: int, last: int) -> int:
    for port in range(first, last + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"No free TCP port on 127.0.0.1 between {first} and {last}")


# ------------------------------------------------------------------ answers lost on the way

class LossyProxy:
    """A TCP relay on loopback between the clients and gunicorn. While ``drop_share`` > 0 it
    cuts that share of the connections when the server's answer comes back, instead of
    passing it on: the server has done the work (a report stored and committed), the phone
    never hears of it, as on a mobile network that drops at the wrong moment."""

    def __init__(self, upstream_port: int, seed: int):
        self.upstream_port = upstream_port
        self.drop_share = 0.0
        self.dropped = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self._server.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, name="proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
        except OSError:
            client.close()  # the web server is down: the client sees its connection closed
            return
        upstream.settimeout(None)

        def to_server() -> None:
            try:
                while data := client.recv(65536):
                    upstream.sendall(data)
            except OSError:
                pass
            finally:
                _shut(upstream)

        threading.Thread(target=to_server, daemon=True).start()
        try:
            while data := upstream.recv(65536):
                with self._lock:
                    drop = self.drop_share > 0 and self._rng.random() < self.drop_share
                    self.dropped += drop
                if drop:
                    break  # the answer goes nowhere: both ends are cut below
                client.sendall(data)
        except OSError:
            pass
        finally:
            _shut(client)
            _shut(upstream)

    def close(self) -> None:
        self._closed = True
        self._server.close()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


# ------------------------------------------------------------------ the fake FCM

def fake_fcm_class():
    from tests.fakefcm import SEND_PATH, FakeFcm

    class RecordingFcm(FakeFcm):
        """tests/fakefcm.py's FakeFcm, which records every message, with a hook: the next
        ``messages:send`` calls ``on_send()`` (once) before it is answered."""

        def _answer(self, method, path, headers, body):
            answer = super()._answer(method, path, headers, body)
            hook = getattr(self, "on_send", None)
            if hook is not None and SEND_PATH.match(path) and answer[0] == 200:
                self.on_send = None
                hook()
            return answer

        def message_ids(self) -> list[tuple[str, str]]:
            with self._lock:
                return [(s.message.get("data", {}).get("message_id", ""), s.token) for s in self.received]

    return RecordingFcm


def run_worker_against_fake_fcm(fake_url: str) -> None:
    """``flask --app wsgi worker`` in this process, firebase-admin's FCM URL pointed at the
    fake (the service account's token_uri already is), as tests/integration/conftest.py and
    bench/escalationbench.py do."""
    import faulthandler

    from firebase_admin import messaging
    from flask.cli import main
    from google.auth import credentials as google_credentials

    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: where each thread is, into worker.log

    lookup = "_is_regional_access_boundary_lookup_required"
    boundary = google_credentials.CredentialsWithRegionalAccessBoundary
    if not hasattr(boundary, lookup) or "{0}" not in messaging._MessagingService.FCM_URL:
        raise SystemExit("firebase-admin or google-auth moved what the script points at the fake FCM")
    messaging._MessagingService.FCM_URL = fake_url + "/v1/projects/{0}/messages:send"
    setattr(boundary, lookup, lambda self: False)  # no lookup on the internet after each token
    sys.argv = ["flask", "--app", "wsgi", "worker"]
    main()


# ------------------------------------------------------------------ the fixture

@dataclass
class Person:
    id: int
    username: str
    role: str
    token: str = ""  # access token


@dataclass
class Fixture:
    workers: list[Person]
    supervisors: dict[str, Person]  # by username
    cells: dict[int, dict]  # cell id → bounds, primary worker id, community code
    worker_cells: dict[int, list[int]]  # worker id → the cells they may report in
    categories: dict[str, int]  # code → number of escalations to its top level
    supervisors_at: dict[tuple[int, str], set[int]]  # (region id, role) → supervisors' user ids
    devices: dict[int, list[str]]  # user id → device tokens


def stage_policy(stage_s: float, top: str) -> dict:
    """A policy whose stages last ``stage_s`` seconds at every level up to ``top`` (minutes as
    fractions: the API asks for whole minutes, the deadline arithmetic takes any)."""
    levels = LEVEL_CHAIN[:LEVEL_CHAIN.index(top) + 1]
    return {"time_basis": "natural", "yellow_ratio": 0.75, "top_level": top,
            "levels": {level: {"ack_minutes": stage_s / 2 / 60, "resolve_minutes": stage_s / 60} for level in levels}}


def load_fixture(url: str, stage_s: float, photo_dir: Path) -> Fixture:
    """Territory, people and categories, written in this process through the models."""
    from server import create_app
    from server.extensions import db
    from server.models import Category
    from tests.builders import assign, make_region, make_user

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "PASSWORD_PROFILE": "CHEAPEST", "PHOTO_DIR": str(photo_dir)})
    with app.app_context():
        city = make_region("440100", "city", (-118.40, 34.00, -118.20, 34.10))
        district = make_region("440101", "district", (-118.40, 34.00, -118.30, 34.10), city)
        street = make_region("440101001", "street", (-118.40, 34.00, -118.30, 34.10), district)
        cells, workers, worker_cells, supervisors, supervisors_at = {}, [], {}, {}, defaultdict(set)
        for n, (west, east) in enumerate(((-118.40, -118.35), (-118.35, -118.30)), 1):
            community = make_region(f"44010100100{n}", "community", (west, 34.00, east, 34.10), street)
            middle = (west + east) / 2
            halves = [(west, 34.00, middle, 34.10), (middle, 34.00, east, 34.10)]
            pair = [make_region(f"{community.code}0{k}", "grid", box, community) for k, box in enumerate(halves, 1)]
            people = [make_user(f"worker{n}{k}", "grid_worker", community, password=PASSWORD) for k in (1, 2)]
            for k, (cell, worker) in enumerate(zip(pair, people)):
                assign(worker, cell, "primary")
                assign(worker, pair[1 - k], "backup")  # AB岗: each the other's backup
                cells[cell.id] = {"bounds": halves[k], "primary": worker.id, "community": community.code}
            for worker in people:
                workers.append(Person(worker.id, worker.username, "grid_worker"))
                worker_cells[worker.id] = [cell.id for cell in pair]
            boss = make_user(f"community{n}", "community", community, password=PASSWORD)
            supervisors[boss.username] = Person(boss.id, boss.username, "community")
            supervisors_at[(community.id, "community")].add(boss.id)
        for region, role, name in ((street, "street", "street1"), (district, "district", "district1"),
                                   (city, "city", "city1")):
            boss = make_user(name, role, region, password=PASSWORD)
            supervisors[name] = Person(boss.id, name, role)
            supervisors_at[(region.id, role)].add(boss.id)
        group = Category(code="DUR", name="耐久测试", name_en="Durability", kind="event")
        db.session.add(group)
        db.session.flush()
        categories = {}
        for code, top in (("DUR01", "district"), ("DUR02", "community")):
            db.session.add(Category(code=code, parent_id=group.id, name=f"耐久测试{code[-2:]}",
                                    name_en=f"Durability {code[-2:]}", kind="event", start_level="grid",
                                    policy=stage_policy(stage_s, top)))
            categories[code] = LEVEL_CHAIN.index(top)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return Fixture(workers=workers, supervisors=supervisors, cells=cells, worker_cells=worker_cells,
                   categories=categories, supervisors_at=dict(supervisors_at), devices={})


# ------------------------------------------------------------------ the clients

class Api:
    """requests to the web server with one user's token."""

    def __init__(self, base: str, token: str = ""):
        import requests

        self.base, self.token = base, token
        self.session = requests.Session()

    def post(self, path: str, body: dict, headers: dict | None = None, timeout: float = 15):
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.session.post(self.base + path, json=body, headers=headers, timeout=timeout)


@dataclass(eq=False)
class Report:
    """One report as the phone keeps it until it is acknowledged: its key and body never change."""

    key: str
    body: dict
    user_id: int
    acked_id: int | None = None  # the incident of the first 2xx answer
    acked_replayed: bool = False  # that answer said Idempotent-Replayed (a retry whose first try was stored)
    failures: Counter = field(default_factory=Counter)  # what the unacknowledged tries met
    next_try: float = 0.0
    replay_id: int | None = None  # after the load: the incident the replay answered
    replay_replayed: bool | None = None
    replay_status: int | None = None
    refused: list[str] = field(default_factory=list)  # 4xx answers: none expected


class Ledger:
    """Every report made, by key, and the counts the progress line shows."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reports: dict[str, Report] = {}
        self.answers = Counter()  # status of every answer (0: no answer)
        self.acked_queue: list[dict] = []  # for the supervisor: the answers of new cases
        self.actions = Counter()

    def add(self, report: Report) -> None:
        with self.lock:
            self.reports[report.key] = report


def send_report(api: Api, report: Report) -> tuple[int, dict | None, bool, str | None]:
    """(status, body, replayed, what went wrong) of one POST of the report; status 0 when no
    answer came (refused, reset, timed out)."""
    import requests

    try:
        response = api.post("/api/v1/incidents", report.body, {"Idempotency-Key": report.key})
    except requests.RequestException as exc:
        return 0, None, False, type(exc).__name__
    try:
        body = response.json()
    except ValueError:
        body = None
    replayed = response.headers.get("Idempotent-Replayed") == "true"
    if 200 <= response.status_code < 300:
        return response.status_code, body, replayed, None
    code = (body or {}).get("code") if isinstance(body, dict) else None
    return response.status_code, body, replayed, f"{response.status_code} {code or ''}".strip()


def new_report(fixture: Fixture, worker: Person, rng: random.Random, n: int) -> Report:
    cell = rng.choice(fixture.worker_cells[worker.id])
    west, south, east, north = fixture.cells[cell]["bounds"]
    lon = round(rng.uniform(west + 1e-4, east - 1e-4), 6)
    lat = round(rng.uniform(south + 1e-4, north - 1e-4), 6)
    body = {"client_uuid": str(uuid.uuid4()), "category": rng.choice(sorted(fixture.categories)),
            "description": f"durability report {n} by {worker.username}",
            "location": {"type": "Point", "coordinates": [lon, lat]}, "address": f"测试路 {n} 号"}
    return Report(key=f"durability-{uuid.uuid4()}", body=body, user_id=worker.id)


def client_loop(index: int, clients: int, base: str, fixture: Fixture, ledger: Ledger, stop: threading.Event,
                rate: float, counter: itertools.count, seed: int) -> None:
    """Report at ``rate`` a second as this client's workers, retrying what was not acknowledged
    (oldest first, with the same key and body) before making anything new."""
    rng = random.Random(seed * 1000 + index)
    mine = fixture.workers[index::clients] or [fixture.workers[index % len(fixture.workers)]]
    apis = {w.id: Api(base, w.token) for w in mine}
    pending: list[Report] = []
    period = 1 / rate if rate > 0 else 0
    next_at = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now < next_at:
            stop.wait(next_at - now)
            continue
        next_at += period
        due = [r for r in pending if r.next_try <= now]
        if due:
            report = due[0]
        else:
            report = new_report(fixture, rng.choice(mine), rng, next(counter))
            ledger.add(report)
        status, body, replayed, problem = send_report(apis[report.user_id], report)
        with ledger.lock:
            ledger.answers[status] += 1
        if problem is None:
            report.acked_id, report.acked_replayed = body["id"], replayed
            if report in pending:
                pending.remove(report)
            with ledger.lock:
                ledger.acked_queue.append(body)
        elif 400 <= status < 500:
            report.refused.append(problem)  # never expected: reported as a violation
            if report in pending:
                pending.remove(report)
        else:
            report.failures[problem] += 1
            report.next_try = time.monotonic() + 1.0 + rng.random()
            if report not in pending:
                pending.append(report)
            next_at = max(next_at, time.monotonic() + 0.2)  # no storm of retries into an outage


def supervisor_loop(base: str, fixture: Fixture, ledger: Ledger, stop: threading.Event, share: float,
                    seed: int) -> None:
    """The community supervisors accept (立案) and dispatch (派遣) ``share`` of the new cases to
    the cell's primary worker: tasks pushed by the web process, acknowledgements the workers
    never give (the sweep pushes again, hands over to the backup, then to the supervisors)."""
    import requests

    rng = random.Random(seed)
    by_community = {}
    for person in fixture.supervisors.values():
        if person.role == "community":
            by_community[person.username] = Api(base, person.token)
    while not stop.is_set():
        with ledger.lock:
            batch, ledger.acked_queue = ledger.acked_queue, []
        for answer in batch:
            if stop.is_set() or rng.random() >= share or answer.get("status") != "reported":
                continue
            cell = fixture.cells[answer["cell"]["id"]]
            api = by_community[f"community{cell['community'][-1]}"]
            version = answer["version"]
            for action, extra in (("accept", {}), ("dispatch", {"assignee_id": cell["primary"]})):
                try:
                    response = api.post(f"/api/v1/incidents/{answer['id']}/actions/{action}",
                                        {"version": version, **extra})
                except requests.RequestException:
                    ledger.actions[f"{action}: no answer"] += 1
                    break
                if response.status_code != 200:
                    ledger.actions[f"{action}: {response.status_code}"] += 1
                    break
                ledger.actions[action] += 1
                version = response.json()["version"]
        stop.wait(0.5)


def replay_all(base: str, fixture: Fixture, ledger: Ledger, clients: int, timeout: float) -> list[Report]:
    """Every key once more with the same body (retrying until an answer comes); the reports
    that never got a 2xx."""
    from concurrent.futures import ThreadPoolExecutor

    tokens = {w.id: w.token for w in fixture.workers}
    local = threading.local()
    deadline = time.monotonic() + timeout

    def replay(report: Report) -> bool:
        apis = getattr(local, "apis", None)
        if apis is None:
            apis = local.apis = {}
        api = apis.setdefault(report.user_id, Api(base, tokens[report.user_id]))
        while True:
            status, body, replayed, problem = send_report(api, report)
            report.replay_status = status
            if problem is None:
                report.replay_id, report.replay_replayed = body["id"], replayed
                return True
            if 400 <= status < 500:
                report.refused.append(f"replay: {problem}")
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)

    reports = list(ledger.reports.values())
    with ThreadPoolExecutor(max_workers=clients) as pool:
        answered = list(pool.map(replay, reports))
    return [r for r, ok in zip(reports, answered) if not ok]


# ------------------------------------------------------------------ the run

class Run:
    def __init__(self, args):
        self.args = args
        self.started = time.monotonic()
        self.faults: list[str] = []
        self.phase = "setting up"
        self.dir = Path(args.dir).resolve() if args.dir else Path(tempfile.mkdtemp(prefix="fengqiao-durability-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)  # as root the cluster's owner (postgres) must reach its directory
        self.cluster = Cluster(self.dir / "pg", args.pg_port)
        self.fake = None
        self.web: Service | None = None
        self.worker: Service | None = None
        self.ledger = Ledger()
        self.fixture: Fixture | None = None
        self.stop_load = threading.Event()
        self.services_lock = threading.Lock()
        self._last_progress = 0.0

    def clock(self) -> float:
        return time.monotonic() - self.started

    def say(self, text: str) -> None:
        print(f"[{self.clock():6.1f} s] {text}", flush=True)

    # ---- setting up

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
        env.update({
            "DATABASE_URL": self.cluster.url, "FENGQIAO_SECRET_KEY": self.secret,
            "FENGQIAO_FCM_CREDENTIALS": str(self.service_account),
            "FENGQIAO_WORKER_INTERVAL_SECONDS": str(self.args.worker_interval),
            "FENGQIAO_PUSH_LEASE_SECONDS": str(self.args.lease_seconds),
            "FENGQIAO_PASSWORD_PROFILE": "CHEAPEST", "FENGQIAO_ACCESS_TOKEN_TTL": "86400",
            "FENGQIAO_PHOTO_DIR": str(self.dir / "photos"), "PYTHONUNBUFFERED": "1",
        })
        return env

    def set_up(self) -> None:
        args = self.args
        self.secret = secrets.token_urlsafe(32)
        os.environ["FENGQIAO_SECRET_KEY"] = self.secret  # this process's app (the fixture) signs nothing, but reads it
        self.say(f"Cluster: PostgreSQL in {self.cluster.base}, port {args.pg_port} (socket only)")
        self.cluster.create()
        self.fake = fake_fcm_class()()
        self.service_account = self.fake.service_account(self.dir)
        env = self.env()
        self.say("Migrations: flask --app wsgi db upgrade")
        migrate = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "db", "upgrade"],
                                 cwd=ROOT, env=env, capture_output=True, text=True)
        if migrate.returncode:
            raise SystemExit(f"flask db upgrade failed:\n{migrate.stdout}{migrate.stderr}")
        self.fixture = load_fixture(self.cluster.url, args.stage_seconds, self.dir / "photos")
        port = free_port(args.web_port, args.web_port + 9)
        self.web_url = f"http://127.0.0.1:{port}"
        self.proxy = LossyProxy(port, args.seed)
        self.base = f"http://127.0.0.1:{self.proxy.port}"  # the clients' way in
        bindir = Path(sys.executable).parent
        self.web = Service("gunicorn", [str(bindir / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2",
                                        "--worker-class", "gthread", "--threads", "8", "--no-control-socket",
                                        "--graceful-timeout", "5", "wsgi:app"], env, self.dir / "gunicorn.log")
        self.worker = Service("flask worker", [sys.executable, str(Path(__file__).resolve()),
                                               "--worker-for-fake-fcm", self.fake.url], env, self.dir / "worker.log")
        self.web.start()
        self.wait_web()
        self.worker.start()
        self.sign_in()
        f = self.fixture
        self.say(f"Fixture: {len(f.cells)} grid cells, {len(f.workers)} grid workers, {len(f.supervisors)} "
                 f"supervisors, {sum(map(len, f.devices.values()))} phones; categories "
                 + ", ".join(f"{code} ({n} escalation{'' if n == 1 else 's'} to its top)"
                             for code, n in sorted(f.categories.items()))
                 + f", stages of {args.stage_seconds:g} s; gunicorn on {self.web_url}, worker every "
                 f"{args.worker_interval:g} s, fake FCM on {self.fake.url}")

    def wait_web(self, timeout: float = 60) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.web_url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.web.process is not None and self.web.process.poll() is not None:
                raise RuntimeError(f"gunicorn did not start (see {self.web.log})")
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {timeout:g} s (see {self.web.log})")

    def sign_in(self) -> None:
        """Every person signs in and registers two phones: an Android one by registration token,
        an iPhone by Firebase installation id."""
        f = self.fixture
        for person in [*f.workers, *f.supervisors.values()]:
            api = Api(self.web_url)
            answer = api.post("/api/v1/auth/login", {"username": person.username, "password": PASSWORD})
            answer.raise_for_status()
            person.token = api.token = answer.json()["access_token"]
            f.devices[person.id] = []
            for kind, platform in (("registration_token", "android"), ("installation_id", "ios")):
                token = f"durability-{person.username}-{platform}-{secrets.token_hex(8)}"
                answer = api.post("/api/v1/me/devices", {"token": token, "token_kind": kind, "platform": platform})
                answer.raise_for_status()
                f.devices[person.id].append(token)

    # ---- faults

    def kill_database(self) -> None:
        self.phase = "database down"
        killed = self.cluster.kill9()
        at = self.clock()
        self.say(f"FAULT: kill -9 the postmaster and its {killed - 1} children")
        time.sleep(self.args.db_down_seconds)
        self.cluster.start()
        self.faults.append(f"database killed at {at:.1f} s ({killed} processes), restarted after "
                           f"{self.clock() - at:.1f} s")
        self.say("database restarted (crash recovery done)")
        self.phase = "load"

    def kill_web_and_worker(self) -> None:
        self.phase = "web and worker down"
        with self.services_lock:
            at = self.clock()
            web, worker = self.web.kill9(), self.worker.kill9()
            self.say(f"FAULT: kill -9 gunicorn (master and {web - 1} workers) and flask worker ({worker} process)")
            time.sleep(1)
            self.web.start()
            self.worker.start()
        self.wait_web()
        self.faults.append(f"gunicorn ({web} processes) and the worker killed at {at:.1f} s, serving again after "
                           f"{self.clock() - at:.1f} s")
        self.say("gunicorn and flask worker restarted")
        self.phase = "load"

    def kill_worker_while_sending(self, timeout: float = 30) -> None:
        """Arm the fake FCM: on the next push it receives, the worker is killed before the
        answer reaches it (the push delivered, its outbox row still ``sending``)."""
        self.phase = "worker killed mid-dispatch"
        killed = threading.Event()
        with self.services_lock:
            worker_pids = self.worker.pids()

        def kill() -> None:
            for pid in worker_pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            killed.set()

        self.fake.on_send = kill
        if not killed.wait(timeout):
            self.fake.on_send = None
            self.faults.append(f"no push went out within {timeout:g} s: the worker was not killed while sending "
                               "(skipped)")
            self.say("no push went out: the worker was not killed while sending (skipped)")
            self.phase = "load"
            return
        at = self.clock()
        with self.services_lock:
            self.worker.kill9()
            self.say("FAULT: kill -9 flask worker while it was sending pushes")
            time.sleep(1)
            self.worker.start()
        self.faults.append(f"worker killed while sending pushes at {at:.1f} s, restarted after "
                           f"{self.clock() - at:.1f} s")
        self.phase = "load"

    def lose_answers(self) -> None:
        """For a tenth of the load (its end), half the answers are cut on their way back: what
        is still unacknowledged when the load stops is left to the replay."""
        window = self.args.duration / 10
        self.phase = "answers lost"
        at, before = self.clock(), self.proxy.dropped
        self.say(f"FAULT: half the answers lost on the way back for {window:.0f} s")
        self.proxy.drop_share = 0.5
        deadline = time.monotonic() + window
        while time.monotonic() < deadline:
            self.tick()
            time.sleep(0.2)
        self.proxy.drop_share = 0.0
        self.faults.append(f"answers lost from {at:.1f} s for {window:.0f} s: {self.proxy.dropped - before} "
                           "connections cut as the answer came back")
        self.phase = "load"

    def tick(self) -> None:
        """Between steps: services watched, progress shown now and then."""
        self.watch_services()
        if time.monotonic() - self._last_progress >= self.args.progress_every:
            self.progress()
            self._last_progress = time.monotonic()

    def watch_services(self) -> None:
        """A web server or worker that ended on its own is noted (a finding) and started again."""
        with self.services_lock:
            for service in (self.web, self.worker):
                if not service.check(self.clock()):
                    self.say(f"!! {service.died_alone[-1]}; starting it again")
                    service.start()

    # ---- progress

    def db_counts(self) -> dict | None:
        import psycopg

        try:
            with psycopg.connect(self.cluster.dsn, connect_timeout=2) as conn:
                row = conn.execute("""
                    SELECT (SELECT count(*) FROM incidents),
                           (SELECT count(*) FROM incident_events WHERE action = 'escalate'),
                           (SELECT count(*) FROM incident_events WHERE action = 'supervise'),
                           (SELECT count(*) FROM outbox),
                           (SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending'))
                """).fetchone()
        except psycopg.Error:
            return None
        return dict(zip(("incidents", "escalations", "supervised", "pushes", "waiting"), row))

    def progress(self) -> None:
        ledger = self.ledger
        with ledger.lock:
            made = len(ledger.reports)
            acked = sum(1 for r in ledger.reports.values() if r.acked_id is not None)
            answers = dict(ledger.answers)
        failed = sum(n for status, n in answers.items() if not 200 <= status < 300)
        db = self.db_counts()
        where = (f"db: {db['incidents']} incidents, {db['escalations']} escalations, {db['supervised']} supervised, "
                 f"{db['pushes']} pushes queued ({db['waiting']} waiting)" if db else "db: unreachable")
        self.say(f"{self.phase}: {made} reports, {acked} acknowledged, {made - acked} waiting; {failed} failed tries"
                 f"{_statuses(answers)}; fake FCM got {len(self.fake.received)}; {where}")

    # ---- the run

    def load(self) -> None:
        args = self.args
        counter = itertools.count(1)
        threads = [threading.Thread(target=client_loop, name=f"client-{i}", daemon=True,
                                    args=(i, args.clients, self.base, self.fixture, self.ledger, self.stop_load,
                                          args.rate / args.clients, counter, args.seed))
                   for i in range(args.clients)]
        threads.append(threading.Thread(target=supervisor_loop, name="supervisor", daemon=True,
                                        args=(self.base, self.fixture, self.ledger, self.stop_load,
                                              args.dispatch_share, args.seed)))
        faults = {"db": (0.2, self.kill_database), "web": (0.4, self.kill_web_and_worker),
                  "dispatch": (0.6, self.kill_worker_while_sending), "answers": (0.9, self.lose_answers)}
        schedule = sorted((share * args.duration, name, act) for name, (share, act) in faults.items()
                          if name in args.faults)
        self.phase = "load"
        self.say(f"Load: {args.clients} clients at {args.rate:g} reports/s in all for {args.duration:g} s; faults "
                 + ", ".join(f"{name} at +{at:.0f} s" for at, name, _ in schedule))
        begun = time.monotonic()
        for thread in threads:
            thread.start()
        while (elapsed := time.monotonic() - begun) < args.duration:
            if schedule and elapsed >= schedule[0][0]:
                schedule.pop(0)[2]()
            self.tick()
            time.sleep(0.2)
        for _, _, act in schedule:  # a fault the load ended before
            act()
        self.stop_load.set()
        for thread in threads:
            thread.join(timeout=30)
        self.progress()

    def settle(self) -> dict:
        """Wait until the outbox is drained and the sweep has nothing left to do: every running
        case at its top level and supervised, no reminder or hand-over due."""
        import psycopg

        from server.domain.escalation import RUNNING_STATES

        self.phase = "settling"
        deadline = time.monotonic() + self.args.settle_timeout
        last = 0.0
        while True:
            self.watch_services()
            state = None
            try:
                with psycopg.connect(self.cluster.dsn, connect_timeout=2) as conn:
                    state = dict(zip(SETTLE_KEYS, conn.execute(SETTLE_SQL, {"running": sorted(RUNNING_STATES)})
                                     .fetchone()))
            except psycopg.Error:
                pass
            if state is not None and not any(state.values()):
                self.say("settled: the outbox is drained and nothing is left for the sweep")
                return state
            if time.monotonic() > deadline:
                self.say(f"not settled after {self.args.settle_timeout:g} s: {state}")
                return state or {"database": "unreachable"}
            if time.monotonic() - last >= self.args.progress_every:
                self.say(f"settling: {state}")
                last = time.monotonic()
            time.sleep(0.5)

    def clean_up(self) -> None:
        self.stop_load.set()
        for service in (self.worker, self.web):
            if service is not None:
                try:
                    service.stop()
                except Exception as exc:  # go on: the cluster must stop too
                    print(f"stopping {service.name}: {exc}", file=sys.stderr)
        if self.fake is not None:
            self.fake.close()
        if getattr(self, "proxy", None) is not None:
            self.proxy.close()
        self.cluster.stop()


def _statuses(answers: dict) -> str:
    shown = {("no answer" if status == 0 else str(status)): n for status, n in sorted(answers.items())
             if not 200 <= status < 300}
    return " (" + ", ".join(f"{k}: {v}" for k, v in shown.items()) + ")" if shown else ""


SETTLE_KEYS = ("pushes_waiting", "cases_due", "reminders_due", "tasks_due", "cases_below_top")
SETTLE_SQL = """
    SELECT (SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')),
           (SELECT count(*) FROM incidents WHERE status = ANY(%(running)s) AND due_at <= now()
              AND (level IS DISTINCT FROM top_level OR supervised_at IS NULL)),
           (SELECT count(*) FROM incidents WHERE status = ANY(%(running)s) AND yellow_at <= now()
              AND due_at > now() AND reminded_stage < stage_no),
           (SELECT count(*) FROM tasks t JOIN incidents i ON i.id = t.incident_id
            WHERE t.status = 'open' AND t.ack_deadline <= now() AND i.status = 'dispatched'),
           (SELECT count(*) FROM incidents WHERE status = ANY(%(running)s)
              AND (level IS DISTINCT FROM top_level OR supervised_at IS NULL))
"""


# ------------------------------------------------------------------ the verdict

@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    rows: list = field(default_factory=list)


def verdict(run: Run, unanswered: list[Report], settled: dict) -> tuple[list[Check], dict]:
    """Every check, and the figures of the run."""
    import psycopg

    ledger, fixture = run.ledger, run.fixture
    reports = list(ledger.reports.values())
    checks: list[Check] = []
    acked = [r for r in reports if r.acked_id is not None]
    unacked = [r for r in reports if r.acked_id is None]

    refused = [(r.key, r.refused) for r in reports if r.refused]
    checks.append(Check("no report refused (4xx) on a try or a replay", not refused,
                        f"{len(refused)} refused", refused))
    checks.append(Check("every key answered on replay", not unanswered, f"{len(unanswered)} without an answer",
                        [(r.key, r.replay_status) for r in unanswered]))
    different = [(r.key, r.acked_id, r.replay_id) for r in acked if r.replay_id != r.acked_id]
    not_replayed = [(r.key, r.replay_status) for r in acked if r.replay_id == r.acked_id and not r.replay_replayed]
    checks.append(Check("every acknowledged key answers the same incident on replay (Idempotent-Replayed)",
                        not different and not not_replayed,
                        f"{len(acked) - len(different) - len(not_replayed)} of {len(acked)}",
                        different + not_replayed))

    with psycopg.connect(run.cluster.dsn) as conn:
        incidents = {str(row[0]): (row[1], row[2]) for row in conn.execute(
            "SELECT client_uuid, count(*), min(id) FROM incidents GROUP BY client_uuid")}
        total_incidents = conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
        keys = defaultdict(list)
        for user_id, key, incident_id in conn.execute("SELECT user_id, key, incident_id FROM idempotency_keys"):
            keys[(user_id, key)].append(incident_id)
        events = conn.execute("""
            SELECT e.id, e.incident_id, e.action, e.from_level, e.to_level, e.data
            FROM incident_events e WHERE e.action IN ('escalate', 'supervise', 'remind', 'repush', 'handover')
            ORDER BY e.id""").fetchall()
        cases = {row[0]: row[1:] for row in conn.execute("""
            SELECT i.id, c.code, i.level, i.top_level, i.stage_no, i.escalation_count, i.supervised_at IS NOT NULL,
                   i.status, i.region_path
            FROM incidents i JOIN categories c ON c.id = i.category_id""")}
        notifications = conn.execute("""
            SELECT n.id, n.user_id, n.cause, n.kind, count(x.id) FROM notifications n
            LEFT JOIN outbox x ON x.notification_id = n.id GROUP BY n.id""").fetchall()
        outbox = {str(row[0]): row[1:] for row in conn.execute("""
            SELECT x.message_id, x.status, x.attempts, x.last_error, d.token, x.id FROM outbox x
            JOIN devices d ON d.id = x.device_id""")}
        devices = dict(conn.execute("""
            SELECT user_id, count(*) FROM devices WHERE disabled_at IS NULL GROUP BY user_id""").fetchall())
        regions = {row[0]: row[1:] for row in conn.execute("SELECT id, level FROM regions")}
        tasks = conn.execute("SELECT id, incident_id, assignee_id FROM tasks WHERE assignee_id IS NOT NULL").fetchall()

    # -- reports: each key exactly once
    missing, doubled, strays, key_rows = [], [], [], []
    ours = {r.body["client_uuid"] for r in reports}
    for r in reports:
        found = incidents.get(r.body["client_uuid"])
        if found is None:
            missing.append((r.key, r.body["client_uuid"], "acknowledged" if r.acked_id else "not acknowledged"))
        elif found[0] > 1:
            doubled.append((r.key, r.body["client_uuid"], found[0]))
        else:
            expected = r.replay_id or r.acked_id
            if found[1] != expected:
                doubled.append((r.key, r.body["client_uuid"], f"stored as {found[1]}, answered {expected}"))
            for key in (f"key:{r.key}", f"uuid:{r.body['client_uuid']}"):
                if keys.get((r.user_id, key)) != [found[1]]:
                    key_rows.append((r.key, key, keys.get((r.user_id, key))))
    strays = [(client_uuid, n) for client_uuid, (n, _) in incidents.items() if client_uuid not in ours]
    checks.append(Check("every key (acknowledged or not) exists exactly once in incidents, as answered",
                        not missing and not doubled, f"{len(reports)} keys, {total_incidents} incidents",
                        missing + doubled))
    checks.append(Check("no incident without a key of this run, none duplicated", not strays and
                        total_incidents == len(reports), f"{len(strays)} strays", strays))
    checks.append(Check("both idempotency keys of each report (header, client_uuid) name its incident",
                        not key_rows, f"{len(key_rows)} wrong", key_rows))

    # -- escalations
    by_case = defaultdict(list)
    for event in events:
        by_case[event[1]].append(event)
    twice, inconsistent, supervised_twice, reminded_twice, handed_twice, missed = [], [], [], [], [], []
    for incident_id, (code, level, top, stage_no, count, supervised, status, _) in cases.items():
        mine = by_case.get(incident_id, [])
        escalations = [e for e in mine if e[2] == "escalate"]
        pairs = Counter((e[3], e[4]) for e in escalations)
        twice += [(incident_id, a, b, n) for (a, b), n in pairs.items() if n > 1]
        chain = ["grid"] + [e[4] for e in escalations]
        steps_ok = all(e[3] == chain[k] and LEVEL_CHAIN.index(e[4]) == LEVEL_CHAIN.index(e[3]) + 1
                       for k, e in enumerate(escalations))
        if not steps_ok or chain[-1] != level or count != len(escalations) or stage_no != 1 + len(escalations):
            inconsistent.append((incident_id, code, f"level {level}, stage {stage_no}, escalation_count {count}",
                                 "events " + " → ".join(chain)))
        supervise = [e for e in mine if e[2] == "supervise"]
        if len(supervise) > 1 or (len(supervise) == 1) != supervised or any(e[3] != top for e in supervise):
            supervised_twice.append((incident_id, level, top, len(supervise), supervised))
        reminders = Counter(e[3] for e in mine if e[2] == "remind")
        reminded_twice += [(incident_id, lvl, n) for lvl, n in reminders.items() if n > 1]
        tasks = Counter(e[5].get("from_task_id") or e[5].get("task_id") for e in mine if e[2] in ("repush", "handover"))
        handed_twice += [(incident_id, task, n) for task, n in tasks.items() if n > 1]
        if status not in ("closed", "rejected", "merged") and (len(escalations) != fixture.categories[code]
                                                                 or not supervised):
            missed.append((incident_id, code, level, f"{len(escalations)} escalations", f"supervised {supervised}"))
    escalations_total = sum(1 for e in events if e[2] == "escalate")
    checks.append(Check("no (incident, level) escalated twice", not twice,
                        f"{escalations_total} escalations over {sum(1 for c in by_case.values() if any(e[2] == 'escalate' for e in c))} incidents", twice))
    checks.append(Check("levels consistent: level, stage and escalation_count follow the escalate events one "
                        "level at a time", not inconsistent, f"{len(inconsistent)} inconsistent", inconsistent))
    checks.append(Check("each case supervised (督办) at most once, at its top level", not supervised_twice,
                        f"{sum(1 for c in cases.values() if c[5])} supervised", supervised_twice))
    checks.append(Check("at most one reminder per case and level; one hand-off per task and step",
                        not reminded_twice and not handed_twice,
                        f"{sum(1 for e in events if e[2] == 'remind')} reminders, "
                        f"{sum(1 for e in events if e[2] in ('repush', 'handover'))} hand-offs",
                        reminded_twice + handed_twice))
    checks.append(Check("no escalation missed: every open case rose to its top level and was supervised",
                        not missed, f"{len(cases) - len(missed)} of {len(cases)}", missed))

    # -- each escalation and supervision told its supervisors
    told = defaultdict(set)
    for _, user_id, cause, _, _ in notifications:
        told[cause].add(user_id)
    untold = []
    for incident_id, mine in by_case.items():
        path = cases[incident_id][7]
        chain_ids = [int(p) for p in path.strip("/").split("/")]
        at = {regions[r][0]: r for r in chain_ids}
        stage = 1
        for e in mine:
            if e[2] == "escalate":
                stage += 1
                expected = fixture.supervisors_at.get((at[e[4]], e[4]), set())
                cause = f"incident:{incident_id}:stage:{stage}:in"
            elif e[2] == "supervise":
                role = "community" if e[3] == "grid" else e[3]
                expected = fixture.supervisors_at.get((at[role], role), set())
                cause = f"incident:{incident_id}:stage:{stage}:supervised"
            elif e[2] == "remind":  # the handler of the task out, or the level's supervisors: someone
                cause = f"incident:{incident_id}:stage:{stage}:reminder"
                expected = told.get(cause) or {"someone"}
            else:
                continue
            if told.get(cause, set()) != expected:
                untold.append((incident_id, e[2], cause, sorted(told.get(cause, set())), sorted(expected)))
    for task_id, incident_id, assignee in tasks:
        if told.get(f"task:{task_id}", set()) != {assignee}:
            untold.append((incident_id, "task", f"task:{task_id}", sorted(told.get(f"task:{task_id}", set())),
                           [assignee]))
    checks.append(Check("every escalation, supervision, reminder and task told the people concerned", not untold,
                        f"{len(untold)} not told", untold))

    # -- pushes
    short = [(n_id, user_id, cause, pushes, devices.get(user_id, 0))
             for n_id, user_id, cause, kind, pushes in notifications if pushes != devices.get(user_id, 0)]
    checks.append(Check("every inbox row queued a push to each of the person's phones", not short,
                        f"{len(notifications)} inbox rows, {len(outbox)} pushes", short))
    unsent = [(mid, status, attempts, error) for mid, (status, attempts, error, _, _) in outbox.items()
              if status != "sent"]
    checks.append(Check("no push left pending or sending, none failed, expired or dead", not unsent,
                        ", ".join(f"{status} {n:,}" for status, n in Counter(v[0] for v in outbox.values()).items()),
                        unsent))
    received = run.fake.message_ids()
    got = Counter(mid for mid, _ in received)
    lost = [(mid, row[4]) for mid, row in outbox.items() if mid not in got]
    unknown = [(mid, n) for mid, n in got.items() if mid not in outbox]
    misaddressed = sorted({(mid, token) for mid, token in received if mid in outbox and outbox[mid][3] != token})
    checks.append(Check("every push reached the fake FCM at least once, to its own phone (by message_id)",
                        not lost and not misaddressed, f"{len(outbox) - len(lost)} of {len(outbox)}",
                        lost + misaddressed))
    checks.append(Check("the fake FCM got no message the outbox does not hold", not unknown,
                        f"{len(unknown)} unknown", unknown))
    duplicates = sum(n - 1 for n in got.values() if n > 1)

    checks.append(Check("the sweep settled and the outbox drained", bool(settled) and not any(
        v for v in settled.values() if isinstance(v, int)) and "database" not in settled, str(settled)))
    errors = ledger.answers.get(500, 0) + sum(n for what, n in ledger.actions.items() if what.endswith(": 500"))
    checks.append(Check("no 500 (an unhandled error) answered while the faults were on, only 503 or no answer "
                        "(reports and supervisors' actions)", not errors,
                        f"{errors} answered 500 (see {run.web.log})" if errors else ""))
    died = run.web.died_alone + run.worker.died_alone
    checks.append(Check("no web server or worker died on its own", not died, f"{len(died)}", died))

    answers = ledger.answers
    figures = {
        "keys": len(reports), "acknowledged": len(acked), "acknowledged_on_a_retry": sum(
            1 for r in acked if r.failures), "acknowledged_as_replay": sum(1 for r in acked if r.acked_replayed),
        "never_acknowledged": len(unacked),
        "never_acknowledged_but_stored": sum(1 for r in unacked if r.replay_replayed),
        "never_acknowledged_created_on_replay": sum(1 for r in unacked if r.replay_replayed is False),
        "tries": sum(answers.values()), "failed_tries": {("no answer" if s == 0 else str(s)): n
                                                        for s, n in sorted(answers.items()) if not 200 <= s < 300},
        "replays": sum(1 for r in reports if r.replay_status is not None), "incidents": total_incidents,
        "escalations": escalations_total, "supervised": sum(1 for c in cases.values() if c[5]),
        "reminders": sum(1 for e in events if e[2] == "remind"),
        "hand_offs": sum(1 for e in events if e[2] in ("repush", "handover")),
        "supervisor_actions": dict(ledger.actions), "inbox_rows": len(notifications), "pushes": len(outbox),
        "fcm_requests": len(received), "fcm_distinct": len(got), "duplicates": duplicates,
        "pushes_sent_twice": sum(1 for n in got.values() if n > 1),
        "attempts_over_one": sum(1 for v in outbox.values() if v[1] > 1), "faults": run.faults,
    }
    return checks, figures


def print_verdict(checks: list[Check], figures: dict, seconds: float) -> bool:
    ok = all(c.ok for c in checks)
    f = figures
    failed = ", ".join(f"{k}: {v}" for k, v in f["failed_tries"].items()) or "none"
    print()
    print(f"Durability verdict: {'PASS' if ok else 'FAIL'} ({seconds:.0f} s)")
    print("  faults:")
    for fault in f["faults"]:
        print(f"    - {fault}")
    print(f"  reports: {f['keys']:,} keys, {f['tries']:,} tries ({failed} failed); {f['acknowledged']:,} "
          f"acknowledged ({f['acknowledged_on_a_retry']:,} on a retry, {f['acknowledged_as_replay']:,} of them "
          f"answered as a replay), {f['never_acknowledged']:,} never acknowledged during the load")
    print(f"  replays: {f['replays']:,}; of the never acknowledged, {f['never_acknowledged_but_stored']:,} had been "
          f"stored (the answer was lost) and {f['never_acknowledged_created_on_replay']:,} were created by the replay")
    print(f"  incidents: {f['incidents']:,}; supervisor actions: "
          + (", ".join(f"{k} {v}" for k, v in sorted(f["supervisor_actions"].items())) or "none"))
    print(f"  sweep: {f['escalations']:,} escalations, {f['supervised']:,} supervised, {f['reminders']:,} reminders, "
          f"{f['hand_offs']:,} task hand-offs")
    print(f"  pushes: {f['inbox_rows']:,} inbox rows, {f['pushes']:,} outbox rows; the fake FCM got "
          f"{f['fcm_requests']:,} messages, {f['fcm_distinct']:,} distinct message ids: {f['duplicates']:,} "
          f"duplicate{'' if f['duplicates'] == 1 else 's'} ({f['pushes_sent_twice']:,} "
          f"push{'' if f['pushes_sent_twice'] == 1 else 'es'} sent more than once) for the phone to drop by message_id")
    for check in checks:
        print(f"  [{'ok' if check.ok else 'FAIL'}] {check.name}" + (f": {check.detail}" if check.detail else ""))
        if not check.ok:
            for row in check.rows[:SHOWN]:
                print(f"         {row}")
            if len(check.rows) > SHOWN:
                print(f"         … and {len(check.rows) - SHOWN} more")
    return ok


# ------------------------------------------------------------------ main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=90, help="seconds of load (default 90)")
    p.add_argument("--clients", type=int, default=4, help="client threads reporting (default 4)")
    p.add_argument("--rate", type=float, default=12, help="new reports a second, all clients together (default 12)")
    p.add_argument("--dispatch-share", type=float, default=0.3,
                   help="share of new cases a supervisor accepts and dispatches (default 0.3)")
    p.add_argument("--stage-seconds", type=float, default=15,
                   help="how long each level's stage lasts (default 15; the yellow reminder at 3/4)")
    p.add_argument("--faults", default="db,web,answers,dispatch",
                   help="which faults, in this order through the load: db (SIGKILL to the postmaster and its "
                        "backends, at 1/5), web (to gunicorn and the worker, at 2/5), dispatch (to the worker "
                        "while it sends pushes, at 3/5), answers (half the answers cut on their way back for the "
                        "last tenth of the load); default all")
    p.add_argument("--db-down-seconds", type=float, default=3, help="how long the database stays down (default 3)")
    p.add_argument("--worker-interval", type=float, default=1,
                   help="FENGQIAO_WORKER_INTERVAL_SECONDS of the worker (default 1)")
    p.add_argument("--lease-seconds", type=float, default=15,
                   help="FENGQIAO_PUSH_LEASE_SECONDS: when a dead worker's pushes go out again (default 15)")
    p.add_argument("--settle-timeout", type=float, default=None,
                   help="seconds to wait for the sweep to settle (default: 6 stages + the lease + 60)")
    p.add_argument("--pg-port", type=int, default=54360, help="the cluster's port (socket only; default 54360)")
    p.add_argument("--web-port", type=int, default=5460,
                   help="gunicorn's port on 127.0.0.1, or the next free one of the ten from it (default 5460)")
    p.add_argument("--dir", help="where the cluster and the logs go, kept afterwards (default: a new temporary "
                                 "directory, deleted after a run that passes)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory even when the run passes")
    p.add_argument("--progress-every", type=float, default=5, help="seconds between progress lines (default 5)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", help="also write the figures and checks to this file")
    p.add_argument("--worker-for-fake-fcm", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = set(args.faults) - {"db", "web", "answers", "dispatch"}
    if unknown:
        p.error(f"unknown faults: {', '.join(sorted(unknown))}")
    if args.settle_timeout is None:
        args.settle_timeout = 6 * args.stage_seconds + args.lease_seconds + 60
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker_for_fake_fcm:
        run_worker_against_fake_fcm(args.worker_for_fake_fcm)
        return 0
    become_subreaper()
    run = Run(args)

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    ok, keep = False, args.keep
    try:
        run.set_up()
        run.load()
        run.phase = "replaying"
        run.say(f"Replaying every key ({len(run.ledger.reports):,}) with the same body")
        unanswered = replay_all(run.base, run.fixture, run.ledger, args.clients, timeout=120)
        run.say(f"replayed: {len(run.ledger.reports) - len(unanswered):,} answered")
        settled = run.settle()
        checks, figures = verdict(run, unanswered, settled)
        ok = print_verdict(checks, figures, run.clock())
        if args.json:
            Path(args.json).write_text(json.dumps({"ok": ok, "figures": figures, "checks": [
                {"name": c.name, "ok": c.ok, "detail": c.detail, "rows": [list(map(str, r)) if isinstance(r, tuple)
                                                                        else str(r) for r in c.rows[:100]]}
                for c in checks]}, ensure_ascii=False, indent=2))
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        keep = True
    finally:
        run.clean_up()
        if ok and not keep and not args.dir:
            shutil.rmtree(run.dir, ignore_errors=True)
        else:
            print(f"The cluster's data and the logs are kept in {run.dir}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
