"""Benchmarks of Fengqiao against PostGIS itself (``make bench`` = ``python -m bench``).

The targets are the ones of the design document, measured as ratios in the same run:
the API's cost over the raw SQL it wraps. Progress goes to stderr, a short summary to
stdout, the full results to ``docs/BENCHMARKS.md`` and ``bench/out/results.json``.
"""
from __future__ import annotations

import sys
import time

from server.config import PROJECT_ROOT

OUT_DIR = PROJECT_ROOT / "bench" / "out"  # git-ignored: caches, logs, raw results


def say(message: str) -> None:
    """One line of progress on stderr, stamped with the wall-clock time."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
