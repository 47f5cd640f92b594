"""Latency summaries shared by every client (pgbench, psycopg, wrk, requests)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class RunResult:
    """One load run: throughput, latency (milliseconds) and outcome counts.

    ``hits`` are answers that found a grid cell, ``misses`` the points in water or
    outside the city (404 / no row), ``errors`` everything else (transport errors,
    other statuses, failed transactions). ``hits`` is None when the client cannot
    tell (pgbench does not look at rows).
    """

    client: str
    concurrency: int
    seconds: float
    requests: int
    rps: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int = 0
    hits: int | None = None
    misses: int | None = None
    command: str = ""

    @property
    def hit_share(self) -> float | None:
        if self.hits is None or not self.requests:
            return None
        return self.hits / self.requests

    def as_dict(self) -> dict:
        return {**asdict(self), "hit_share": self.hit_share}


def summarise(client: str, concurrency: int, seconds: float, latencies_ms, **counts) -> RunResult:
    """A RunResult from per-request latencies in milliseconds over ``seconds`` of wall time."""
    values = np.asarray(latencies_ms, dtype=float)
    if not values.size:
        raise RuntimeError(f"{client}: no request completed")
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return RunResult(client=client, concurrency=concurrency, seconds=seconds, requests=int(values.size),
                     rps=values.size / seconds, mean_ms=float(values.mean()), p50_ms=float(p50),
                     p95_ms=float(p95), p99_ms=float(p99), **counts)
