"""The escalation sweep (docs/ESCALATION.md): reminders, escalations, supervision and
unacknowledged tasks, as of a given ``now``.

Each pass claims due rows with ``FOR UPDATE SKIP LOCKED`` in batches: several workers
sweep side by side without taking the same row, and each batch commits its changes,
timeline events and notifications together. An item that fails is rolled back alone (a
savepoint) and left for the next pass. What is due is a function of the row's columns
(stage number, reminder mark, supervision mark, the task's acknowledgement steps), so a
pass repeated after a crash finds nothing already done.

Reminders and supervision marks are written without a new version (they are not changes
a person acts on, and must not make a supervisor's open form stale); escalations and
hand-overs are real changes and take one.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update

from server.domain.escalation import RUNNING_STATES, next_ack_step
from server.domain.incidents import ACTIVE_TASK_STATES, SWEEP_EVENT_LABELS
from server.domain.permissions import SYSTEM
from server.extensions import db
from server.models import GridAssignment, Incident, Task

from . import deadlines, notify
from .incidents import _event, system_action

log = logging.getLogger(__name__)
BATCH = 200
OVERDUE_NOTE = "超时未办结，自动升级 / overdue: escalated automatically"


@dataclass
class SweepReport:
    reminded: int = 0
    escalated: int = 0
    supervised: int = 0
    repushed: int = 0
    handed_over: int = 0
    failed: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.reminded + self.escalated + self.supervised + self.repushed + self.handed_over


def sweep(now: datetime, *, batch: int = BATCH) -> SweepReport:
    """One pass over everything due at ``now``."""
    report = SweepReport()
    for handle in (_overdue_batch, _yellow_batch, _unacknowledged_batch):
        while handle(now, batch, report):
            pass
    return report


def _claim(stmt, batch: int, model) -> list:
    """Up to ``batch`` rows of ``model`` no other sweep holds, locked until the batch commits."""
    return list(db.session.scalars(stmt.limit(batch).with_for_update(skip_locked=True, of=model)))


def _each(rows, report: SweepReport, work) -> int:
    """Run ``work(row)`` per row in a savepoint, then commit the batch; the count handled."""
    handled = 0
    for row in rows:
        try:
            with db.session.begin_nested():
                work(row)
            handled += 1
        except Exception as exc:  # one bad row must not stop the sweep: it stays for the next pass
            log.exception("sweep: %s %s failed", type(row).__name__, row.id)
            report.failed.append(f"{type(row).__name__.lower()} {row.id}: {type(exc).__name__}")
    db.session.commit()
    return handled


def _running():
    return Incident.status.in_(sorted(RUNNING_STATES))


def _overdue_batch(now: datetime, batch: int, report: SweepReport) -> bool:
    """Red cases: one level up, or 督办 at the top level (once a stage)."""
    stmt = select(Incident).where(
        _running(), Incident.due_at <= now,
        (Incident.level != Incident.top_level) | Incident.top_level.is_(None) | Incident.supervised_at.is_(None),
    ).order_by(Incident.due_at)
    rows = _claim(stmt, batch, Incident)
    failed_before = len(report.failed)

    def work(incident: Incident) -> None:
        if deadlines.level_above(incident) is not None:
            system_action(incident, "escalate", OVERDUE_NOTE, now)
            report.escalated += 1
        elif incident.supervised_at is None:
            _supervise(incident, now)
            report.supervised += 1

    _each(rows, report, work)
    return len(rows) == batch and len(report.failed) == failed_before


def _supervise(incident: Incident, now: datetime) -> None:
    db.session.execute(update(Incident).where(Incident.id == incident.id).values(supervised_at=now)
                       .execution_options(synchronize_session=False))
    incident_cause = f"incident:{incident.id}:stage:{incident.stage_no}"
    _sweep_event(incident, "supervise", now)
    notify.notify(notify.level_supervisors(incident, incident.level), "supervised", incident, now=now,
                  cause=f"{incident_cause}:supervised", level=incident.level, deadline=incident.due_at)


def _yellow_batch(now: datetime, batch: int, report: SweepReport) -> bool:
    """Yellow cases not yet reminded in this stage: tell whoever has the case now."""
    stmt = select(Incident).where(
        _running(), Incident.yellow_at <= now, Incident.due_at > now,
        Incident.reminded_stage < Incident.stage_no,
    ).order_by(Incident.yellow_at)
    rows = _claim(stmt, batch, Incident)
    failed_before = len(report.failed)

    def work(incident: Incident) -> None:
        db.session.execute(update(Incident).where(Incident.id == incident.id).values(
            reminded_stage=incident.stage_no).execution_options(synchronize_session=False))
        task = _active_task(incident.id)
        people = notify.task_recipients(task) if task is not None else notify.level_supervisors(
            incident, incident.level)
        _sweep_event(incident, "remind", now)
        notify.notify(people, "reminder", incident, now=now, task=task, level=incident.level,
                      deadline=incident.due_at, cause=f"incident:{incident.id}:stage:{incident.stage_no}:reminder")
        report.reminded += 1

    _each(rows, report, work)
    return len(rows) == batch and len(report.failed) == failed_before


def _active_task(incident_id: int) -> Task | None:
    return db.session.scalars(select(Task).where(
        Task.incident_id == incident_id, Task.status.in_(ACTIVE_TASK_STATES))).one_or_none()


def _unacknowledged_batch(now: datetime, batch: int, report: SweepReport) -> bool:
    """Tasks past their acknowledgement deadline: pushed again, then to the cell's backup
    worker, then back to the level's supervisors."""
    stmt = select(Task).join(Incident, Incident.id == Task.incident_id).where(
        Task.status == "open", Task.ack_deadline <= now, Incident.status == "dispatched",
    ).order_by(Task.ack_deadline)
    rows = _claim(stmt, batch, Task)
    failed_before = len(report.failed)

    def work(task: Task) -> None:
        # the case too, unless another sweep holds it (escalating it): then next pass
        incident = db.session.scalars(select(Incident).where(Incident.id == task.incident_id).with_for_update(
            skip_locked=True, of=Incident)).one_or_none()
        if incident is None:
            return
        step = next_ack_step(task.ack_steps)
        if step == "backup" and _backup_for(incident, task) is None:
            step = "supervisor"  # nobody to hand it to in the cell
        if step == "repush":
            _repush(incident, task, now)
            report.repushed += 1
        elif step == "backup":
            _hand_to_backup(incident, task, _backup_for(incident, task), now)
            report.handed_over += 1
        else:
            _hand_to_supervisors(incident, task, now)
            report.handed_over += 1

    _each(rows, report, work)
    return len(rows) == batch and len(report.failed) == failed_before


