"""The locust side of the load test (``bench/loadbench.py`` runs it: ``locust -f bench/loadmix.py --headless``).

Every simulated person is one locust user signed in as a real user of the bench database,
with that user's own bearer token, taken street by street from the data file the runner
writes (``FENGQIAO_LOAD_DATA``): the street's map screen, its community supervisors, its
grid workers' phones. A step of the load is a number of streets at their morning peak;
``LoadSteps`` adds streets step by step and judges each step (the knee), then runs the
target peak, and the recorder writes every request (start, latency, operation, status,
error code, X-Request-Id) and every late turn to ``FENGQIAO_LOAD_OUT``.

All users share one pool of keep-alive connections to gunicorn (``POOL`` connections, as a
reverse proxy's upstream pool would), so a request's latency includes any wait for a free
connection: what a phone behind the proxy would see.

Each person acts in turns, at the pace of the model (``docs/BENCHMARKS.md``, "The load
test"); a turn that starts more than a second after it was due is *late*: the server no
longer keeps up with the people at that step.
"""
from __future__ import annotations

import json
import math
import os
import random
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import gevent
from gevent import socket as gsocket
from gevent.event import Event
from gevent.pool import Pool
from geventhttpclient.client import HTTPClientPool
from locust import FastHttpUser, LoadTestShape, constant, events, task

DATA = json.loads(open(os.environ["FENGQIAO_LOAD_DATA"], encoding="utf-8").read())
OUT = os.environ["FENGQIAO_LOAD_OUT"]
MODEL = DATA["model"]
PHONE_IDS = frozenset(DATA["phone_ids"])
LATE_S = 1.0  # a turn starting later than this after it was due is late
REFRESH_EVERY_S = 15  # map.js: tiles and side lists reloaded at most this often on a busy street
ACTIONS = "/api/v1/incidents/{}/actions/{}"
EXPECTED_CONFLICTS = {"incident.version_conflict", "incident.invalid_transition"}

# one pool of keep-alive connections for every user (the proxy's upstream pool)
POOL = HTTPClientPool(concurrency=DATA["pool"], network_timeout=DATA["timeout_s"],
                      connection_timeout=DATA["timeout_s"])

# ------------------------------------------------------------------ the recorder

RECORDS: list[tuple] = []  # (start wall s, ms, operation, status, error code or exception, request id)
TURNS: list[tuple] = []  # (due wall s, kind, lag s)
STEPS: list[dict] = []  # each step as run: label, factor, streets, users, start, end, verdict
STATE = {"rate": 1.0, "next_actor": 0}


@events.request.add_listener
def _record(request_type, name, response_time, response_length, response, context, exception, start_time=None,
            **kwargs):
    status = getattr(response, "status_code", 0) or 0
    code = None
    if exception is not None and not status:
        code = type(exception).__name__
    elif status >= 400:
        try:
            code = json.loads(response.text).get("code")
        except (ValueError, AttributeError, TypeError):
            code = None
    headers = getattr(response, "headers", None)
    request_id = headers.get("X-Request-Id") if headers is not None else None
    RECORDS.append((start_time or time.time() - response_time / 1000, response_time, name, status, code,
                    request_id))


@events.quitting.add_listener
def _dump(environment, **kwargs):
    columns = list(zip(*RECORDS)) if RECORDS else [[] for _ in range(6)]
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"columns": ["start", "ms", "op", "status", "code", "request_id"],
                   "records": [list(c) for c in columns], "turns": [list(c) for c in zip(*TURNS)] if TURNS else [],
                   "steps": STEPS, "pushes": PUSHES}, f)


PHONES_BY_DEVICE: dict[str, Person] = {}  # a phone's FCM registration token → the person holding it
PUSHES = {"received": 0, "woke": 0, "task_seen": 0, "task_seen_again": 0}


def _listen_for_pushes() -> None:
    """The fake FCM sends each push's registration token here: the phone wakes up."""
    sock = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", DATA["push_port"]))
    while True:
        token = sock.recvfrom(512)[0].decode()
        PUSHES["received"] += 1
        phone = PHONES_BY_DEVICE.get(token)
        if phone is not None:
            PUSHES["woke"] += 1
            phone.push.set()


