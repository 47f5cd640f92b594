"""The escalation sweep on a real PostGIS with a controlled clock: the sweep is told what
"now" is, so a case's deadlines are reached without waiting or rewriting rows."""
from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from server import worker
from server.domain.permissions import Actor
from server.extensions import db as _db
from server.models import Category, Extension, Incident, IncidentEvent, Leave, Notification, Task, WorkerDuty
from server.models._base import utcnow
from server.notifications.senders import LoggingSender
from server.services import deadlines
from server.services import escalation_overrides as overrides
from server.services import incidents as service
from server.services.sweep import sweep
from tests.builders import assign, make_user

REPORT = {"category": "0702", "description": "两人在菜市场门口打架", "crs": "wgs84",
          "location": {"type": "Point", "coordinates": [-118.3875, 34.025]}, "occurred_at": None,
          "priority": None, "attributes": {}, "address": None, "source": "phone", "resolve_on_spot": False}


def actor(user) -> Actor:
    return Actor(user_id=user.id, role=user.role, scope_path=user.region.path, department_id=user.department_id)


def reported(tree, **overrides) -> Incident:
    body, _ = service.report_incident(actor(tree["grid_worker"]), REPORT | overrides, [], None, render=lambda v: {
        "id": v.incident.id})
    return _db.session.get(Incident, body["id"])


def act(user, incident: Incident, action: str, **data) -> Incident:
    _db.session.refresh(incident)
    service.act(actor(user), incident.id, action, {"version": incident.version, **data})
    _db.session.refresh(incident)
    return incident


def events(incident: Incident) -> list[tuple[str, int | None]]:
    _db.session.expire_all()
    return [(e.action, e.actor_id) for e in _db.session.scalars(
        select(IncidentEvent).where(IncidentEvent.incident_id == incident.id).order_by(IncidentEvent.id))]


def told(user) -> list[str]:
    return list(_db.session.scalars(select(Notification.kind).where(Notification.user_id == user.id)
                                    .order_by(Notification.id)))


def test_an_overdue_case_rises_level_by_level_and_is_supervised_once_at_the_top(tree):
    incident = reported(tree)
    first_due = incident.due_at
    assert sweep(first_due - timedelta(seconds=1)).reminded == 1  # yellow, not yet red: the supervisors hear
    report = sweep(first_due)
    assert report.escalated == 1 and not report.failed
    _db.session.refresh(incident)
    assert (incident.level, incident.stage_no, incident.escalation_count) == ("community", 2, 1)
    assert incident.stage_started_at == first_due and incident.due_at > first_due
    assert events(incident)[-1] == ("escalate", None)  # the system, not a person
    assert told(tree["community"]) == ["reminder", "escalated_in"]
    assert sweep(first_due).done == 0  # the same pass again: nothing left
    for level in ("street", "district"):
        sweep(incident.due_at)
        _db.session.refresh(incident)
        assert incident.level == level
    assert told(tree["street"]) == ["escalated_in", "escalated_out"]
    top = sweep(incident.due_at)  # district is the default top level: supervision (督办)
    assert (top.escalated, top.supervised) == (0, 1)
    _db.session.refresh(incident)
    assert incident.level == "district" and incident.supervised_at == incident.due_at
    assert told(tree["district"]) == ["escalated_in", "supervised"]
    assert sweep(incident.due_at + timedelta(days=30)).done == 0  # once


def test_a_yellow_case_reminds_whoever_has_it_once_a_stage_without_a_new_version(tree):
    incident = reported(tree)
    act(tree["community"], incident, "accept")
    act(tree["community"], incident, "dispatch", assignee_id=tree["grid_worker"].id)
    act(tree["grid_worker"], incident, "acknowledge")
    version = incident.version
    report = sweep(incident.yellow_at)
    assert report.reminded == 1
    _db.session.refresh(incident)
    assert incident.reminded_stage == incident.stage_no and incident.version == version
    assert told(tree["grid_worker"]) == ["task", "reminder"]
    assert events(incident)[-1] == ("remind", None)
    assert sweep(incident.yellow_at + timedelta(minutes=1)).reminded == 0


def test_an_overdue_case_with_a_task_out_ends_the_task_and_tells_its_worker(tree):
    incident = reported(tree)
    act(tree["community"], incident, "accept")
    act(tree["community"], incident, "dispatch", assignee_id=tree["grid_worker"].id)
    act(tree["grid_worker"], incident, "acknowledge")
    act(tree["grid_worker"], incident, "request_extension", note="等配件", until=incident.due_at + timedelta(days=2))
    version = incident.version
    assert sweep(incident.due_at).escalated == 1
    _db.session.expire_all()
    task = _db.session.scalars(select(Task).where(Task.incident_id == incident.id)).one()
    extension = _db.session.scalars(select(Extension).where(Extension.incident_id == incident.id)).one()
    assert (incident.status, incident.level, incident.version) == ("accepted", "community", version + 1)
    assert task.status == "cancelled" and task.finished_at == incident.stage_started_at
    assert (extension.status, extension.decision_note) == ("refused", service.TASK_ENDED_NOTE)
    assert told(tree["grid_worker"])[-1] == "escalated_out"


