"""The background worker (``flask worker``): the escalation sweep, the early warning, the
push dispatcher, patrols' upkeep and export jobs.

Each pass sweeps for what is due (reminders, escalations, supervision, unacknowledged
tasks), looks for cells turning hot every ``HOTSPOT_CHECK_MINUTES`` (docs/STATS.md),
then sends the outbox's due pushes, computes the patrol coverage of a past day whose points
changed since (docs/FIELD.md "Coverage"), ends patrols left on too long and deletes the
points of those past the retention period (docs/FIELD.md), and last runs one export job
(docs/STATS.md "Exports"). Between passes it waits the interval, or less: a new outbox row (or a new
export job) wakes it at once (``LISTEN fengqiao_outbox``, notified by the outbox's insert
trigger). Any number of workers may run side by side: the sweep, the dispatcher and the
export jobs claim rows with ``SKIP LOCKED``. Each pass is told the time by a clock, so
tests drive it with their own.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg
from flask import current_app

from server.extensions import db, end_session
from server.models._base import utcnow
from server.notifications.dispatcher import DispatchReport, dispatch
from server.notifications.senders import PushSender
from server.services.coverage import compute_due as compute_due_coverage
from server.services.export_jobs import ExportReport
from server.services.export_jobs import work as run_exports
from server.services.hotspots import configured_rules, raise_alerts
from server.services.open311_clients import purge_usage
from server.services.patrols import close_abandoned, purge_expired
from server.services.sweep import SweepReport, sweep

log = logging.getLogger("fengqiao.worker")
CHANNEL = "fengqiao_outbox"


@dataclass
class PassReport:
    sweep: SweepReport
    push: DispatchReport
    alerts: int = 0  # hotspot alerts raised (early warning), when the pass looked for them
    exports: ExportReport | None = None  # export jobs recovered, expired, run
    patrols_abandoned: int = 0  # patrols left on too long, ended
    patrols_purged: int = 0  # patrols whose points and track passed the retention period, deleted
    coverage: tuple[date, int] | None = None  # the day whose patrol coverage was computed, and its cells
    open311_usage_purged: int = 0  # minutes of Open311 clients' usage older than two days, deleted


class OutboxListener:
    """A connection of its own that LISTENs for new outbox rows. When the connection is lost
    (the database restarted, the connection was cut) it is made again at the next wait; until
    then the worker polls."""

    def __init__(self):
        self._url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: psycopg.Connection | None = None
        self._connect()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def _connect(self) -> bool:
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
        except psycopg.Error:
            return False
        try:
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error:
            conn.close()
            return False
        self._conn = conn
        return True

    def wait(self, seconds: float) -> bool:
        """True when a notification came within ``seconds``, or when the lost connection was
        just made again (what was notified meanwhile went unheard: a pass should look)."""
        if self._conn is None:
            if self._connect():
                log.info("worker: listening for new pushes again")
                return True
            time.sleep(max(0.0, seconds))
            return False
        try:
            for _ in self._conn.notifies(timeout=max(0.0, seconds), stop_after=1):
                return True
        except psycopg.Error as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.warning("worker: lost the connection that listens for new pushes (%s); polling until it is back",
                        reason)
            self.close()
        return False

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def run(*, interval_s: float, sender: PushSender, clock: Callable[[], datetime] = utcnow,
        passes: int | None = None, on_pass: Callable[[PassReport], None] | None = None,
        stop: Callable[[], bool] = lambda: False, listen: bool = True) -> int:
    """Pass after pass until ``stop()`` (or ``passes`` passes); returns the passes made. A
    pass that fails (the database went away, a bug) is logged and the loop goes on."""
    listener = _listener() if listen else None
    done, alerts_checked = 0, None
    every = timedelta(minutes=current_app.config["HOTSPOT_CHECK_MINUTES"])
    try:
        while not stop() and (passes is None or done < passes):
            started = time.monotonic()
            try:
                now = clock()
                swept, alerts = sweep(now), 0
                if alerts_checked is None or now - alerts_checked >= every:  # early warning, now and then
                    alerts = raise_alerts(now, configured_rules(current_app.config))
                    db.session.commit()
                    alerts_checked = now
                report = PassReport(swept, dispatch(now, sender), alerts)
                # each step on its own: one that fails (a bad day's geometry) does not hold back the others
                report.patrols_abandoned = _step("patrols left on", 0, close_abandoned, now)
                report.patrols_purged = _step("patrol retention", 0, purge_expired, now)
                report.open311_usage_purged = _step("open311 usage", 0, purge_usage, now)
                report.coverage = _step("coverage", None, compute_due_coverage, now)  # a day at most
                report.exports = _step("exports", None, run_exports, clock)  # last: a long export holds only this pass
                if on_pass:
                    on_pass(report)
            except Exception:
                log.exception("worker: pass failed")
            finally:
                end_session()  # rolls back what failed; a database gone meanwhile does not stop the loop
            done += 1
            if passes is not None and done >= passes:
                break
            _pause(started + interval_s, stop, listener)
    finally:
        if listener is not None:
            listener.close()
    return done


def _step(name: str, failed, work: Callable, *args):
    """Run one step of a pass, ``work(*args)``; when it raises, log it, roll back and answer
    ``failed``."""
    try:
        return work(*args)
    except Exception:
        db.session.rollback()
        log.exception("worker: %s failed", name)
        return failed


def _listener() -> OutboxListener:
    listener = OutboxListener()
    if not listener.connected:
        log.warning("worker: cannot LISTEN for new pushes yet; polling until the database answers")
    return listener


def _pause(until: float, stop: Callable[[], bool], listener: OutboxListener | None, slice_s: float = 0.5) -> None:
    """Wait until the monotonic instant ``until``; a new push or ``stop()`` ends it early."""
    while not stop() and (left := until - time.monotonic()) > 0:
        if listener is None:
            time.sleep(min(slice_s, left))
        elif listener.wait(min(slice_s, left)):
            return