def _backup_for(incident: Incident, task: Task) -> int | None:
    """The cell's backup worker (B岗) who is not the task's worker, if any (workers only)."""
    if task.assignee_id is None:
        return None
    return db.session.scalar(select(GridAssignment.user_id).where(
        GridAssignment.region_id == incident.region_id, GridAssignment.duty == "backup",
        GridAssignment.user_id != task.assignee_id).order_by(GridAssignment.user_id).limit(1))


def _repush(incident: Incident, task: Task, now: datetime) -> None:
    task.ack_steps = 1
    task.ack_deadline = deadlines.task_ack_deadline(incident, now)
    _sweep_event(incident, "repush", now, {"task_id": task.id})
    notify.notify(notify.task_recipients(task), "task_repush", incident, now=now, task=task, level=incident.level,
                  deadline=task.ack_deadline, cause=f"task:{task.id}:repush")


def _hand_to_backup(incident: Incident, task: Task, backup_id: int, now: datetime) -> None:
    task.status, task.finished_at = "cancelled", now
    db.session.flush()  # one active task per incident
    new = Task(incident_id=incident.id, assignee_id=backup_id, status="open", level=incident.level,
               instructions=task.instructions, created_by=None, created_at=now, ack_steps=2,
               ack_deadline=deadlines.task_ack_deadline(incident, now))
    db.session.add(new)
    db.session.flush()
    _sweep_event(incident, "handover", now, {"from_task_id": task.id, "task_id": new.id, "to": "backup"})
    notify.notify([backup_id], "task", incident, now=now, task=new, level=incident.level,
                  deadline=new.ack_deadline, cause=f"task:{new.id}")
    notify.notify(notify.task_recipients(task), "task_handover", incident, now=now, task=task, level=incident.level,
                  cause=f"task:{task.id}:handover")


def _hand_to_supervisors(incident: Incident, task: Task, now: datetime) -> None:
    task.status, task.finished_at, task.ack_steps = "cancelled", now, 3
    incident.status = "accepted"  # back to the level's supervisors, to dispatch again
    incident.updated_at = now
    _sweep_event(incident, "handover", now, {"from_task_id": task.id, "to": "supervisors"}, from_status="dispatched")
    notify.notify(notify.level_supervisors(incident, incident.level), "task_handover", incident, now=now, task=task,
                  level=incident.level, cause=f"task:{task.id}:to_supervisors")


def _sweep_event(incident: Incident, action: str, now: datetime, data: dict | None = None,
                 from_status: str | None = None) -> None:
    assert action in SWEEP_EVENT_LABELS
    _event(incident, SYSTEM, action, from_status or incident.status, note=None, at=now, data=data)
