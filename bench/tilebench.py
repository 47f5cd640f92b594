"""Vector tiles: the app's ``GET /api/v1/map/tiles/{z}/{x}/{y}.mvt`` against tipg serving the
same tables from the same database, in the same run.

Targets (issue: map views): with 1,000,000 incidents over the NYC cells, a tile at z ≥ 12 is
answered with p95 < 100 ms and weighs < 500 KB.

- *Data*: the escalation benchmark's fixture (1,000,000 open incidents over the 100,921 NYC
  cells, reused when it is there), overdue cases restored.
- *Tiles*: for each zoom, up to ``--tiles-per-zoom`` distinct tiles that hold incidents: the
  tiles of a fixed, seeded sample of incidents (chosen by a hash of their id, so the same
  incidents whatever the table's physical order), taken in a seeded order. Dense tiles are
  likelier to be chosen (a tile is drawn as often as it holds sampled incidents). Both servers
  get the same list.
- *Ours*: gunicorn as for the other benchmarks, the bench administrator's bearer token (an
  administrator sees everything). Regions of the zoom's level with their counts, clusters
  below ``INCIDENTS_FROM_ZOOM``, points with their light from it.
- *tipg* (from PyPI, pinned in ``bench/tipg-requirements.txt``) in a virtualenv of its own
  under ``bench/out/``, under uvicorn with as many worker processes as gunicorn has, pointed at
  the same database and restricted to ``public.incidents`` and ``public.regions``; its tile of
  the incidents (every point of the tile: ``TIPG_MAX_FEATURES_PER_TILE`` raised above the
  table's size) and, as a second peer, of the regions of the level we draw at that zoom.
- One client, sequential; for each tile the servers are asked in turn (the order alternating
  from tile to tile) so that both see the same machine; a warm-up pass over every tile first,
  then ``--tile-rounds`` measured passes. Both asked for ``Accept-Encoding: identity`` (tipg
  would gzip; we do not): the sizes are the tiles' bytes.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import random
import shlex
import subprocess
import sys
import time
import zlib
from contextlib import contextmanager
from datetime import datetime, timezone
from urllib.parse import quote, urlencode

import numpy as np
import psycopg
import requests
from flask import Flask
from sqlalchemy.engine import make_url

from server.config import PROJECT_ROOT
from server.domain.maps import INCIDENTS_FROM_ZOOM, region_level

from . import OUT_DIR, escalationbench, httpbench, say

ZOOMS = (10, 11, 12, 13, 14, 15, 16)
TILES_PER_ZOOM = 30
ROUNDS = 3
SEED = 20261123
SAMPLE_ONE_IN = 200  # incidents sampled: those whose seeded hash of the id falls in 1 of this many
TARGET = {"p95_ms": 100.0, "kb": 500.0, "from_zoom": 12}
KB = 1000  # bytes: "500 KB" read as 500,000 bytes (the stricter reading)
EXTENT = 4096  # our tiles' extent (server/services/maps.py); tipg's TIPG_TILE_RESOLUTION default is the same
BUFFER = 64  # our tiles' buffer; tipg is given the same (TIPG_TILE_BUFFER)
TIPG_REQUIREMENTS = PROJECT_ROOT / "bench" / "tipg-requirements.txt"
TIPG_VENV = OUT_DIR / "tipg-venv"
TIPG_DIR = OUT_DIR / "tipg"  # uvicorn's working directory: no stray .env file is read
TIPG_TABLES = ("public.incidents", "public.regions")
TIPG_MAX_FEATURES = 2_000_000  # above the table's 1,000,000 rows: every point of a tile is returned
INCIDENT_PROPERTIES = "id,category_id,status,priority"
REGION_PROPERTIES = "id,code,name,level"
SCREENSHOT = PROJECT_ROOT / "docs" / "img" / "map.png"
SCREENSHOT_VIEW = {"center": (-73.995, 40.68), "zoom": 13.0}  # Brooklyn by the water (Red Hook, Gowanus)
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


# ------------------------------------------------------------------ the tiles

def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The XYZ tile (x, y) of a lon/lat point at zoom ``z`` (Web Mercator)."""
    n = 2 ** z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def sample_tiles(dsn: str, zooms, per_zoom: int, seed: int) -> dict[int, list[tuple[int, int]]]:
    """Up to ``per_zoom`` distinct tiles a zoom, drawn through a seeded sample of incidents."""
    with psycopg.connect(dsn) as conn:
        points = conn.execute("""
            SELECT id, ST_X(geom), ST_Y(geom) FROM incidents
            WHERE abs(hashint8(id + %(seed)s)) %% %(one_in)s = 0 ORDER BY id
        """, {"seed": seed, "one_in": SAMPLE_ONE_IN}).fetchall()
    if not points:
        raise RuntimeError("no incidents to sample tiles from")
    random.Random(seed).shuffle(points)
    tiles = {}
    for z in zooms:
        chosen: list[tuple[int, int]] = []
        for _, lon, lat in points:
            t = tile_of(lon, lat, z)
            if t not in chosen:
                chosen.append(t)
                if len(chosen) == per_zoom:
                    break
        tiles[z] = chosen
    return tiles


