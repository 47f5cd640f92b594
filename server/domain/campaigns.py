"""Inspection campaigns (排查): a sweep ordered from above, one task per grid cell (docs/FIELD.md).

Pure rules: no Flask, no database. ``TASK_TRANSITIONS`` is the whole life of a campaign
task: which action moves it from which states to which. ``task_transition()`` is the only
place a task's state is decided; callers ask the groups (``is_to_do``, ``is_finished``)
and the services write the SQL of a transition from ``sources()`` and the target.

- ``find``: an incident reported with the task whose category lies in the campaign's
  groups (有发现); allowed after ``nothing_found`` too (something turned up after all:
  the nothing-found photo stays on the record), and again after ``found`` (another finding);
- ``nothing_found``: the worker inspected the cell and found nothing (零报告), with a photo;
- ``mark_overdue``: the deadline passed with the task still open (the sweep, 已超期);
- ``cancel``: the campaign was closed with the task still to do.

An overdue task may still be finished; it is then recorded as late (``is_late``).

Overdue escalation: the sweep tells the supervisors of the cell's community when the
deadline passes (stage 1), then, each ``interval`` later while the task is still not
finished, those of its street (stage 2) and district (stage 3); never twice a stage.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

TASK_STATES = ("open", "found", "nothing_found", "overdue", "cancelled")
TASK_STATE_LABELS = {
    "open": ("待排查", "Open"),
    "found": ("有发现", "Found"),
    "nothing_found": ("零报告", "Nothing found"),
    "overdue": ("已超期", "Overdue"),
    "cancelled": ("已取消", "Cancelled"),
}
# The colour of each state on the map (cells.geojson and the map page's legend).
TASK_STATE_COLOURS = {
    "open": "#74add1",
    "found": "#d73027",
    "nothing_found": "#1a9850",
    "overdue": "#fdae61",
    "cancelled": "#bdbdbd",
}

TO_DO_STATES = frozenset({"open", "overdue"})  # the worker still owes an answer
FINISHED_STATES = frozenset({"found", "nothing_found"})  # the cell was inspected
TASK_STATE_GROUPS = {"to_do": TO_DO_STATES, "finished": FINISHED_STATES}


def is_to_do(state: str) -> bool:
    return state in TO_DO_STATES


def is_finished(state: str) -> bool:
    return state in FINISHED_STATES


CAMPAIGN_STATES = ("open", "closed")
CAMPAIGN_STATE_LABELS = {"open": ("进行中", "Open"), "closed": ("已结束", "Closed")}


@dataclass(frozen=True)
class TaskTransition:
    action: str
    sources: frozenset[str]
    target: str
    label: tuple[str, str]


def _t(action: str, sources, target: str, zh: str, en: str) -> TaskTransition:
    return TaskTransition(action, frozenset(sources), target, (zh, en))


FIND, NOTHING_FOUND, MARK_OVERDUE, CANCEL = "find", "nothing_found", "mark_overdue", "cancel"

TASK_TRANSITIONS: dict[str, TaskTransition] = {t.action: t for t in (
    _t(FIND, {"open", "overdue", "nothing_found", "found"}, "found", "上报发现", "Report a finding"),
    _t(NOTHING_FOUND, {"open", "overdue"}, "nothing_found", "零报告", "Report nothing found"),
    _t(MARK_OVERDUE, {"open"}, "overdue", "超期", "Mark overdue"),
    _t(CANCEL, {"open", "overdue"}, "cancelled", "排查结束，取消", "Cancel (campaign closed)"),
)}


class TaskTransitionRefused(Exception):
    """``code`` is ``campaign.task_finished`` (the task has its answer) or ``campaign.closed``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TaskTarget:
    """What the permission rules need to know about a campaign task (built by the service)."""

    scope_path: str  # the cell's path
    assignee_id: int | None
    cell_worker_ids: frozenset[int]


def sources(action: str) -> tuple[str, ...]:
    """The states ``action`` may be taken from, sorted (for SQL)."""
    return tuple(sorted(TASK_TRANSITIONS[action].sources))


def task_transition(state: str, action: str) -> str:
    """The state after ``action`` from ``state``. Raises TaskTransitionRefused."""
    rule = TASK_TRANSITIONS[action]
    if state in rule.sources:
        return rule.target
    if state == "cancelled":
        raise TaskTransitionRefused("campaign.closed", "The campaign is closed; its tasks take no more answers.")
    zh, en = TASK_STATE_LABELS[state]
    raise TaskTransitionRefused("campaign.task_finished", f"The task is already answered: {en.lower()} ({zh}).")


def is_late(state: str, finished_at: datetime, deadline: datetime) -> bool:
    """Is a task answered from ``state`` at ``finished_at`` late: marked overdue already, or
    past its campaign's deadline?"""
    return state == "overdue" or finished_at > deadline


# ---------------------------------------------------------------- overdue escalation

# Stage n (1-based) tells the supervisors of this level of the cell's chain.
ESCALATION_LEVELS = ("community", "street", "district")


def stage_level(stage: int) -> str:
    """The level told at escalation ``stage`` (1 → community, 2 → street, 3 → district)."""
    return ESCALATION_LEVELS[stage - 1]


def next_escalation_at(stage_done: int, at: datetime, interval: timedelta) -> datetime | None:
    """When the stage after ``stage_done`` is due, ``stage_done`` having been taken at ``at``;
    None after the last stage."""
    return at + interval if stage_done < len(ESCALATION_LEVELS) else None


def percent(part: int, whole: int) -> float:
    """``part`` of ``whole`` in per cent, to one decimal (0 of nothing is 0)."""
    return round(100.0 * part / whole, 1) if whole else 0.0
