"""Duty, leave and who is given new work (docs/FIELD.md "Workload and duty").

Pure rules: no Flask, no database. A grid worker is **available** for new work when on duty
(上岗: the last word from the phone; no word at all counts as on duty), not on leave (请假)
at that instant and holding fewer than the limit of open tasks. New work for a cell goes to
its primary worker (A岗) when available, else to the available backup (B岗) holding the
fewest open tasks (then the lowest id), else to nobody: a supervisor dispatches it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

OFF_DUTY, ON_LEAVE, OVERLOADED = "off_duty", "on_leave", "overloaded"
UNAVAILABLE_LABELS = {
    OFF_DUTY: ("离岗", "Off duty"),
    ON_LEAVE: ("请假", "On leave"),
    OVERLOADED: ("任务已满", "Too many open tasks"),
}
DUTY_LABELS = {True: ("在岗", "On duty"), False: ("离岗", "Off duty")}
MAX_LEAVE_DAYS = 366  # a longer absence is not leave: the worker leaves the cell's assignments


@dataclass(frozen=True)
class Candidate:
    """A worker covering the cell, as the rules need to see them."""

    user_id: int
    primary: bool
    on_duty: bool
    on_leave: bool
    open_tasks: int


def unavailable(candidate: Candidate, max_open_tasks: int) -> str | None:
    """Why ``candidate`` is given no new work now (None: available)."""
    if not candidate.on_duty:
        return OFF_DUTY
    if candidate.on_leave:
        return ON_LEAVE
    if candidate.open_tasks >= max_open_tasks:
        return OVERLOADED
    return None


def choose(candidates: Iterable[Candidate], max_open_tasks: int) -> Candidate | None:
    """The worker new work of the cell goes to: the primary when available, else the available
    backup with the fewest open tasks (ties: the lowest id), else None."""
    available = [c for c in candidates if unavailable(c, max_open_tasks) is None]
    primary = [c for c in available if c.primary]
    if primary:
        return primary[0]
    backups = sorted((c for c in available if not c.primary), key=lambda c: (c.open_tasks, c.user_id))
    return backups[0] if backups else None