def say(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the people

def _now_iso(minutes_ago: float = 0) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")


class Person(FastHttpUser):
    """One person at a time: the next of the data file's people (street by street)."""

    client_pool = POOL
    wait_time = constant(0)
    host = DATA["base_url"]

    def on_start(self):
        self.person = DATA["people"][STATE["next_actor"] % len(DATA["people"])]
        STATE["next_actor"] += 1
        self.kind = self.person["kind"]
        self.auth = {"Authorization": "Bearer " + self.person["token"]}
        self.rng = random.Random(self.person["user_id"] * 7919 + STATE["next_actor"])
        self.period = MODEL[self.kind]["turn_s"]
        self.due = time.time() + self.rng.uniform(0, self.period)  # turns spread evenly from the start
        self.turn_no = self.rng.randrange(12)  # what comes every third or fourth turn is spread from the start
        getattr(self, f"_start_{self.kind}")()

    @task
    def turn(self):
        now = time.time()
        if now < self.due:
            if self.kind != "phone":
                gevent.sleep(self.due - now)
            elif self.push.wait(self.due - now):  # a push came first: look at once (not a turn of the pace)
                self.push.clear()
                self._pushed()
                return
        started = time.time()
        TURNS.append((self.due, self.kind, max(0.0, started - self.due)))
        # the next turn a period after this one was due; one that is already due starts when this
        # one ends (a late person does not do the missed turns twice over)
        self.due = max(self.due + self.period / STATE["rate"], started)
        self.turn_no += 1
        getattr(self, f"_turn_{self.kind}")()

    # -------------------------------------------------------------- requests

    def _get(self, path: str, op: str, expect=(200,)):
        with self.client.get(path, headers=self.auth, name=op, catch_response=True) as r:
            return self._judge(r, expect)

    def _post(self, path: str, op: str, body: dict, expect=(200,), headers=None):
        with self.client.post(path, json=body, headers={**self.auth, **(headers or {})}, name=op,
                              catch_response=True) as r:
            return self._judge(r, expect)

    @staticmethod
    def _judge(r, expect):
        if r.status_code in expect:
            r.success()
            return r
        if r.status_code == 409:
            try:
                code = json.loads(r.text).get("code")
            except ValueError:
                code = None
            if code in EXPECTED_CONFLICTS:  # a stale view: expected now and then, not a failure
                r.success()
                return None
        r.failure(f"{r.status_code}")
        return None

    # -------------------------------------------------------------- a grid worker's phone

    def _start_phone(self):
        p = self.person
        self.push = Event()
        PHONES_BY_DEVICE[p["device"]] = self
        self.cursor = p["cursor"]
        self.my_tasks: dict[int, dict] = {}  # my open and acknowledged tasks: id → incident id, status, turn acked
        self.versions: dict[int, int] = {}  # incident id → version, from sync and answers

    def _sync(self):
        """Pull what changed (docs/SYNC.md), page after page."""
        new_task = False
        for _ in range(5):
            r = self._get(f"/api/v1/sync?cursor={self.cursor}&limit=200", "GET /sync")
            if r is None:
                return new_task
            page = r.json()
            self.cursor = page["cursor"]
            for incident in page["incidents"]:
                self.versions[incident["id"]] = incident["version"]
            for t in page["tasks"]:
                if (t.get("assignee") or {}).get("id") != self.person["user_id"]:
                    continue
                if t["status"] in ("open", "acknowledged"):
                    known = self.my_tasks.get(t["id"])
                    if known is None:
                        new_task = True
                        self.my_tasks[t["id"]] = {"incident_id": t["incident_id"], "status": t["status"], "acked": -1}
                    elif known["status"] != t["status"]:
                        known["status"] = t["status"]
                else:
                    self.my_tasks.pop(t["id"], None)
            if not page["has_more"]:
                break
        return new_task

    def _act_on_tasks(self, resolve: bool = True):
        """Acknowledge (签收) a new task at once; resolve (处置反馈) one acknowledged a turn ago."""
        for t in list(self.my_tasks.values()):
            version = self.versions.get(t["incident_id"])
            if version is None:
                continue
            if t["status"] == "open":
                r = self._post(ACTIONS.format(t["incident_id"], "acknowledge"), "POST acknowledge",
                               {"version": version})
                if r is not None:
                    self.versions[t["incident_id"]] = r.json()["version"]
                    t["status"], t["acked"] = "acknowledged", self.turn_no
                break
        for task_id, t in list(self.my_tasks.items()) if resolve else []:
            version = self.versions.get(t["incident_id"])
            if t["status"] == "acknowledged" and 0 <= t["acked"] < self.turn_no and version is not None:
                r = self._post(ACTIONS.format(t["incident_id"], "resolve"), "POST resolve",
                               {"version": version, "note": "处理完毕 (bench)"})
                if r is not None:
                    self.versions[t["incident_id"]] = r.json()["version"]
                    self.my_tasks.pop(task_id, None)
                break

    def _inbox(self):
        r = self._get("/api/v1/me/notifications?unread=true&page_size=20", "GET /me/notifications")
        if r is not None:
            items = r.json()["items"]
            if items:
                self._post("/api/v1/me/notifications/read", "POST /me/notifications/read",
                           {"up_to_id": max(n["id"] for n in items)})

    def _report(self):
        """Report (上报) from a point of my cell, with its client UUID as the Idempotency-Key; a
        share of them sent twice, byte for byte (the first answer was lost)."""
        p, m = self.person, MODEL["phone"]
        lon, lat = self.rng.choice(p["points"])
        category = self.rng.choices(DATA["categories"], weights=DATA["category_weights"])[0]
        key = str(uuid.uuid4())
        body = {"client_uuid": key, "category": category, "source": "phone",
                "description": f"{DATA['mark']} {self.rng.choice(DATA['descriptions'])}",
                "location": {"type": "Point", "coordinates": [lon, lat]},
                "occurred_at": _now_iso(self.rng.uniform(1, 30))}
        r = self._post("/api/v1/incidents", "POST /incidents", body, expect=(201,),
                       headers={"Idempotency-Key": key})
        if r is not None and self.rng.random() < m["retry_share"]:
            with self.client.post("/api/v1/incidents", json=body, name="POST /incidents (retry)",
                                  headers={**self.auth, "Idempotency-Key": key}, catch_response=True) as again:
                if again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true" \
                        and again.json()["id"] == r.json()["id"]:
                    again.success()
                else:
                    again.failure(f"{again.status_code}: not a replay of the first answer")

    def _pushed(self):
        """A push (a new task, mostly): sync, read the inbox, acknowledge what is new. As docs/SYNC.md
        asks of an app: when the sync does not bring the pushed task yet (a transaction that began
        before it was written still runs), sync once more a second later."""
        if self._sync():
            PUSHES["task_seen"] += 1  # the sync after the push brought the new task
        else:
            gevent.sleep(1.0)
            if self._sync():
                PUSHES["task_seen_again"] += 1
        self._inbox()
        if self.my_tasks:
            self._act_on_tasks(resolve=False)

    def _turn_phone(self):
        """A turn (every 5 minutes): sync; read the inbox when a task came (the push) and every
        third turn; act on my tasks; now and then report (then sync again, as the app does after
        sending its queue); every fourth turn, the to-do list."""
        m = MODEL["phone"]
        new_task = self._sync()
        if new_task or self.turn_no % 3 == 0:
            self._inbox()
        if self.my_tasks:
            self._act_on_tasks()
        if self.rng.random() < m["report_per_turn"]:
            self._report()
            self._sync()
        if self.turn_no % 4 == 0:
            self._get("/api/v1/me/tasks?page_size=20", "GET /me/tasks")

    # -------------------------------------------------------------- a community supervisor

    def _start_supervisor(self):
        pass

    def _turn_supervisor(self):
        """A turn (every 3 minutes): the queue of new reports (accept (立案) or reject, then
        dispatch (派遣) to the reporter), the queue of resolved cases (verify: 核查结案), and a
        look through the open cases (a page of the list, or the overdue ones) and one of them."""
        most = MODEL["supervisor"]["acts_per_queue"]
        r = self._get("/api/v1/incidents?status=reported&sort=reported_at&page_size=20",
                      "GET /incidents?status=reported")
        for item in (r.json()["items"] if r is not None else [])[:most]:
            self._handle_report(item["id"])
        r = self._get("/api/v1/incidents?status=resolved&sort=reported_at&page_size=20",
                      "GET /incidents?status=resolved")
        for item in (r.json()["items"] if r is not None else [])[:most]:
            d = self._get(f"/api/v1/incidents/{item['id']}", "GET /incidents/{id}")
            if d is not None:
                self._post(ACTIONS.format(item["id"], "verify"), "POST verify", {"version": d.json()["version"]})
        if self.rng.random() < 0.5:
            r = self._get(f"/api/v1/incidents?status_group=open&sort=-reported_at&page_size=20"
                          f"&page={self.rng.randint(1, 3)}", "GET /incidents?status_group=open&page=")
        else:
            r = self._get("/api/v1/incidents?status_group=open&overdue=true&sort=due_at&page_size=20",
                          "GET /incidents?overdue=true")
        items = r.json()["items"] if r is not None else []
        if items:
            self._get(f"/api/v1/incidents/{self.rng.choice(items)['id']}", "GET /incidents/{id}")

    def _handle_report(self, incident_id: int):
        d = self._get(f"/api/v1/incidents/{incident_id}", "GET /incidents/{id}")
        if d is None:
            return
        incident = d.json()
        if self.rng.random() < MODEL["supervisor"]["reject_share"]:
            self._post(ACTIONS.format(incident_id, "reject"), "POST reject",
                       {"version": incident["version"], "note": "不属于受理范围 (bench)"})
            return
        r = self._post(ACTIONS.format(incident_id, "accept"), "POST accept", {"version": incident["version"]})
        if r is None:
            return
        accepted = r.json()
        if accepted["status"] != "accepted":  # dispatched at once by the category's policy (自动派遣)
            return
        version = accepted["version"]
        t = self._get(f"/api/v1/incidents/{incident_id}/dispatch-targets", "GET /incidents/{id}/dispatch-targets")
        if t is None:
            return
        workers = [w["id"] for w in t.json()["workers"] if w["id"] in PHONE_IDS]
        reporter = (incident.get("reporter") or {}).get("id")
        assignee = reporter if reporter in workers else (workers[0] if workers else None)
        if assignee is not None:
            self._post(ACTIONS.format(incident_id, "dispatch"), "POST dispatch",
                       {"version": version, "assignee_id": assignee, "note": "请尽快处置 (bench)"})

    # -------------------------------------------------------------- a street office's map screen

    def _start_screen(self):
        self.tiles_version = 0
        self.lists_due = self.tiles_due = False
        self.refreshed = 0.0
        self.cache: dict[str, float] = {}  # tile URL → when fetched (Cache-Control: private, max-age=15)
        self.view = None
        # the screen is opened at a moment of its first minute (screens do not all open at once)
        self.next_pan = time.time() + self.rng.uniform(0, MODEL["screen"]["pan_s"])
        r = self._get("/api/v1/map/changes", "GET /map/changes")
        self.changes = r.json()["cursor"] if r is not None else None

    def _view_tiles(self) -> list[tuple[int, int, int]]:
        """The tiles MapLibre asks for to fill the map's canvas (512-pixel vector tiles)."""
        z, lon, lat = self.view
        w, h = MODEL["screen"]["canvas_px"]
        size = 512 * 2 ** z
        cx = (lon + 180) / 360 * size
        cy = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * size
        n = 2 ** z
        xs = range(max(0, int((cx - w / 2) // 512)), min(n - 1, int((cx + w / 2) // 512)) + 1)
        ys = range(max(0, int((cy - h / 2) // 512)), min(n - 1, int((cy + h / 2) // 512)) + 1)
        return [(z, x, y) for x in xs for y in ys]

    def _load_tiles(self):
        """The view's tiles, six at a time as a browser fetches them; those fetched less than 15 s ago
        with the same URL come from the browser's cache."""
        now = time.time()
        urls = []
        for z, x, y in self._view_tiles():
            url = f"/api/v1/map/tiles/{z}/{x}/{y}.mvt?status_group=open&v={self.tiles_version}"
            if now - self.cache.get(url, 0) > 15:
                self.cache[url] = now
                urls.append((z, url))
        pool = Pool(6)
        for z, url in urls:
            pool.spawn(self._get, url, f"GET /map/tiles z{z}", (200, 204))
        pool.join()
        if len(self.cache) > 500:
            self.cache = {u: t for u, t in self.cache.items() if now - t <= 15}

    def _lists(self):
        """The side lists: overdue (超时) and supervised (督办) cases of the scope."""
        self._get("/api/v1/incidents?status_group=open&overdue=true&sort=due_at&page_size=50",
                  "GET /incidents?overdue=true (map)")
        self._get("/api/v1/incidents?status_group=open&supervised=true&sort=due_at&page_size=50",
                  "GET /incidents?supervised=true (map)")

    def _pan(self):
        """Move the view: a zoom from 12 to 16 over a place of the street; its tiles, and the region
        layer of the view as GeoJSON."""
        m = MODEL["screen"]
        z = self.rng.choices(m["zooms"], weights=m["zoom_weights"])[0]
        lon, lat = self.rng.choice(self.person["centres"])
        self.view = (z, lon, lat)
        self._load_tiles()
        w, h = m["canvas_px"]
        degrees = 360 / (512 * 2 ** z)  # per pixel, across
        dx, dy = w / 2 * degrees, h / 2 * degrees * math.cos(math.radians(lat))
        self._get(f"/api/v1/map/regions?bbox={lon - dx:.6f},{lat - dy:.6f},{lon + dx:.6f},{lat + dy:.6f}&zoom={z}",
                  "GET /map/regions")

    def _turn_screen(self):
        """A turn (every 5 s, as map.js polls when the server has no stream to spare): the changes
        since the last turn; when there were some, as the page does, the side lists again and, if
        a change is in view, every tile of the view (a new ``v``), at most once every
        ``REFRESH_EVERY_S``; every minute or so, a pan."""
        m = MODEL["screen"]
        if self.changes is None:
            self._start_screen()
            return
        r = self._get(f"/api/v1/map/changes?cursor={self.changes}", "GET /map/changes")
        if r is not None:
            page = r.json()
            self.changes = page["cursor"]
            if page["features"]:
                self.lists_due = True
                self.tiles_due = self.tiles_due or any(self._in_view(f) for f in page["features"])
        if time.time() >= self.next_pan:
            opening = self.view is None
            self.next_pan = time.time() + self.rng.expovariate(1 / m["pan_s"])
            self._pan()
            if opening:
                self._lists()
        elif self.lists_due and self.view is not None and time.time() - self.refreshed >= REFRESH_EVERY_S:
            gevent.sleep(0.5)  # map.js waits half a second for more changes
            self.refreshed = time.time()
            if self.tiles_due:
                self.tiles_version += 1
                self._load_tiles()
            self._lists()
            self.lists_due = self.tiles_due = False

    def _in_view(self, feature: dict) -> bool:
        """As map.js: the change's point within the view (and a kilometre around it)."""
        z, lon, lat = self.view or (0, 0, 0)
        w, h = MODEL["screen"]["canvas_px"]
        degrees = 360 / (512 * 2 ** z)
        dx, dy = w / 2 * degrees + 0.01, h / 2 * degrees * math.cos(math.radians(lat)) + 0.01
        x, y = feature["geometry"]["coordinates"][:2]
        return self.view is None or (abs(x - lon) <= dx and abs(y - lat) <= dy)


# ------------------------------------------------------------------ the steps and the knee

def _people_for(streets: int) -> int:
    return DATA["people_by_streets"][min(streets, len(DATA["people_by_streets"]) - 1)]


def judge(start: float, end: float) -> dict:
    """A step's verdict over [start, end): every operation's p99 under the limit, no
    unexpected answer, and at most the allowed share of late turns."""
    rules = DATA["knee"]
    by_op: dict[str, list[float]] = {}
    unexpected = 0
    for s, ms, op, status, code, _ in RECORDS:
        if start <= s < end:
            by_op.setdefault(op, []).append(ms)
            if not (200 <= status < 300 or (status == 409 and code in EXPECTED_CONFLICTS)):
                unexpected += 1
    worst = None
    for op, values in by_op.items():
        if len(values) >= rules["min_samples"]:
            values.sort()
            p99 = values[min(len(values) - 1, int(math.ceil(0.99 * len(values))) - 1)]
            if worst is None or p99 > worst[1]:
                worst = (op, p99)
    by_kind: dict[str, list[float]] = {}
    for due, kind, lag in TURNS:
        if start <= due < end:
            by_kind.setdefault(kind, []).append(lag)
    # the kind of person falling furthest behind (screens first: their turn is 5 s)
    late = max((sum(1 for lag in lags if lag > LATE_S) / len(lags) for lags in by_kind.values()), default=0.0)
    reasons = []
    if worst and worst[1] > rules["p99_ms"]:
        reasons.append(f"p99 of {worst[0]} {worst[1]:,.0f} ms > {rules['p99_ms']:,} ms")
    if unexpected:
        reasons.append(f"{unexpected} unexpected answers")
    if late > rules["late_share"]:
        reasons.append(f"{100 * late:.1f} % of a kind of person's turns late")
    return {"ok": not reasons, "reasons": reasons, "worst_op": worst[0] if worst else None,
            "worst_p99_ms": worst[1] if worst else None, "late_share": late, "unexpected": unexpected,
            "requests": sum(len(v) for v in by_op.values())}


class FloorUser(FastHttpUser):
    """The floor (``FENGQIAO_LOAD_FLOOR``: the rate to pace at, 0 unpaced): ``GET /healthz`` with a
    bearer token through the same pool of connections, at the whole run's rate spread over the
    users."""

    client_pool = POOL
    host = DATA["base_url"]
    wait_time = constant(0)
    floor_rate = float(os.environ.get("FENGQIAO_LOAD_FLOOR") or 0)

    def on_start(self):
        self.auth = {"Authorization": "Bearer " + DATA["people"][0]["token"]}
        self.interval = DATA["pool"] / self.floor_rate if self.floor_rate else 0.0
        self.due = time.time() + random.uniform(0, self.interval)  # the users' requests spread evenly

    @task
    def healthz(self):
        if self.interval:
            now = time.time()
            if now < self.due:
                gevent.sleep(self.due - now)
            self.due = max(self.due + self.interval, time.time())
        with self.client.get("/healthz", headers=self.auth, name="GET /healthz", catch_response=True) as r:
            Person._judge(r, (200,))


class _LoadSteps(LoadTestShape):
    """Streets added step by step until a step breaks twice in a row (the knee is the first of
    the two), then the target peak; a step past all the streets speeds everyone up instead."""

    abstract = True  # defined below only for the mix: the floor runs without a shape

    def __init__(self):
        super().__init__()
        self.plan = list(DATA["steps"])
        self.i = -1
        self.step = None
        self.broken = None  # the first broken step, waiting for the next one to confirm it
        self.knee_found = False
        self.target_done = False

    def _begin(self, step: dict) -> None:
        self.step = {**step, "start": time.time()}
        self.step["end"] = self.step["start"] + step["seconds"]
        STATE["rate"] = step.get("rate", 1.0)
        say(f"step {step['label']}: {step['streets']} streets, {_people_for(step['streets']):,} people, "
            f"pace x{STATE['rate']:g}, {step['seconds']} s")

    def _finish(self) -> None:
        s = self.step
        settle = min(DATA["target_settle_s"] if s.get("target") else DATA["settle_s"], s["seconds"] / 3)
        verdict = judge(s["start"] + settle, s["end"])
        STEPS.append({**s, "users": _people_for(s["streets"]), "measured_from": s["start"] + settle,
                      "verdict": verdict})
        say(f"  {verdict['requests'] / max(1e-9, s['end'] - s['start'] - settle):,.0f} req/s; worst p99 "
            f"{(verdict['worst_p99_ms'] or 0):,.0f} ms ({verdict['worst_op']}); late turns "
            f"{100 * verdict['late_share']:.1f} %; unexpected {verdict['unexpected']}: "
            + ("fine" if verdict["ok"] else "; ".join(verdict["reasons"])))
        if s.get("target"):
            self.target_done = True
        if not verdict["ok"]:
            if self.broken is not None:
                self.knee_found = True
            else:
                self.broken = s["label"]
        else:
            self.broken = None

    def _next(self) -> dict | None:
        if self.knee_found or self.i + 1 >= len(self.plan):
            target = DATA["target_step"]
            return None if self.target_done or target is None else target
        self.i += 1
        return self.plan[self.i]

    def tick(self):
        now = time.time()
        if self.step is not None and now - self.step.get("said", self.step["start"]) >= 30:
            self.step["said"] = now
            done = [r for r in RECORDS if r[0] >= self.step["start"]]
            slow = sum(1 for r in done if r[1] > DATA["knee"]["p99_ms"])
            say(f"  … {now - self.step['start']:.0f} s of {self.step['seconds']} s: {len(done):,} requests "
                f"({len(done) / (now - self.step['start']):.1f}/s), {slow:,} over {DATA['knee']['p99_ms']:,} ms, "
                f"{len(PHONES_BY_DEVICE):,} phones on")
        if self.step is None or time.time() >= self.step["end"]:
            if self.step is not None:
                self._finish()
            step = self._next()
            if step is None:
                return None
            self._begin(step)
        return _people_for(self.step["streets"]), DATA["spawn_rate"]


if "FENGQIAO_LOAD_FLOOR" not in os.environ:  # the floor runs with locust's own -u, -r and -t
    class LoadSteps(_LoadSteps):
        pass

    gevent.spawn(_listen_for_pushes)
