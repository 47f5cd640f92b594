"""The API side: gunicorn serving the app on the bench database, driven by wrk.

wrk (C code, keep-alive connections) sends ``GET /api/v1/regions/locate`` with a
uniform random point per request and the bearer token of an administrator created in
the bench database; a ``requests`` loop gives a single-client reference from Python.
"""
from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import select

from server.config import PROJECT_ROOT
from server.extensions import db
from server.models import Region, User
from server.services.passwords import hash_password

from . import OUT_DIR, say
from .sqlbench import random_point
from .stats import RunResult, summarise

GUNICORN = PROJECT_ROOT / ".venv" / "bin" / "gunicorn"
LOCATE_PATH = "/api/v1/regions/locate"
FLOOR_PATH = "/healthz"
ADMIN_USERNAME = "bench-admin"
LUA_SCRIPT = Path(__file__).with_name("locate.lua")


@dataclass
class ServerOptions:
    """How gunicorn is run: ``workers`` processes of ``worker_class`` with ``threads`` each."""

    workers: int = 2
    worker_class: str = "gthread"
    threads: int = 2
    keep_alive_s: int = 75

    def args(self) -> list[str]:
        args = ["--workers", str(self.workers), "--worker-class", self.worker_class]
        if self.worker_class == "gthread":
            args += ["--threads", str(self.threads)]
        return args + ["--keep-alive", str(self.keep_alive_s)]


# ------------------------------------------------------------------ the server

def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(base_url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}; see bench/out/gunicorn.log")
        try:  # the port is open before the workers have imported the app: wait for an answer
            if requests.get(base_url + "/healthz", timeout=5).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError("gunicorn did not answer /healthz within 60 s; see bench/out/gunicorn.log")


def stop_server(proc: subprocess.Popen) -> None:
    """Stop a server we started (gunicorn, uvicorn: they stop their workers) by its pid:
    SIGTERM (graceful), SIGKILL after 30 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def gunicorn(database_url: str, options: ServerOptions):
    """Run gunicorn on a free 127.0.0.1 port against ``database_url``; yield (base URL, command)."""
    port = free_port()
    # (no control socket: gunicorn 27 puts it at one path per user, shared by every instance)
    command = [str(GUNICORN), "--bind", f"127.0.0.1:{port}", "--no-control-socket", *options.args(), "wsgi:app"]
    # The app logs one JSON line per request to stderr: kept, as in production, in a file.
    env = {**os.environ, "DATABASE_URL": database_url, "FENGQIAO_ACCESS_TOKEN_TTL": "3600"}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with open(OUT_DIR / "gunicorn.log", "w") as log:
        proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    say(f"gunicorn pid {proc.pid}: {' '.join(command[1:])}")
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_ready(base_url, proc)
        yield base_url, " ".join(["gunicorn", *command[1:]]).replace(f":{port}", ":$PORT")
    finally:
        stop_server(proc)
        say(f"gunicorn pid {proc.pid} stopped")


# ------------------------------------------------------------------ signing in

def ensure_admin(city_id: int) -> tuple[str, str]:
    """Create (or reset) the bench administrator scoped to the city; returns (name, password)."""
    password = secrets.token_urlsafe(18)
    user = db.session.scalar(select(User).where(User.username == ADMIN_USERNAME))
    if user is None:
        user = User(username=ADMIN_USERNAME, display_name="Benchmark administrator", role="admin",
                    region=db.session.get(Region, city_id))
        db.session.add(user)
    user.password_hash = hash_password(password)
    user.is_active = True
    db.session.commit()
    return ADMIN_USERNAME, password


def sign_in(base_url: str, username: str, password: str) -> str:
    """The access token of a sign-in through ``POST /api/v1/auth/login``."""
    response = requests.post(base_url + "/api/v1/auth/login", json={"username": username, "password": password},
                             timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"POST /api/v1/auth/login answered {response.status_code}: {response.text[:300]}")
    return response.json()["access_token"]


# ------------------------------------------------------------------ wrk

def _wrk_command(base_url: str, bbox, token: str, concurrency: int, seconds: int, path: str) -> list[str]:
    threads = min(concurrency, os.cpu_count() or 1)
    x0, y0, x1, y1 = bbox
    return ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds}s", "--timeout", "10s",
            "-s", str(LUA_SCRIPT), base_url + path, "--", token,
            f"{x0:.6f}", f"{y0:.6f}", f"{x1:.6f}", f"{y1:.6f}"]


def run_wrk(base_url: str, bbox, token: str, concurrency: int, seconds: int, warmup: int,
            path: str = LOCATE_PATH) -> RunResult:
    """Warm up, then run wrk for ``seconds`` with ``concurrency`` keep-alive connections.

    ``path`` defaults to locate; ``FLOOR_PATH`` measures the same server answering
    ``/healthz`` (no database, no authentication): what any request costs at the least.
    """
    if warmup:
        subprocess.run(_wrk_command(base_url, bbox, token, concurrency, warmup, path), check=True, capture_output=True)
    command = _wrk_command(base_url, bbox, token, concurrency, seconds, path)
    shown = " ".join(command).replace(token, "$TOKEN").replace(base_url, "http://127.0.0.1:$PORT")
    say(f"  {shown}")
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    name = "floor" if path == FLOOR_PATH else "locate"
    (OUT_DIR / f"wrk-{name}-c{concurrency}.txt").write_text(done.stdout + done.stderr)
    summary = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    seconds_run = summary["duration_us"] / 1e6
    requests_done = summary["requests"]
    transport = sum(summary["errors"][k] for k in ("connect", "read", "write", "timeout"))
    return RunResult(
        client="wrk", concurrency=concurrency, seconds=seconds_run, requests=requests_done,
        rps=requests_done / seconds_run, mean_ms=summary["mean_us"] / 1000, p50_ms=summary["p50_us"] / 1000,
        p95_ms=summary["p95_us"] / 1000, p99_ms=summary["p99_us"] / 1000,
        errors=transport + summary["other_status"], hits=summary["ok"], misses=summary["not_found"],
        command=shown.replace(str(LUA_SCRIPT), "bench/locate.lua"))


# ------------------------------------------------------------------ requests reference

def run_requests(base_url: str, bbox, token: str, seconds: float, warmup: float, seed: int = 2) -> RunResult:
    """One keep-alive client (``requests.Session``), sequential requests for ``seconds``."""
    rng = random.Random(seed)
    latencies, hits, misses, errors = [], 0, 0, 0
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        for phase, limit in (("warmup", warmup), ("measure", seconds)):
            started = time.perf_counter()
            while (now := time.perf_counter()) - started < limit:
                lon, lat = random_point(rng, bbox)
                status = session.get(base_url + LOCATE_PATH, params={"lon": lon, "lat": lat}, timeout=10).status_code
                if phase == "measure":
                    latencies.append((time.perf_counter() - now) * 1000)
                    hits += status == 200
                    misses += status == 404
                    errors += status not in (200, 404)
            elapsed = time.perf_counter() - started
    return summarise("requests (sequential)", 1, elapsed, latencies, hits=hits, misses=misses, errors=errors)
