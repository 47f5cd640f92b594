"""Escalation (升级): stage deadlines, traffic lights and what an overdue case calls for.

Pure rules: no Flask, no database; instants are aware datetimes and the caller says what
"now" is. The design is in docs/ESCALATION.md.

- An incident at a level has one **stage**: its acknowledge and resolve limits come from
  the effective policy, counted from the stage's start in natural or working time.
- **Lights**: green until ``yellow_at``, yellow until ``due_at``, red after; none while
  suspended or closed.
- When red: **escalate** one level up, unless the case is at its policy's top level:
  then it is flagged for **supervision** (督办) once.
- An unacknowledged task goes through ``ACK_STEPS``: pushed again, handed to the cell's
  backup worker, handed to the level's supervisors.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .calendar import WorkCalendar, add_minutes, minutes_between
from .categories import effective_policy, stage_minutes
from .incidents import TIMED_STATES
from .territory import level_rank, parent_level

# States whose resolve clock runs: open, not suspended (挂起), not yet resolved (a resolved
# case waits for verification, which has no deadline of the handler's).
RUNNING_STATES = TIMED_STATES - {"resolved"}

GREEN, YELLOW, RED = "green", "yellow", "red"
LIGHTS = (GREEN, YELLOW, RED)
LIGHT_LABELS = {GREEN: ("正常", "On time"), YELLOW: ("预警", "Due soon"), RED: ("超时", "Overdue")}

REMIND, ESCALATE, SUPERVISE = "remind", "escalate", "supervise"
ACK_STEPS = ("repush", "backup", "supervisor")

_POLICY_SCALARS = ("time_basis", "yellow_ratio", "top_level", "department_from", "auto_dispatch")


def merge_policy(category_policy: dict | None, overrides: Iterable[dict | None]) -> dict:
    """The effective policy: the category's, then each override in turn (from the city
    down, so the deepest wins) key by key; ``levels`` is replaced as a whole."""
    merged = dict(category_policy or {})
    for override in overrides:
        for key, value in (override or {}).items():
            if key in _POLICY_SCALARS or key == "levels":
                merged[key] = value
    return effective_policy(merged)


@dataclass(frozen=True)
class Stage:
    """The deadlines of an incident at one level."""

    level: str
    started_at: datetime
    ack_due_at: datetime  # for a task dispatched when the stage starts
    yellow_at: datetime
    due_at: datetime


def start_stage(policy: dict, level: str, start: datetime, calendar: WorkCalendar) -> Stage:
    """The stage that starts at ``start`` when a case arrives at ``level`` under ``policy``."""
    policy = effective_policy(policy)
    ack, resolve = stage_minutes(policy, level)
    basis = policy["time_basis"]
    return Stage(level=level, started_at=start, ack_due_at=add_minutes(basis, calendar, start, ack),
                 yellow_at=add_minutes(basis, calendar, start, resolve * policy["yellow_ratio"]),
                 due_at=add_minutes(basis, calendar, start, resolve))


def ack_deadline(policy: dict, level: str, start: datetime, calendar: WorkCalendar) -> datetime:
    """When a task dispatched at ``start`` at ``level`` must be acknowledged."""
    policy = effective_policy(policy)
    ack, _ = stage_minutes(policy, level)
    return add_minutes(policy["time_basis"], calendar, start, ack)


def light(now: datetime, yellow_at: datetime | None, due_at: datetime | None, *, running: bool) -> str | None:
    """The traffic light of a case whose clock is ``running`` (open and not suspended)."""
    if not running or due_at is None:
        return None
    if now >= due_at:
        return RED
    if yellow_at is not None and now >= yellow_at:
        return YELLOW
    return GREEN


def department_takes(policy: dict, level: str) -> bool:
    """Does a case escalated to ``level`` go at once to the department of its kind there?"""
    start = effective_policy(policy)["department_from"]
    return start is not None and level_rank(level) <= level_rank(start)


def next_level(policy: dict, level: str) -> str | None:
    """The level an overdue case rises to, or None at the policy's top level (or above it)."""
    top = effective_policy(policy)["top_level"]
    if level_rank(level) <= level_rank(top):
        return None
    return parent_level(level)


def due_action(policy: dict, level: str, light_now: str | None, *, reminded: bool, supervised: bool) -> str | None:
    """What the sweep owes a case now: a reminder, an escalation, supervision, or nothing."""
    if light_now == RED:
        if next_level(policy, level) is not None:
            return ESCALATE
        return None if supervised else SUPERVISE
    if light_now == YELLOW and not reminded:
        return REMIND
    return None


def next_ack_step(steps_done: int) -> str | None:
    """The next step for an unacknowledged task after ``steps_done`` of ``ACK_STEPS``."""
    return ACK_STEPS[steps_done] if 0 <= steps_done < len(ACK_STEPS) else None


@dataclass(frozen=True)
class Paused:
    """What a suspended case had left of its stage, in minutes of its time basis."""

    yellow_minutes: float
    due_minutes: float


def pause(policy: dict, now: datetime, yellow_at: datetime, due_at: datetime, calendar: WorkCalendar) -> Paused:
    """What is left of a stage suspended (挂起) at ``now``."""
    basis = effective_policy(policy)["time_basis"]
    return Paused(yellow_minutes=minutes_between(basis, calendar, now, yellow_at),
                  due_minutes=minutes_between(basis, calendar, now, due_at))


def resume(policy: dict, now: datetime, paused: Paused, calendar: WorkCalendar) -> tuple[datetime, datetime]:
    """(yellow_at, due_at) of a stage resumed at ``now`` with what it had left."""
    basis = effective_policy(policy)["time_basis"]
    return (add_minutes(basis, calendar, now, paused.yellow_minutes),
            add_minutes(basis, calendar, now, paused.due_minutes))
