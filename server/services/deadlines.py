"""Stage deadlines of incidents (docs/ESCALATION.md): the effective policy of a case, and the
stage fields the closed loop and the sweep set. No commits: the calling use case commits.

The effective policy is the category's, overridden by the regions above the cell from
the city down (each region: its all-categories override, then the category's own).
Overrides and calendar days are cached per process (``ProcessCache``).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from server.domain.calendar import add_minutes, minutes_between
from server.domain.escalation import Paused, ack_deadline, merge_policy, next_level, pause, resume, start_stage
from server.domain.territory import ancestor_ids, child_level
from server.extensions import db
from server.models import Category, EscalationOverride, Incident

from .cache import ProcessCache
from .calendar import work_calendar

OVERRIDE_CACHE_SECONDS = 60


def _load_overrides() -> dict[tuple[int, int | None], dict]:
    rows = db.session.execute(select(EscalationOverride.region_id, EscalationOverride.category_id,
                                     EscalationOverride.policy))
    return {(row.region_id, row.category_id): row.policy for row in rows}


_overrides = ProcessCache(_load_overrides, OVERRIDE_CACHE_SECONDS)


def forget_cached_overrides() -> None:
    """Read the overrides again at the next use (after rows changed)."""
    _overrides.clear()


def policy_for(category: Category, region_path: str) -> dict:
    """The effective escalation policy of ``category`` in the cell at ``region_path``."""
    overrides = _overrides.get()
    chain = [overrides[key] for region_id in ancestor_ids(region_path)
             for key in ((region_id, None), (region_id, category.id)) if key in overrides]
    return merge_policy(category.policy, chain)


def begin_stage(incident: Incident, now: datetime, *, category: Category | None = None) -> None:
    """Start the incident's stage at its current level at ``now`` (report, reopen, a new level).
    The stage number is the caller's: a new stage after the first is ``next_stage``."""
    category = category or incident.category
    policy = policy_for(category, incident.region_path)
    stage = start_stage(policy, incident.level, now, work_calendar())
    incident.stage_started_at, incident.yellow_at, incident.due_at = now, stage.yellow_at, stage.due_at
    incident.top_level = policy["top_level"]
    incident.paused_yellow_minutes = incident.paused_due_minutes = None


def next_stage(incident: Incident, now: datetime) -> None:
    """A new stage (a new level, or a reopened case): numbered, so its reminder and
    supervision are owed afresh."""
    incident.stage_no += 1
    incident.supervised_at = None
    begin_stage(incident, now)


def task_ack_deadline(incident: Incident, now: datetime) -> datetime:
    """When a task dispatched now at the incident's level must be acknowledged."""
    return ack_deadline(policy_for(incident.category, incident.region_path), incident.level, now, work_calendar())


def pause_stage(incident: Incident, now: datetime) -> None:
    """挂起: keep what the stage has left, in its own time basis."""
    if incident.due_at is None:
        return
    policy = policy_for(incident.category, incident.region_path)
    left = pause(policy, now, incident.yellow_at or incident.due_at, incident.due_at, work_calendar())
    incident.paused_yellow_minutes, incident.paused_due_minutes = left.yellow_minutes, left.due_minutes


def resume_stage(incident: Incident, now: datetime) -> None:
    """缓办 ends: the stage goes on from ``now`` with what it had left."""
    if incident.paused_due_minutes is None:
        return
    policy = policy_for(incident.category, incident.region_path)
    left = Paused(incident.paused_yellow_minutes or 0.0, incident.paused_due_minutes)
    incident.yellow_at, incident.due_at = resume(policy, now, left, work_calendar())
    incident.paused_yellow_minutes = incident.paused_due_minutes = None


def extend_stage(incident: Incident, until: datetime) -> None:
    """An approved extension (延期): the stage now ends at ``until``, yellow at the same share."""
    policy = policy_for(incident.category, incident.region_path)
    calendar, basis = work_calendar(), policy["time_basis"]
    start = incident.stage_started_at or until
    total = minutes_between(basis, calendar, start, until)
    incident.due_at = until
    incident.yellow_at = add_minutes(basis, calendar, start, total * policy["yellow_ratio"])


def level_above(incident, policy: dict | None = None) -> str | None:
    """The level an escalation takes the case (an incident or a row with its ``level`` and
    ``top_level``) to, or None at the top level of its stage (else of ``policy``, else of
    its effective policy)."""
    if incident.top_level:
        return next_level({"top_level": incident.top_level}, incident.level)
    return next_level(policy or policy_for(incident.category, incident.region_path), incident.level)


def level_below(incident: Incident) -> str | None:
    """The level a return down (下派) takes the case to, or None at the grid."""
    return child_level(incident.level)