def test_the_sweep_escalates_as_the_escalate_action_does(tree):
    """The sweep's set-wise escalation and a supervisor's escalate leave the same state,
    the same stage and the same people told (only the actor and reason differ)."""
    by_hand, by_sweep = reported(tree, description="手动"), reported(tree, description="超时")
    for incident in (by_hand, by_sweep):
        act(tree["community"], incident, "accept")
        act(tree["community"], incident, "dispatch", assignee_id=tree["grid_worker"].id)
    act(tree["community"], by_hand, "escalate", note="需街道协调")
    version = by_sweep.version
    assert sweep(by_sweep.due_at).escalated == 1
    _db.session.expire_all()
    assert by_sweep.version == version + 1

    def state(incident):
        told_kinds = sorted((n.user_id, n.kind, n.level, n.cause.split(":")[0], n.cause.split(":")[2:])
                            for n in _db.session.scalars(select(Notification).where(
                                Notification.incident_id == incident.id)))
        tasks = [t.status for t in _db.session.scalars(select(Task).where(Task.incident_id == incident.id))]
        event = _db.session.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == incident.id)
                                    .order_by(IncidentEvent.id.desc()).limit(1)).one()
        return (incident.status, incident.level, incident.stage_no, incident.top_level, incident.escalation_count,
                incident.due_at - incident.stage_started_at,
                incident.yellow_at - incident.stage_started_at, incident.supervised_at, incident.reminded_stage,
                tasks, (event.action, event.from_status, event.to_status, event.from_level, event.to_level,
                        sorted(event.data)), [k for k in told_kinds if k[0] != tree["community"].id])

    assert state(by_hand) == state(by_sweep)


def test_from_the_policys_department_level_the_sweep_dispatches_to_the_department(tree):
    tree.department.kind = "police"
    _db.session.get(Category, _db.session.scalars(select(Category.id).where(Category.code == "0702")).one()
                    ).department_kind = "police"
    _db.session.commit()
    overrides.set_override(actor(tree["city"]), tree["C"].id, "0702", {"department_from": "community"})
    incident = reported(tree)
    act(tree["community"], incident, "accept")
    assert sweep(incident.due_at).escalated == 1
    _db.session.expire_all()
    task = _db.session.scalars(select(Task).where(Task.incident_id == incident.id)).one()
    assert (incident.level, incident.status) == ("community", "dispatched")
    assert task.department_id == tree.department.id and task.status == "open"
    assert [a for a, _ in events(incident)][-2:] == ["escalate", "dispatch"]
    assert told(tree["department"]) == ["task"]
    assert sweep(task.ack_deadline - timedelta(seconds=1)).escalated == 0


def test_a_yellow_case_with_a_department_task_reminds_the_departments_handlers(tree):
    incident = reported(tree)
    act(tree["community"], incident, "accept")
    act(tree["community"], incident, "dispatch", department_id=tree.department.id)
    act(tree["department"], incident, "acknowledge")
    assert sweep(incident.yellow_at).reminded == 1
    assert told(tree["department"]) == ["task", "reminder"]
    assert not told(tree["community"])  # somebody has it: the supervisors are not bothered


def test_an_unacknowledged_task_is_pushed_again_then_handed_to_the_backup_then_to_the_supervisors(tree):
    backup = make_user("worker2", "grid_worker", tree["K1"])
    assign(backup, tree["G1"], "backup")
    incident = reported(tree)
    act(tree["community"], incident, "accept")
    act(tree["community"], incident, "dispatch", assignee_id=tree["grid_worker"].id)
    task = _db.session.scalars(select(Task).where(Task.incident_id == incident.id)).one()
    first_deadline = task.ack_deadline
    assert sweep(first_deadline).repushed == 1
    _db.session.refresh(task)
    assert task.ack_steps == 1 and task.ack_deadline > first_deadline and task.status == "open"
    assert told(tree["grid_worker"]) == ["task", "task_repush"]
    assert sweep(task.ack_deadline).handed_over == 1
    second = _db.session.scalars(select(Task).where(Task.incident_id == incident.id, Task.status == "open")).one()
    assert second.assignee_id == backup.id and told(backup) == ["task"]
    assert told(tree["grid_worker"])[-1] == "task_handover"
    assert sweep(second.ack_deadline).handed_over == 1
    _db.session.refresh(incident)
    assert incident.status == "accepted" and told(tree["community"])[-1] == "task_handover"
    assert [a for a, _ in events(incident)][-3:] == ["repush", "handover", "handover"]
    assert sweep(second.ack_deadline + timedelta(days=1)).handed_over == 0


