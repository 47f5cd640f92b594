"""What the numbers were measured on: CPU, memory, software versions."""
from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib.metadata import version

from .sqlbench import PGBENCH, server_versions


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            match = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        return match.group(1).strip() if match else platform.processor() or "unknown"
    except OSError:
        return platform.processor() or "unknown"


def _memory_gib() -> float:
    with open("/proc/meminfo") as f:
        kib = int(re.search(r"^MemTotal:\s+(\d+) kB", f.read(), re.M).group(1))
    return kib / 1024 / 1024


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            return re.search(r'^PRETTY_NAME="?([^"\n]+)', f.read(), re.M).group(1)
    except (OSError, AttributeError):
        return platform.platform()


def _tool_version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return (done.stdout or done.stderr).splitlines()[0].strip()


def describe(dsn: str) -> dict:
    """The machine and the software stack, as a flat dict for the report."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_memory_gib(), 1),
        "os": _os_name(),
        "python": platform.python_version(),
        "gunicorn": version("gunicorn"),
        "flask": version("flask"),
        "psycopg": version("psycopg"),
        "wrk": _tool_version(["wrk", "--version"]).split(" Copyright")[0],
        "locust": version("locust"),
        "pgbench": _tool_version([str(PGBENCH), "--version"]),
        **server_versions(dsn),
    }