# ------------------------------------------------------------------ counting features

def _varint(buf, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf):
    """(field number, value) of each field of a protobuf message (LEN values as memoryviews)."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire} in a vector tile")
        yield key >> 3, value


def layer_counts(tile: bytes) -> dict[str, int]:
    """Features per layer of a Mapbox Vector Tile, without decoding them (a tile of 300,000
    points is counted in a fraction of a second)."""
    counts: dict[str, int] = {}
    for field, layer in _fields(memoryview(tile)):
        if field != 3:  # Tile.layers
            continue
        name, features = "", 0
        for f, value in _fields(layer):
            if f == 1:  # Layer.name
                name = bytes(value).decode()
            elif f == 2:  # Layer.features
                features += 1
        counts[name] = counts.get(name, 0) + features
    return counts


def cluster_total(tile: bytes) -> int:
    """The incidents our clusters layer stands for: the sum of its ``count`` attributes."""
    import mapbox_vector_tile  # a dev dependency (requirements-dev.txt)

    layer = mapbox_vector_tile.decode(tile).get("clusters", {"features": []})
    return sum(int(f["properties"]["count"]) for f in layer["features"])


# ------------------------------------------------------------------ tipg: its virtualenv and its server

def _requirements_digest() -> str:
    return hashlib.sha256(TIPG_REQUIREMENTS.read_bytes()).hexdigest()


def ensure_tipg_venv() -> dict:
    """The virtualenv under bench/out/ with tipg and uvicorn as pinned, made on first use (or
    when the pins change); returns the installed versions."""
    python = TIPG_VENV / "bin" / "python"
    marker = TIPG_VENV / ".installed"
    digest = _requirements_digest()
    if not (python.exists() and marker.exists() and marker.read_text().strip() == digest):
        say(f"tipg: creating its own virtualenv in {TIPG_VENV.relative_to(PROJECT_ROOT)} (first use, or new pins)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(TIPG_VENV)], check=True)
        say(f"tipg: installing {TIPG_REQUIREMENTS.relative_to(PROJECT_ROOT)} into it (pip, a minute or so)")
        with open(OUT_DIR / "tipg-pip.log", "w") as log:
            done = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                                   "-r", str(TIPG_REQUIREMENTS)], stdout=log, stderr=subprocess.STDOUT)
        if done.returncode:
            raise RuntimeError(f"pip could not install {TIPG_REQUIREMENTS.name} (exit {done.returncode}); "
                               "see bench/out/tipg-pip.log")
        marker.write_text(digest + "\n")
        say("tipg: virtualenv ready")
    done = subprocess.run([str(python), "-c", "from importlib.metadata import version as v; "
                           "print(v('tipg'), v('uvicorn'), v('asyncpg'), v('fastapi'))"],
                          check=True, capture_output=True, text=True)
    tipg, uvicorn, asyncpg, fastapi = done.stdout.split()
    return {"tipg": tipg, "uvicorn": uvicorn, "asyncpg": asyncpg, "fastapi": fastapi}


def with_statement_timeout(url: str, ms: int) -> str:
    """The SQLAlchemy URL with ``statement_timeout`` set on every connection (libpq's ``options``)."""
    u = make_url(url).update_query_dict({"options": f"-c statement_timeout={ms}"})
    return u.render_as_string(hide_password=False)


def tipg_database_url(url: str, jit: str | None = None, statement_timeout_ms: int | None = None) -> str:
    """The bench's SQLAlchemy URL as the plain ``postgresql://`` DSN tipg takes (DATABASE_URL).

    tipg validates it as a pydantic ``PostgresDsn`` (a host is required) and asyncpg reads it,
    which lets a host in the URL win over a ``host=`` query parameter: a Unix socket directory
    (the embedded cluster's) therefore goes percent-encoded into the host part, where asyncpg
    reads it back. ``jit`` and ``statement_timeout`` (server settings) go into the query, where
    asyncpg passes them on.
    """
    u = make_url(url)
    query = {k: (v[-1] if isinstance(v, tuple) else v) for k, v in u.query.items()}
    host = u.host or query.pop("host", None) or "localhost"
    query.pop("host", None)
    port = u.port or query.pop("port", None) or 5432
    query.pop("port", None)
    auth = quote(u.username or "", safe="")
    if u.password:
        auth += ":" + quote(u.password, safe="")
    if jit:
        query["jit"] = jit
    if statement_timeout_ms:
        query["statement_timeout"] = str(statement_timeout_ms)
    dsn = f"postgresql://{auth}{'@' if auth else ''}{quote(host, safe='')}:{port}/{quote(u.database or '')}"
    return dsn + (f"?{urlencode(query)}" if query else "")


def _tipg_env(database_url: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TIPG_", "POSTGRES_", "DATABASE_URL", "DB_MIN_CONN", "DB_MAX_"))}
    return {**env,
            "DATABASE_URL": database_url,
            "TIPG_DB_SCHEMAS": '["public"]',
            "TIPG_DB_TABLES": "[" + ",".join(f'"{t}"' for t in TIPG_TABLES) + "]",
            "TIPG_DB_FUNCTIONS": "[]",  # no function collections
            "TIPG_DB_DATETIME_EXTENT": "false",  # a min/max of every timestamp column of 1,000,000 rows at start
            "TIPG_MAX_FEATURES_PER_TILE": str(TIPG_MAX_FEATURES),
            "TIPG_TILE_BUFFER": str(BUFFER),
            "TIPG_CATALOG_TTL": "0"}  # no catalog refresh in the middle of a measured pass


def _tipg_settings_shown(env: dict) -> str:
    tipg = (f"{k}={shlex.quote(env[k])}" for k in sorted(env) if k.startswith("TIPG_"))
    return " ".join(["DATABASE_URL=$DSN", *tipg])


@contextmanager
def tipg_server(url: str, workers: int, jit: str | None = None, statement_timeout_ms: int | None = None):
    """uvicorn serving ``tipg.main:app`` on a free 127.0.0.1 port; yields (base URL, info)."""
    port = httpbench.free_port()
    TIPG_DIR.mkdir(parents=True, exist_ok=True)
    env = _tipg_env(tipg_database_url(url, jit, statement_timeout_ms))
    command = [str(TIPG_VENV / "bin" / "python"), "-m", "uvicorn", "tipg.main:app", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--timeout-keep-alive", "75"]
    with open(OUT_DIR / "tipg.log", "w") as log:
        proc = subprocess.Popen(command, cwd=TIPG_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    say(f"tipg: uvicorn pid {proc.pid}, {workers} worker process{'es' if workers > 1 else ''}, port {port}; "
        "waiting for its catalog")
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_tipg(base_url, proc)
        say("tipg: ready")
        shown = " ".join(["uvicorn", *command[3:]]).replace(f"--port {port}", "--port $PORT")
        yield base_url, {"command": shown, "settings": _tipg_settings_shown(env)}
    finally:
        httpbench.stop_server(proc)
        say(f"tipg: uvicorn pid {proc.pid} stopped")


def _wait_tipg(base_url: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    """Until tipg lists both collections (its catalog is read at start)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tipg's uvicorn exited with {proc.returncode}; see bench/out/tipg.log")
        try:
            answer = requests.get(base_url + "/collections", timeout=10)
            if answer.ok:
                ids = {c["id"] for c in answer.json()["collections"]}
                if set(TIPG_TABLES) <= ids:
                    return
                raise RuntimeError(f"tipg serves {sorted(ids)}, not {TIPG_TABLES}; see bench/out/tipg.log")
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"tipg did not list its collections within {timeout_s:.0f} s; see bench/out/tipg.log")


# ------------------------------------------------------------------ measuring

def _ours_url(base: str, z: int, x: int, y: int) -> str:
    return f"{base}/api/v1/map/tiles/{z}/{x}/{y}.mvt"


def _tipg_points_url(base: str, z: int, x: int, y: int) -> str:
    return (f"{base}/collections/public.incidents/tiles/WebMercatorQuad/{z}/{x}/{y}?"
            + urlencode({"properties": INCIDENT_PROPERTIES}))


def _tipg_regions_url(base: str, z: int, x: int, y: int) -> str:
    """The regions of the level we draw at ``z``, simplified as ours are (one tile unit, in degrees)."""
    return (f"{base}/collections/public.regions/tiles/WebMercatorQuad/{z}/{x}/{y}?"
            + urlencode({"properties": REGION_PROPERTIES,
                         "filter": f"level = '{region_level(z)}' AND retired_at IS NULL", "filter-lang": "cql2-text",
                         "simplify": f"{360.0 / (2 ** z * EXTENT):.10f}"}))


def _get(session: requests.Session, url: str, timeout_s: float) -> tuple[float, bytes | None, str | None]:
    """(ms, body, None) for a 200, (ms, None, what went wrong) otherwise."""
    started = time.perf_counter()
    try:
        response = session.get(url, timeout=timeout_s)
        body = response.content
    except requests.RequestException as error:
        return (time.perf_counter() - started) * 1000, None, type(error).__name__
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        return elapsed, None, f"HTTP {response.status_code}"
    return elapsed, body, None


def _summary(latencies: list[float], sizes: list[int]) -> dict:
    ms = np.asarray(latencies, dtype=float)
    p50, p95 = np.percentile(ms, [50, 95])
    result = {"requests": int(ms.size), "p50_ms": float(p50), "p95_ms": float(p95), "max_ms": float(ms.max()),
              "mean_ms": float(ms.mean())}
    if sizes:
        b = np.asarray(sizes, dtype=float)
        result.update(size_p50_kb=float(np.percentile(b, 50)) / KB, size_p95_kb=float(np.percentile(b, 95)) / KB,
                      size_max_kb=float(b.max()) / KB)
    return result


def measure_zoom(z: int, tiles: list[tuple[int, int]], ours: requests.Session, ours_base: str,
                 tipg: requests.Session, tipg_base: str, rounds: int, regions_peer: bool, timeout_s: float) -> dict:
    """A warm-up pass, then ``rounds`` passes over the zoom's tiles, the servers in turn. A
    request that fails (an error status: the statement timeout; or no answer in time) counts in
    the latencies with the time it took, and is listed."""
    sides = {"ours": (ours, lambda x, y: _ours_url(ours_base, z, x, y)),
             "tipg": (tipg, lambda x, y: _tipg_points_url(tipg_base, z, x, y))}
    if regions_peer:
        sides["tipg_regions"] = (tipg, lambda x, y: _tipg_regions_url(tipg_base, z, x, y))
    names = list(sides)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    bodies: dict[str, list[bytes | None]] = {name: [None] * len(tiles) for name in names}
    failures: dict[str, list[dict]] = {name: [] for name in names}
    for n in range(rounds + 1):  # pass 0 warms up
        for i, (x, y) in enumerate(tiles):
            order = names if (i + n) % 2 == 0 else names[::-1]  # who goes first alternates
            for name in order:
                session, url = sides[name]
                elapsed, body, error = _get(session, url(x, y), timeout_s)
                if bodies[name][i] is None and body is not None:
                    bodies[name][i] = body  # the tile as answered (the same on every pass)
                if n:
                    latencies[name].append(elapsed)
                if error:
                    failures[name].append({"tile": f"{z}/{x}/{y}", "pass": n, "error": error, "ms": elapsed})
                    say(f"    {name} failed on {z}/{x}/{y} ({'warm-up' if n == 0 else f'pass {n}'}): {error} "
                        f"after {elapsed / 1000:.1f} s")
    result = {"zoom": z, "tiles": len(tiles), "rounds": rounds, "tile_list": [f"{z}/{x}/{y}" for x, y in tiles],
              "region_level": region_level(z), "layers": "incidents" if z >= INCIDENTS_FROM_ZOOM else "clusters"}
    for name in names:
        answered = [b for b in bodies[name] if b is not None]
        result[name] = _summary(latencies[name], [len(b) for b in answered])
        result[name]["failed"] = failures[name]
        result[name]["failed_measured"] = sum(1 for f in failures[name] if f["pass"])
        if name != "tipg_regions" and answered:
            result[name]["gzip_max_kb"] = max(len(zlib.compress(b, 6)) for b in answered) / KB
    result["ratio_p50"] = result["ours"]["p50_ms"] / result["tipg"]["p50_ms"]
    result["ratio_p95"] = result["ours"]["p95_ms"] / result["tipg"]["p95_ms"]
    result["checks"] = _compare(z, tiles, bodies)
    if z >= TARGET["from_zoom"]:
        result["target_met"] = (result["ours"]["p95_ms"] < TARGET["p95_ms"] and not result["ours"]["failed"]
                                and result["ours"].get("size_max_kb", math.inf) < TARGET["kb"])
    return result


def _compare(z: int, tiles, bodies: dict[str, list[bytes]]) -> dict:
    """Our incidents in each tile (points from INCIDENTS_FROM_ZOOM, the clusters' counts below)
    against tipg's points in the same tile; the features of each layer."""
    mismatches, ours_n, tipg_n, regions, features, tipg_regions = [], [], [], [], [], []
    layers: set[str] = set()
    for i, (x, y) in enumerate(tiles):
        if bodies["ours"][i] is None or bodies["tipg"][i] is None:
            continue  # a tile one of them never answered
        counts = layer_counts(bodies["ours"][i])
        layers.update(counts)
        ours_n.append(counts.get("incidents", 0) if z >= INCIDENTS_FROM_ZOOM else cluster_total(bodies["ours"][i]))
        tipg_n.append(sum(layer_counts(bodies["tipg"][i]).values()))
        regions.append(counts.get("regions", 0))
        features.append(counts.get("incidents", 0) + counts.get("clusters", 0))
        if "tipg_regions" in bodies and bodies["tipg_regions"][i] is not None:
            tipg_regions.append(sum(layer_counts(bodies["tipg_regions"][i]).values()))
        if ours_n[-1] != tipg_n[-1]:
            mismatches.append({"tile": f"{z}/{x}/{y}", "ours": ours_n[-1], "tipg": tipg_n[-1]})
    return {"incidents_ours": sum(ours_n), "points_tipg": sum(tipg_n), "mismatches": mismatches,
            "compared": len(ours_n), "points_tipg_max": max(tipg_n, default=0), "regions_ours": sum(regions),
            "regions_ours_max": max(regions, default=0), "features_ours_max": max(features, default=0),
            "layers_ours": sorted(layers, key=lambda name: (name != "regions", name)),
            "regions_tipg": sum(tipg_regions) if tipg_regions else None}


def explain_mismatches(dsn: str, mismatches: list[dict]) -> list[dict]:
    """For each tile where our count and tipg's differ, the incidents whose point meets the
    tile's box by ``&&`` (the GiST index's bounding boxes, stored as float4 and rounded outwards:
    the test our tile statement makes) and by ``ST_Intersects`` (exact: tipg's test)."""
    with psycopg.connect(dsn) as conn:
        for m in mismatches:
            z, x, y = (int(v) for v in m["tile"].split("/"))
            m["bbox_overlap"], m["intersects"] = conn.execute("""
                WITH t AS (SELECT ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4326) AS box)
                SELECT count(*) FILTER (WHERE i.geom && t.box), count(*) FILTER (WHERE ST_Intersects(i.geom, t.box))
                FROM incidents i, t WHERE i.geom && ST_Expand(t.box, 0.001)
            """, {"z": z, "x": x, "y": y}).fetchone()
            m["explained"] = m["ours"] == m["bbox_overlap"] and m["tipg"] == m["intersects"]
    return mismatches


# ------------------------------------------------------------------ the screenshot

def screenshot(base_url: str, username: str, password: str, path=SCREENSHOT) -> dict:
    """The /map page in headless Chromium, signed in as the bench administrator, over Brooklyn;
    saved as a palette PNG (small enough for the repository)."""
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--window-size=1366,768",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):  # nothing from the internet
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(f"{base_url}/map")
        driver.find_element(By.NAME, "username").send_keys(username)
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "#login button").click()
        _wait(lambda: driver.execute_script("return !!(window.fengqiaoMap && window.fengqiaoMap.loaded())"),
              "the map")
        (lon, lat), zoom = SCREENSHOT_VIEW["center"], SCREENSHOT_VIEW["zoom"]
        driver.execute_script(f"window.fengqiaoMap.jumpTo({{center: [{lon}, {lat}], zoom: {zoom}}})")
        time.sleep(0.5)
        _wait(lambda: driver.execute_script("const m = window.fengqiaoMap; "
                                            "return m.loaded() && m.areTilesLoaded();"), "the tiles", timeout=120)
        time.sleep(2)  # the side lists and the last fades
        png = driver.get_screenshot_as_png()
    finally:
        driver.quit()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    shown = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path
    return {"path": str(shown), "bytes": path.stat().st_size,
            "width": image.width, "height": image.height, "center": list(SCREENSHOT_VIEW["center"]), "zoom": zoom}


def _wait(check, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise RuntimeError(f"timed out waiting for {what}")


# ------------------------------------------------------------------ the section

def code_state() -> dict:
    """The commit the server code was measured at, and the files of server/ changed since."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    changed = [line[3:] for line in git("status", "--porcelain", "--", "server", "migrations", "wsgi.py").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "changed": changed}


def _database_settings(dsn: str) -> dict:
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in ("jit", "shared_buffers", "work_mem", "max_parallel_workers_per_gather")}


def measure(app: Flask, url: str, dsn: str, city_id: int, credentials: tuple[str, str], args) -> dict:
    """Fixture, tiles, tipg's virtualenv, both servers, each zoom, the screenshot."""
    from server.services.categories import seed_categories

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with app.app_context():
        seed_categories()  # idempotent (upserts by code), as the escalation benchmark does
    fixtures = escalationbench.ensure_fixtures(dsn, city_id, args.escalation_incidents, args.escalation_overdue)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE incidents")
    tiles = sample_tiles(dsn, args.tile_zooms, args.tiles_per_zoom, args.tile_seed)
    say("Tiles: " + ", ".join(f"z{z} {len(t)}" for z, t in tiles.items())
        + f" distinct tiles (seed {args.tile_seed}), {args.tile_rounds} measured passes each after a warm-up")
    versions = ensure_tipg_venv()
    options = httpbench.ServerOptions(workers=args.workers, worker_class=args.worker_class, threads=args.threads)
    zooms, shot = [], None
    timeout_ms = int(args.tile_timeout * 1000)  # each server's statement timeout; the client waits longer
    with httpbench.gunicorn(with_statement_timeout(url, timeout_ms), options) as (ours_base, ours_command), \
            tipg_server(url, args.workers, None if args.tipg_jit else "off", timeout_ms) as (tipg_base, tipg_info), \
            requests.Session() as ours, requests.Session() as tipg:
        token = httpbench.sign_in(ours_base, *credentials)
        ours.headers.update({"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"})
        tipg.headers["Accept-Encoding"] = "identity"  # tipg compresses when asked; we do not
        for z in args.tile_zooms:
            say(f"Tiles z{z}: {len(tiles[z])} tiles × ({args.tile_rounds} + warm-up) passes, ours / tipg points"
                + (" / tipg regions" if not args.no_tipg_regions else ""))
            zooms.append(measure_zoom(z, tiles[z], ours, ours_base, tipg, tipg_base, args.tile_rounds,
                                      not args.no_tipg_regions, args.tile_timeout + 15))
            r = zooms[-1]
            c = r["checks"]
            explain_mismatches(dsn, c["mismatches"])
            say(f"    ours p50 {r['ours']['p50_ms']:.1f} p95 {r['ours']['p95_ms']:.1f} ms, max "
                f"{r['ours'].get('size_max_kb', 0):.0f} kB, {r['ours']['failed_measured']} failed; tipg p50 "
                f"{r['tipg']['p50_ms']:.1f} p95 {r['tipg']['p95_ms']:.1f} ms, max "
                f"{r['tipg'].get('size_max_kb', 0):.0f} kB, {r['tipg']['failed_measured']} failed; incidents "
                f"{c['incidents_ours']:,} / "
                f"{c['points_tipg']:,} ({len(c['mismatches'])} tiles differ, "
                f"{sum(not m['explained'] for m in c['mismatches'])} of them not by the edge's rounding)")
        if not args.no_screenshot:
            say("Tiles: screenshot of /map over Brooklyn (headless Chromium)")
            try:
                shot = screenshot(ours_base, *credentials)
                say(f"    {shot['path']}: {shot['bytes'] / 1000:.0f} kB")
            except Exception as error:  # the numbers stand without the picture
                say(f"    no screenshot: {error!r}")
                shot = {"error": repr(error)}
    return {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "fixture": {"incidents": fixtures.incidents, "overdue": fixtures.overdue, "cached": fixtures.cached},
            "settings": {"zooms": list(args.tile_zooms), "tiles_per_zoom": args.tiles_per_zoom,
                         "rounds": args.tile_rounds, "seed": args.tile_seed, "sample_one_in": SAMPLE_ONE_IN,
                         "statement_timeout_s": args.tile_timeout,
                         "incidents_from_zoom": INCIDENTS_FROM_ZOOM, "extent": EXTENT, "buffer": BUFFER,
                         "incident_properties": INCIDENT_PROPERTIES, "region_properties": REGION_PROPERTIES},
            "ours": {"command": ours_command, "workers": args.workers, "worker_class": args.worker_class,
                     "threads": args.threads},
            "tipg": {**versions, **tipg_info, "workers": args.workers, "jit": None if args.tipg_jit else "off",
                     "max_features_per_tile": TIPG_MAX_FEATURES},
            "database": _database_settings(dsn), "code": code_state(), "target": TARGET, "zooms": zooms,
            "screenshot": shot,
            "seconds": time.perf_counter() - started, "load_before": load_before, "load_after": os.getloadavg()[0]}
