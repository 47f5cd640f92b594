"""The escalation sweep (docs/ESCALATION.md): reminders, escalations, supervision and
unacknowledged tasks, as of a given ``now``.

Each pass claims due rows with ``FOR UPDATE SKIP LOCKED`` in batches: several workers
sweep side by side without taking the same row, and each batch commits its changes,
timeline events and notifications together. Yellow reminders, escalations and supervision
are written set-wise, a handful of statements per batch whatever its size (the rules per
case are the same pure functions the closed loop uses: the transitions table, the stage,
the level above); unacknowledged tasks, rarer, go one by one. A batch that fails is rolled
back (a savepoint) and its cases are tried one at a time, so a bad case is left alone for
the next pass and the others go on. What is due is a function of the row's columns (stage
number, reminder mark, supervision mark, the task's acknowledgement steps), so a pass
repeated after a crash finds nothing already done.

Reminders and supervision marks are written without a new version (they are not changes
a person acts on, and must not make a supervisor's open form stale); escalations and
hand-overs are real changes and take one.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from sqlalchemy import select, update

from server.domain import incidents as rules
from server.domain.duty import choose as choose_worker
from server.domain.escalation import RUNNING_STATES, department_takes, next_ack_step, start_stage
from server.domain.incidents import ACTIVE_TASK_STATES, SWEEP_EVENT_LABELS
from server.domain.permissions import SYSTEM
from server.extensions import db
from server.models import CampaignTask, Category, Extension, Incident, IncidentEvent, Task

from . import deadlines, duty, notify
from .campaigns import escalate_overdue_tasks, overdue_tasks_due
from .calendar import work_calendar
from .incidents import TASK_ENDED_NOTE, _event, dispatch_by_policy
from .setwise import insert_rows, rows_of

log = logging.getLogger(__name__)
BATCH = 200
OVERDUE_NOTE = "超时未办结，自动升级 / overdue: escalated automatically"
_incidents, _tasks, _events = Incident.__table__, Task.__table__, IncidentEvent.__table__
# what the set-wise steps read of a claimed case
_CASE = (_incidents.c.id, _incidents.c.status, _incidents.c.level, _incidents.c.region_path,
         _incidents.c.category_id, _incidents.c.top_level, _incidents.c.stage_no, _incidents.c.supervised_at,
         _incidents.c.due_at, _incidents.c.address)


@dataclass
class SweepReport:
    reminded: int = 0
    escalated: int = 0
    supervised: int = 0
    repushed: int = 0
    handed_over: int = 0
    campaign_overdue: int = 0  # inspection campaign tasks past their deadline (docs/FIELD.md)
    campaign_escalated: int = 0  # overdue campaign tasks whose reminder rose a level
    failed: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return (self.reminded + self.escalated + self.supervised + self.repushed + self.handed_over
                + self.campaign_overdue + self.campaign_escalated)

    def add(self, counts: Counter) -> None:
        for name, n in counts.items():
            setattr(self, name, getattr(self, name) + n)


def sweep(now: datetime, *, batch: int = BATCH) -> SweepReport:
    """One pass over everything due at ``now``."""
    report = SweepReport()
    for handle in (_overdue_batch, _yellow_batch, _unacknowledged_batch, _campaign_batch):
        while handle(now, batch, report):
            pass
    return report


def _claim(stmt, batch: int, model):
    """Up to ``batch`` rows no other sweep holds (``model``'s rows locked until the batch commits)."""
    return db.session.execute(stmt.limit(batch).with_for_update(skip_locked=True, of=model))


def _set_wise(rows: Sequence, report: SweepReport, work: Callable[[Sequence], Counter], what: str) -> bool:
    """``work(rows)`` then commit (the claim's locks are held until then). True when nothing failed."""
    ok = _attempt(rows, report, work, what)
    db.session.commit()
    return ok


def _attempt(rows: Sequence, report: SweepReport, work: Callable[[Sequence], Counter], what: str) -> bool:
    """``work(rows)`` in a savepoint; if it fails, each row alone, so that a bad one is
    rolled back and left for the next pass while the others go on."""
    try:
        with db.session.begin_nested():
            counts = work(rows)
    except Exception as exc:  # one bad row must not stop the sweep
        if len(rows) == 1:
            log.exception("sweep: %s %s failed", what, rows[0].id)
            report.failed.append(f"{what} {rows[0].id}: {type(exc).__name__}")
            return False
        log.warning("sweep: a batch of %d %ss failed (%s); trying them one by one", len(rows), what, exc)
        return all([_attempt([row], report, work, what) for row in rows])
    report.add(counts)
    return True


def _running():
    return _incidents.c.status.in_(sorted(RUNNING_STATES))


def _categories(rows: Sequence) -> dict:
    """The claimed cases' categories (id, policy, names, department kind), by id."""
    return {c.id: c for c in db.session.execute(select(
        Category.id, Category.policy, Category.name, Category.name_en, Category.department_kind,
    ).where(Category.id.in_({row.category_id for row in rows})))}


def _subject(row, category) -> notify.Subject:
    return notify.Subject(row.id, category.name, category.name_en, row.address)


def _sweep_event_row(row, action: str, now: datetime, to_status: str | None = None, to_level: str | None = None,
                     note: str | None = None, data: dict | None = None) -> dict:
    assert action in SWEEP_EVENT_LABELS or action in rules.ACTIONS
    return {"incident_id": row.id, "at": now, "actor_id": None, "action": action, "from_status": row.status,
            "to_status": to_status or row.status, "from_level": row.level, "to_level": to_level or row.level,
            "note": note, "data": data or {}}


def _overdue_batch(now: datetime, batch: int, report: SweepReport) -> bool:
    """Red cases: one level up, or 督办 at the top level (once a stage)."""
    stmt = select(*_CASE).where(
        _running(), _incidents.c.due_at <= now,
        (_incidents.c.level != _incidents.c.top_level) | _incidents.c.top_level.is_(None)
        | _incidents.c.supervised_at.is_(None),
    ).order_by(_incidents.c.due_at)
    rows = _claim(stmt, batch, Incident).all()
    ok = bool(rows) and _set_wise(rows, report, lambda chunk: _escalate_or_supervise(chunk, now), "incident")
    return len(rows) == batch and ok


def _escalate_or_supervise(rows: Sequence, now: datetime) -> Counter:
    """Each case below its top level one level up (as the ``escalate`` action: the task out
    cancelled, a new stage, both levels told, the policy's department dispatched); each at
    the top not yet supervised flagged 督办 and its supervisors told."""
    categories, calendar = _categories(rows), work_calendar()
    moves, changes, events, tells, tops = [], [], [], [], []
    for row in rows:
        category = categories[row.category_id]
        policy = deadlines.policy_for(category, row.region_path)
        above = deadlines.level_above(row, policy)
        if above is None:
            if row.supervised_at is None:
                tops.append(row)
            continue
        status = rules.transition(row.status, "escalate")
        stage = start_stage(policy, above, now, calendar)
        moves.append((row, category, policy, above, stage))
        changes.append({"id": row.id, "status": status, "level": above, "yellow_at": stage.yellow_at,
                        "due_at": stage.due_at, "top_level": policy["top_level"]})
        events.append(_sweep_event_row(row, "escalate", now, status, above, OVERDUE_NOTE,
                                       {"reason": OVERDUE_NOTE, "from_level": row.level, "to_level": above}))
    ended = _end_active_tasks([row.id for row, *_ in moves], now)
    handlers = _task_handlers(ended.values())
    places = {notify.supervising_region(row.region_path, level)
              for row, _, _, above, _ in moves for level in (row.level, above)}
    places |= {notify.supervising_region(row.region_path, row.level) for row in tops}
    managers = notify.supervisors(places)
    if changes:
        new = rows_of(_incidents, list(changes[0]), changes)
        db.session.execute(update(_incidents).where(_incidents.c.id == new.c.id).values(
            status=new.c.status, level=new.c.level, stage_no=_incidents.c.stage_no + 1, stage_started_at=now,
            yellow_at=new.c.yellow_at, due_at=new.c.due_at, top_level=new.c.top_level, supervised_at=None,
            paused_yellow_minutes=None, paused_due_minutes=None, escalation_count=_incidents.c.escalation_count + 1,
            version=_incidents.c.version + 1, updated_at=now))
    for row, category, _, above, stage in moves:
        task = ended.get(row.id)
        left = managers[notify.supervising_region(row.region_path, row.level)] + (handlers[task] if task else [])
        tells += notify.level_change(
            _subject(row, category), row.stage_no + 1, above, stage.due_at, told_in="escalated_in",
            told_out="escalated_out", taking=managers[notify.supervising_region(row.region_path, above)], left=left)
    if tops:
        db.session.execute(update(_incidents).where(_incidents.c.id.in_([row.id for row in tops]))
                           .values(supervised_at=now))
    for row in tops:
        events.append(_sweep_event_row(row, "supervise", now))
        tells.append(notify.Tell(tuple(managers[notify.supervising_region(row.region_path, row.level)]), "supervised",
                                 _subject(row, categories[row.category_id]),
                                 f"incident:{row.id}:stage:{row.stage_no}:supervised", level=row.level,
                                 deadline=row.due_at))
    if events:
        db.session.execute(insert_rows(_events, events))
    notify.tell(tells, now)
    for row, category, policy, above, _ in moves:  # the policy's department, as the escalate action does
        if category.department_kind is not None and department_takes(policy, above):
            dispatch_by_policy(db.session.get(Incident, row.id, populate_existing=True), now)
    return Counter(escalated=len(moves), supervised=len(tops))


def _end_active_tasks(incident_ids: list[int], now: datetime) -> dict[int, tuple]:
    """Cancel the task out of each case (a pending extension request ends with it): the
    ended tasks' (id, assignee, department), by incident."""
    if not incident_ids:
        return {}
    ended = db.session.execute(update(_tasks).where(
        _tasks.c.incident_id.in_(incident_ids), _tasks.c.status.in_(ACTIVE_TASK_STATES),
    ).values(status="cancelled", finished_at=now, version=_tasks.c.version + 1).returning(
        _tasks.c.id, _tasks.c.incident_id, _tasks.c.assignee_id, _tasks.c.department_id)).all()
    if ended:
        db.session.execute(update(Extension.__table__).where(
            Extension.incident_id.in_([t.incident_id for t in ended]), Extension.status == "pending",
        ).values(status="refused", decided_at=now, decision_note=TASK_ENDED_NOTE))
    return {t.incident_id: (t.id, t.assignee_id, t.department_id) for t in ended}


def _task_handlers(tasks) -> dict[tuple, list[int]]:
    """Who has each task (id, assignee, department): its grid worker or its department's handlers."""
    tasks = list(tasks)
    staff = notify.department_handlers({department for _, assignee, department in tasks if assignee is None})
    return {task: [task[1]] if task[1] is not None else staff[task[2]] for task in tasks}


def _yellow_batch(now: datetime, batch: int, report: SweepReport) -> bool:
    """Yellow cases not yet reminded in this stage: tell whoever has the case now."""
    stmt = select(*_CASE).where(
        _running(), _incidents.c.yellow_at <= now, _incidents.c.due_at > now,
        _incidents.c.reminded_stage < _incidents.c.stage_no,
    ).order_by(_incidents.c.yellow_at)
    rows = _claim(stmt, batch, Incident).all()
    ok = bool(rows) and _set_wise(rows, report, lambda chunk: _remind(chunk, now), "incident")
    return len(rows) == batch and ok


def _remind(rows: Sequence, now: datetime) -> Counter:
    """A reminder to the handler of each case's task, or to the level's supervisors when no
    task is out; the stage marked reminded."""
    ids = [row.id for row in rows]
    db.session.execute(update(_incidents).where(_incidents.c.id.in_(ids)).values(
        reminded_stage=_incidents.c.stage_no))
    tasks = {t.incident_id: (t.id, t.assignee_id, t.department_id) for t in db.session.execute(
        select(_tasks.c.id, _tasks.c.incident_id, _tasks.c.assignee_id, _tasks.c.department_id).where(
            _tasks.c.incident_id.in_(ids), _tasks.c.status.in_(ACTIVE_TASK_STATES)))}
    handlers = _task_handlers(tasks.values())
    managers = notify.supervisors(notify.supervising_region(row.region_path, row.level)
                                  for row in rows if row.id not in tasks)
    categories = _categories(rows)
    tells = []
    for row in rows:
        task = tasks.get(row.id)
        people = handlers[task] if task else managers[notify.supervising_region(row.region_path, row.level)]
        tells.append(notify.Tell(tuple(people), "reminder", _subject(row, categories[row.category_id]),
                                 f"incident:{row.id}:stage:{row.stage_no}:reminder", task[0] if task else None,
                                 row.level, row.due_at))
    db.session.execute(insert_rows(_events, [_sweep_event_row(row, "remind", now) for row in rows]))
    notify.tell(tells, now)
    return Counter(reminded=len(rows))


def _unacknowledged_batch(now: datetime, batch: int, report: SweepReport) -> bool:
    """Tasks past their acknowledgement deadline: pushed again, then to the cell's backup
    worker, then back to the level's supervisors."""
    stmt = select(Task).join(Incident, Incident.id == Task.incident_id).where(
        Task.status == "open", Task.ack_deadline <= now, Incident.status == "dispatched",
    ).order_by(Task.ack_deadline)
    rows = _claim(stmt, batch, Task).scalars().all()
    ok = bool(rows) and _set_wise(rows, report, lambda chunk: _take_up_tasks(chunk, now), "task")
    return len(rows) == batch and ok


def _take_up_tasks(tasks: Sequence[Task], now: datetime) -> Counter:
    """The next hand-off step of each unacknowledged task, one by one."""
    counts = Counter()
    for task in tasks:
        # the case too, unless another sweep holds it (escalating it): then next pass
        incident = db.session.scalars(select(Incident).where(Incident.id == task.incident_id).with_for_update(
            skip_locked=True, of=Incident)).one_or_none()
        if incident is None:
            continue
        step = next_ack_step(task.ack_steps)
        backup = _backup_for(incident, task, now) if step == "backup" else None
        if step == "repush":
            _repush(incident, task, now)
            counts["repushed"] += 1
        elif backup is not None:
            _hand_to_backup(incident, task, backup, now)
            counts["handed_over"] += 1
        else:  # the supervisors' step, or nobody to hand it to in the cell
            _hand_to_supervisors(incident, task, now)
            counts["handed_over"] += 1
    return counts


def _backup_for(incident: Incident, task: Task, now: datetime) -> int | None:
    """The cell's available backup worker (B岗) who is not the task's worker, the least loaded
    first (server/domain/duty.py), if any (workers' tasks only)."""
    if task.assignee_id is None:
        return None
    backups = [c for c in duty.candidates(incident.region_id, now)
               if not c.primary and c.user_id != task.assignee_id]
    chosen = choose_worker(backups, current_app.config["MAX_OPEN_TASKS"])
    return chosen.user_id if chosen else None


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


def _campaign_batch(now: datetime, batch: int, report: SweepReport) -> bool:
    """Inspection campaign tasks owing an overdue stage: marked overdue, the reminder one level
    up each stage (services.campaigns)."""
    rows = _claim(overdue_tasks_due(now), batch, CampaignTask).all()
    ok = bool(rows) and _set_wise(rows, report, lambda chunk: escalate_overdue_tasks(chunk, now), "campaign task")
    return len(rows) == batch and ok
