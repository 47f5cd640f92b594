"""The raw side: the service's own locate SQL run directly on PostGIS.

pgbench (C code, prepared statements) gives the throughput and latency at each
concurrency; a psycopg loop gives a single-client reference from Python and counts
how many of the random points fall in a cell (pgbench does not look at rows).
"""
from __future__ import annotations

import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

from server.services.regions import _LOCATE_SQL

from . import OUT_DIR, say
from .stats import RunResult, summarise

PGBENCH = Path("/usr/lib/postgresql/15/bin/pgbench")
ADMIN_SCOPE = "/"  # an administrator's scope: every live cell is a candidate
MICRODEGREES = 1_000_000  # pgbench draws integers: points are drawn in 1e-6° steps


def conninfo(sqlalchemy_url: str) -> str:
    """The libpq URI of a SQLAlchemy URL (``postgresql+psycopg://`` → ``postgresql://``)."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", sqlalchemy_url)


def locate_sql() -> str:
    """The exact text of the service's locate statement (named ``:lon``, ``:lat``, ``:scope``)."""
    return _LOCATE_SQL.text.strip()


def vacuum_analyze(dsn: str) -> None:
    """VACUUM ANALYZE the regions table so that both sides see the same fresh statistics."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE regions")


def server_versions(dsn: str) -> dict:
    """PostgreSQL and PostGIS versions as the server reports them."""
    with psycopg.connect(dsn) as conn:
        pg = conn.execute("SELECT version()").fetchone()[0]
        postgis = conn.execute("SELECT postgis_full_version()").fetchone()[0]
    geos = re.search(r'GEOS="([^"]+)"', postgis)
    postgis_short = re.search(r'POSTGIS="([^"]+)"', postgis)
    return {"postgresql": pg.split(" on ")[0], "postgis": postgis_short.group(1) if postgis_short else postgis,
            "geos": geos.group(1) if geos else None}


# ------------------------------------------------------------------ pgbench

def pgbench_script(bbox: tuple[float, float, float, float]) -> str:
    """A pgbench script: a uniform random point in ``bbox``, then the locate SQL."""
    x0, y0, x1, y1 = (round(v * MICRODEGREES) for v in bbox)
    return (f"\\set lon random({x0}, {x1}) / {MICRODEGREES}.0\n"
            f"\\set lat random({y0}, {y1}) / {MICRODEGREES}.0\n"
            f"{locate_sql()};\n")


def _pgbench_command(dsn: str, script: Path, concurrency: int, seconds: int, log_prefix: Path | None,
                     defines: dict) -> list[str]:
    command = [str(PGBENCH), "-n", "-M", "prepared", "-c", str(concurrency), "-j", str(concurrency),
               "-T", str(seconds), "-f", str(script)]
    for name, value in defines.items():
        command += ["-D", f"{name}={value}"]
    if log_prefix is not None:
        command += ["-l", f"--log-prefix={log_prefix}"]
    return command + [dsn]


def _transaction_latencies_ms(log_dir: Path) -> list[float]:
    """Per-transaction latencies from pgbench's -l logs (third column, microseconds)."""
    latencies = []
    for path in log_dir.glob("pgbench_log*"):
        with path.open() as f:
            latencies.extend(int(line.split()[2]) / 1000 for line in f)
    return latencies


def _pgbench_counts(output: str) -> tuple[float, int]:
    """(duration in s, failed transactions) from pgbench's summary."""
    duration = float(re.search(r"^duration: (\d+) s", output, re.M).group(1))
    failed = re.search(r"^number of failed transactions: (\d+)", output, re.M)
    return duration, int(failed.group(1)) if failed else 0


def run_pgbench_script(dsn: str, name: str, script_text: str, concurrency: int, seconds: int, warmup: int,
                       defines: dict | None = None, before_measure=None) -> RunResult:
    """Warm up, call ``before_measure()`` (if any), then run pgbench for ``seconds`` at
    ``concurrency`` clients (one thread each) on the script ``script_text``.

    The script, pgbench's report and (while they are parsed) its per-transaction logs go to
    ``bench/out/pgbench-{name}-c{concurrency}/`` (``pgbench-c{concurrency}`` for locate).
    """
    work = OUT_DIR / (f"pgbench-c{concurrency}" if name == "locate" else f"pgbench-{name}-c{concurrency}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    script = work / f"{name}.sql"
    script.write_text(script_text)
    defines = defines or {}
    if warmup:
        subprocess.run(_pgbench_command(dsn, script, concurrency, warmup, None, defines), check=True,
                       capture_output=True)
    if before_measure is not None:
        before_measure()
    command = _pgbench_command(dsn, script, concurrency, seconds, work / "pgbench_log", defines)
    shown = " ".join(command[:-1]).replace(str(OUT_DIR), "bench/out") + " $DSN"
    say(f"  {shown}")
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    (work / "report.txt").write_text(done.stdout + done.stderr)
    duration, failed = _pgbench_counts(done.stdout)
    latencies = _transaction_latencies_ms(work)
    for log in work.glob("pgbench_log*"):
        log.unlink()
    return summarise("pgbench", concurrency, duration, latencies, errors=failed, command=shown)


def run_pgbench(dsn: str, bbox, concurrency: int, seconds: int, warmup: int) -> RunResult:
    """The locate statement: warm up, then run pgbench for ``seconds`` at ``concurrency`` clients."""
    return run_pgbench_script(dsn, "locate", pgbench_script(bbox), concurrency, seconds, warmup,
                              {"scope": ADMIN_SCOPE})


# ------------------------------------------------------------------ psycopg reference

def random_point(rng: random.Random, bbox) -> tuple[float, float]:
    """A uniform random (lon, lat) in ``bbox``, rounded to 1e-6° like the other clients."""
    x0, y0, x1, y1 = bbox
    return round(rng.uniform(x0, x1), 6), round(rng.uniform(y0, y1), 6)


def run_psycopg(dsn: str, bbox, seconds: float, warmup: float, seed: int = 1) -> RunResult:
    """One client, one prepared statement, sequential requests for ``seconds``."""
    sql = re.sub(r"(?<!:):(\w+)", r"%(\1)s", locate_sql().replace("%", "%%"))
    rng = random.Random(seed)
    latencies, hits, misses = [], 0, 0
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn, conn.cursor() as cur:
        for phase, limit in (("warmup", warmup), ("measure", seconds)):
            started = time.perf_counter()
            while (now := time.perf_counter()) - started < limit:
                lon, lat = random_point(rng, bbox)
                cur.execute(sql, {"lon": lon, "lat": lat, "scope": ADMIN_SCOPE}, prepare=True)
                found = bool(cur.fetchall())
                if phase == "measure":
                    latencies.append((time.perf_counter() - now) * 1000)
                    hits += found
                    misses += not found
            elapsed = time.perf_counter() - started
    return summarise("psycopg (sequential)", 1, elapsed, latencies, hits=hits, misses=misses)
