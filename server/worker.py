"""The background worker (``flask worker``): the escalation sweep, on a short interval.

Any number of workers may run side by side (the sweep claims rows with ``SKIP LOCKED``).
Each pass is told the time by a clock, so tests drive it with their own. The push
dispatcher joins this loop next (docs/ESCALATION.md).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from server.extensions import db
from server.models._base import utcnow
from server.services.sweep import SweepReport, sweep

log = logging.getLogger("fengqiao.worker")


def run(*, interval_s: float, clock: Callable[[], datetime] = utcnow, passes: int | None = None,
        on_pass: Callable[[SweepReport], None] | None = None, stop: Callable[[], bool] = lambda: False) -> int:
    """Sweep every ``interval_s`` seconds until ``stop()`` (or ``passes`` passes); returns
    the number of passes. A pass that fails is logged and the loop goes on."""
    done = 0
    while not stop() and (passes is None or done < passes):
        started = time.monotonic()
        try:
            report = sweep(clock())
            if on_pass:
                on_pass(report)
        except Exception:  # the database went away, a bug: log, wait, try again
            db.session.rollback()
            log.exception("worker: sweep failed")
        finally:
            db.session.remove()
        done += 1
        if passes is not None and done >= passes:
            break
        _pause(started + interval_s, stop)
    return done


def _pause(until: float, stop: Callable[[], bool], slice_s: float = 0.2) -> None:
    """Sleep until the monotonic instant ``until``, waking early when ``stop()`` says so."""
    while not stop() and (left := until - time.monotonic()) > 0:
        time.sleep(min(slice_s, left))