def test_without_a_backup_the_task_goes_back_to_the_supervisors(tree):
    incident = reported(tree)
    act(tree["community"], incident, "accept")
    act(tree["community"], incident, "dispatch", assignee_id=tree["grid_worker"].id)
    task = _db.session.scalars(select(Task).where(Task.incident_id == incident.id)).one()
    sweep(task.ack_deadline)
    _db.session.refresh(task)
    sweep(task.ack_deadline)
    _db.session.refresh(incident)
    assert incident.status == "accepted"


def test_an_unacknowledged_task_skips_a_backup_off_duty_and_one_on_leave(tree):
    away, on_leave, free = (make_user(name, "grid_worker", tree["K1"]) for name in ("worker2", "worker3", "worker4"))
    for backup in (away, on_leave, free):
        assign(backup, tree["G1"], "backup")
    _db.session.add(WorkerDuty(user_id=away.id, on_duty=False, since=utcnow()))
    _db.session.add(Leave(user_id=on_leave.id, starts_at=utcnow() - timedelta(days=1),
                          ends_at=utcnow() + timedelta(days=30), created_by=tree["community"].id))
    _db.session.commit()
    incident = reported(tree)
    act(tree["community"], incident, "accept")
    act(tree["community"], incident, "dispatch", assignee_id=tree["grid_worker"].id)
    task = _db.session.scalars(select(Task).where(Task.incident_id == incident.id)).one()
    sweep(task.ack_deadline)
    _db.session.refresh(task)
    assert sweep(task.ack_deadline).handed_over == 1
    handed = _db.session.scalars(select(Task).where(Task.incident_id == incident.id, Task.status == "open")).one()
    assert handed.assignee_id == free.id  # the lowest id among the backups is away, the next on leave


def test_suspended_and_resolved_cases_do_not_rise(tree):
    suspended = reported(tree)
    act(tree["community"], suspended, "accept")
    act(tree["community"], suspended, "suspend", note="等待答复")
    on_spot = reported(tree, description="已处理")
    act(tree["community"], on_spot, "accept")
    act(tree["community"], on_spot, "dispatch", assignee_id=tree["grid_worker"].id)
    act(tree["grid_worker"], on_spot, "acknowledge")
    act(tree["grid_worker"], on_spot, "resolve", note="已调解")
    assert sweep(on_spot.due_at + timedelta(days=60)).escalated == 0


def test_two_sweeps_side_by_side_escalate_each_case_once(tree, app):
    cases = [reported(tree, description=f"问题{i}") for i in range(40)]
    now = max(c.due_at for c in cases)
    reports = []

    def run():
        with app.app_context():
            reports.append(sweep(now, batch=7))
            _db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.escalated for r in reports) == 40 and not any(r.failed for r in reports)
    _db.session.expire_all()
    counts = dict(_db.session.execute(select(IncidentEvent.incident_id, func.count()).where(
        IncidentEvent.action == "escalate").group_by(IncidentEvent.incident_id)).all())
    assert counts == {c.id: 1 for c in cases}


def test_a_failing_case_is_left_for_the_next_pass_and_the_others_go_on(tree, monkeypatch):
    cases = [reported(tree, description=f"问题{i}") for i in range(3)]
    now = max(c.due_at for c in cases)
    real = deadlines.level_above

    def flaky(incident, policy=None):
        if incident.id == cases[1].id:
            raise RuntimeError("policy unreadable")
        return real(incident, policy)

    monkeypatch.setattr(deadlines, "level_above", flaky)
    first = sweep(now)
    assert first.escalated == 2 and first.failed == [f"incident {cases[1].id}: RuntimeError"]
    monkeypatch.setattr(deadlines, "level_above", real)
    assert sweep(now).escalated == 1
    _db.session.expire_all()
    assert {c.level for c in _db.session.scalars(select(Incident))} == {"community"}



def test_the_worker_loop_sweeps_on_its_clock_and_the_command_reports(tree, app):
    incident = reported(tree)
    iid, due = incident.id, incident.due_at
    seen = []
    assert worker.run(interval_s=0.01, sender=LoggingSender(), clock=lambda: due, passes=2,
                      on_pass=seen.append) == 2
    assert [r.sweep.escalated for r in seen] == [1, 0]
    assert seen[0].push.sent == 0  # nobody in the tree has a phone
    assert _db.session.get(Incident, iid).level == "community"
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "escalated 0" in result.output  # the real clock: the new stage is not due yet
    assert "hotspot warnings 0" in result.output and "exports done 0" in result.output
