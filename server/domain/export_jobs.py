"""Export jobs (导出任务, docs/STATS.md "Exports"): their states and how they move.

Pure rules: no Flask, no database. The worker's updates are made from ``TRANSITIONS`` and
guarded by the state they leave; callers ask the groups, never lists of states.
"""
from __future__ import annotations

KINDS = ("incidents", "metrics")
FORMATS = ("csv", "xlsx")
STATE_LABELS = {
    "queued": ("排队中", "Queued"),
    "running": ("导出中", "Running"),
    "done": ("已完成", "Done"),
    "failed": ("失败", "Failed"),
    "expired": ("已过期", "Expired"),
}
STATES = tuple(STATE_LABELS)
# (state, event) → state
TRANSITIONS = {
    ("queued", "claim"): "running",  # a worker takes it
    ("running", "finish"): "done",
    ("running", "fail"): "failed",
    ("running", "requeue"): "queued",  # its worker went silent; attempts left
    ("done", "expire"): "expired",  # the retention has passed: the file is deleted
    ("failed", "expire"): "expired",
}
ACTIVE = frozenset({"queued", "running"})
FINISHED = frozenset({"done", "failed", "expired"})


def sources(event: str) -> tuple[str, ...]:
    """The states ``event`` may move a job from."""
    return tuple(state for state, e in TRANSITIONS if e == event)


def target(event: str) -> str:
    """The state ``event`` moves a job to (one per event)."""
    (to,) = {to for (_, e), to in TRANSITIONS.items() if e == event}
    return to


def percent(rows_done: int, rows_total: int | None, state: str) -> int | None:
    """Progress in whole percent: None until the rows are counted; 100 when done (an empty
    export too); never 100 before."""
    if state == "done":
        return 100
    if rows_total is None:
        return None
    if rows_total == 0:
        return 0
    return min(99, rows_done * 100 // rows_total)
