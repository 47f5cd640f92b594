"""Duty, leave, auto-dispatch and workload over HTTP (docs/FIELD.md "Workload and duty"): a
worker going off duty, on leave or overloaded is given no new work; the backup takes it, or
the supervisor is told; supervisors see each worker's load."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from server.extensions import db as _db
from server.models import Incident, Leave, Notification, Task, WorkerDuty
from server.models._base import utcnow
from tests.builders import assign, make_user, standard_categories
from tests.incident_builders import make_incident, make_task

IN_G1 = [-118.3875, 34.025]


def leave_url(user) -> str:
    return f"/api/v1/users/{user.id}/leaves"


def days(n: float) -> str:
    return (utcnow() + timedelta(days=n)).isoformat()


def test_a_worker_goes_off_and_on_duty_and_a_patrol_puts_them_on(tree, worker, community):
    assert worker.get("/api/v1/me/duty").json() == {"on_duty": True, "since": None, "on_leave_until": None}
    off = worker.post("/api/v1/me/duty", json={"on_duty": False})
    assert off.status_code == 200 and off.json()["on_duty"] is False and off.json()["since"] is not None
    again = worker.post("/api/v1/me/duty", json={"on_duty": False})
    assert again.json() == off.json()  # saying it again changes nothing, not even since
    for bad in ({}, {"on_duty": "perhaps"}, {"on_duty": None}):
        response = worker.post("/api/v1/me/duty", json=bad)
        assert response.status_code == 422, bad
    assert worker.get("/api/v1/me/duty").json()["on_duty"] is False
    refused = community.post("/api/v1/me/duty", json={"on_duty": False})
    assert refused.status_code == 403 and refused.json()["code"] == "auth.forbidden"
    started = worker.post("/api/v1/patrols", json={"client_uuid": str(uuid.uuid4())})
    assert started.status_code == 201
    assert worker.get("/api/v1/me/duty").json()["on_duty"] is True


def test_supervisors_record_and_cancel_leave_that_never_overlaps(tree, worker, community, client_for):
    grid_worker = tree["grid_worker"]
    first = community.post(leave_url(grid_worker), json={"starts_at": days(-1), "ends_at": days(2), "reason": "病假"})
    assert first.status_code == 201, first.text
    leave = first.json()
    assert worker.get("/api/v1/me/duty").json()["on_leave_until"] == leave["ends_at"]
    errors = [
        ({"starts_at": days(1), "ends_at": days(3)}, 409, "leave.overlaps"),
        ({"starts_at": days(5), "ends_at": days(4)}, 422, "leave.invalid_period"),
        ({"starts_at": days(-5), "ends_at": days(-4)}, 422, "leave.invalid_period"),
        ({"starts_at": days(5), "ends_at": days(400)}, 422, "leave.invalid_period"),
        ({"starts_at": days(300), "ends_at": days(370)}, 422, "leave.invalid_period"),  # more than a year ahead
        ({"starts_at": "9999-06-01T00:00:00-12:00", "ends_at": "9999-12-31T23:00:00-12:00"}, 422,
         "leave.invalid_period"),
        ({"starts_at": "2026-12-01T08:00:00", "ends_at": days(3)}, 422, "request.invalid"),  # no zone
        ({"starts_at": days(5)}, 422, "request.invalid"),
    ]
    for payload, status, code in errors:
        response = community.post(leave_url(grid_worker), json=payload)
        assert (response.status_code, response.json()["code"]) == (status, code), payload
    assert worker.post(leave_url(grid_worker), json={"starts_at": days(5), "ends_at": days(6)}).status_code == 403
    other = make_user("district2", "district", tree["D2"])
    assert client_for(other).post(leave_url(grid_worker), json={"starts_at": days(5), "ends_at": days(6)}
                                  ).status_code == 404
    not_worker = community.post(leave_url(tree["department"]), json={"starts_at": days(5), "ends_at": days(6)})
    assert not_worker.status_code == 404  # a department handler of the street: outside the community
    supervisor = client_for(tree["street"]).post(leave_url(tree["community"]),
                                                 json={"starts_at": days(5), "ends_at": days(6)})
    assert (supervisor.status_code, supervisor.json()["code"]) == (422, "leave.not_a_worker")
    _db.session.rollback()
    assert _db.session.scalar(select(func.count()).select_from(Leave)) == 1
    listed = worker.get(leave_url(grid_worker))
    assert listed.status_code == 200 and [x["id"] for x in listed.json()] == [leave["id"]]
    assert community.delete(f"{leave_url(grid_worker)}/{leave['id']}").status_code == 204
    assert community.delete(f"{leave_url(grid_worker)}/{leave['id']}").status_code == 204  # again: nothing more
    assert community.delete(f"{leave_url(grid_worker)}/999999").status_code == 404
    assert community.get(leave_url(grid_worker)).json() == []
    (past,) = community.get(leave_url(grid_worker) + "?include_past=true").json()
    assert past["cancelled_at"] is not None
    assert worker.get("/api/v1/me/duty").json()["on_leave_until"] is None
    again = community.post(leave_url(grid_worker), json={"starts_at": days(1), "ends_at": days(3)})
    assert again.status_code == 201  # the cancelled leave no longer overlaps


def _report_and_accept(reporter, supervisor, category="0702") -> dict:
    made = reporter.post("/api/v1/incidents", json={"category": category, "description": "路面塌陷",
                                                    "location": {"type": "Point", "coordinates": IN_G1}})
    assert made.status_code == 201, made.text
    incident = made.json()
    accepted = supervisor.post(f"/api/v1/incidents/{incident['id']}/actions/accept",
                               json={"version": incident["version"]})
    assert accepted.status_code == 200, accepted.text
    return accepted.json()


def _active_assignee(incident_id: int) -> int | None:
    _db.session.rollback()
    return _db.session.scalar(select(Task.assignee_id).where(Task.incident_id == incident_id,
                                                             Task.status.in_(("open", "acknowledged"))))


def test_auto_dispatch_goes_to_the_primary_then_the_backup_then_waits_for_the_supervisor(tree, worker, community,
                                                                                          client_for, app):
    on = community.put(f"/api/v1/regions/{tree['K1'].id}/escalation-overrides",
                       json={"category": "0702", "policy": {"auto_dispatch": True}})
    assert on.status_code == 200, on.text
    assert community.put(f"/api/v1/regions/{tree['K1'].id}/escalation-overrides",
                         json={"category": "0702", "policy": {"auto_dispatch": "yes"}}).status_code == 422
    primary, backup = tree["grid_worker"], make_user("worker2", "grid_worker", tree["K1"])
    assign(backup, tree["G1"], "backup")
    reporter = client_for(backup)

    first = _report_and_accept(reporter, community)
    assert first["status"] == "dispatched" and _active_assignee(first["id"]) == primary.id
    other = _report_and_accept(reporter, community, category="0101")  # its policy does not say so
    assert other["status"] == "accepted" and _active_assignee(other["id"]) is None

    worker.post("/api/v1/me/duty", json={"on_duty": False})
    second = _report_and_accept(reporter, community)
    assert _active_assignee(second["id"]) == backup.id

    assert community.post(leave_url(backup), json={"starts_at": days(-0.1), "ends_at": days(1)}).status_code == 201
    third = _report_and_accept(reporter, community)
    assert third["status"] == "accepted" and _active_assignee(third["id"]) is None
    _db.session.rollback()
    waiting = _db.session.scalars(select(Notification).where(Notification.kind == "dispatch_waiting")).all()
    assert [(n.user_id, n.incident_id) for n in waiting] == [(tree["community"].id, third["id"])]
    assert waiting[0].title == "待派遣：无可派网格员"

    # the primary back on duty but holding the limit of open tasks: the backup's leave is over, it goes there
    worker.post("/api/v1/me/duty", json={"on_duty": True})
    _db.session.execute(Leave.__table__.update().values(ends_at=utcnow() - timedelta(minutes=1),
                                                        starts_at=utcnow() - timedelta(hours=1)))
    _db.session.commit()
    held = _db.session.scalar(select(func.count()).select_from(Task).where(
        Task.assignee_id == primary.id, Task.status.in_(("open", "acknowledged"))))
    category = _db.session.get(Incident, first["id"]).category
    for _ in range(app.config["MAX_OPEN_TASKS"] - held):
        make_task(make_incident(category, tree["G1"], primary, status="dispatched"), primary)
    fourth = _report_and_accept(reporter, community)
    assert _active_assignee(fourth["id"]) == backup.id
    events = reporter.get(f"/api/v1/incidents/{fourth['id']}").json()["timeline"]
    assert [e["action"] for e in events] == ["report", "accept", "dispatch"]
    assert events[-1]["note"] == "自动派遣 / dispatched automatically"


def test_workload_shows_each_worker_of_the_region_to_its_supervisors(tree, worker, community, client_for, app):
    primary = tree["grid_worker"]
    category = standard_categories()["0702"]
    late = make_incident(category, tree["G1"], primary, status="dispatched", due_at=utcnow() - timedelta(hours=1))
    make_task(late, primary, ack_deadline=utcnow() - timedelta(minutes=5))
    make_task(make_incident(category, tree["G1"], primary, status="dispatched",
                            due_at=utcnow() + timedelta(hours=5)), primary, status="acknowledged")
    t0 = utcnow() - timedelta(minutes=30)
    worker.post("/api/v1/patrols", json={"client_uuid": str(uuid.uuid4()), "started_at": t0.isoformat()})
    elsewhere = make_user("worker9", "grid_worker", tree["K2"])
    assign(elsewhere, tree["G3"], "primary")
    response = community.get(f"/api/v1/regions/{tree['K1'].id}/workload")
    assert response.status_code == 200, response.text
    body = response.json()
    (row,) = body["workers"]
    assert row["id"] == primary.id and row["on_duty"] is True and row["primary_cells"] == 1
    assert (row["open_tasks"], row["unacknowledged"], row["late_to_acknowledge"], row["overdue"]) == (2, 1, 1, 1)
    zone = ZoneInfo(app.config["TIMEZONE"])
    midnight = datetime.combine(utcnow().astimezone(zone).date(), datetime.min.time(), zone)
    expected = (utcnow() - max(t0, midnight)).total_seconds() / 60  # today's part of the patrol so far
    assert expected - 1 <= row["patrol_minutes_today"] <= expected + 0.1
    assert row["on_patrol"] is True and row["available"] is True and row["unavailable_reason"] is None
    worker.post("/api/v1/me/duty", json={"on_duty": False})
    row = community.get(f"/api/v1/regions/{tree['K1'].id}/workload").json()["workers"][0]
    assert row["available"] is False and row["unavailable_reason"] == "off_duty"
    # a backup from another community who covers a cell here is counted too
    assign(elsewhere, tree["G2"], "backup")
    ids = {w["id"] for w in community.get(f"/api/v1/regions/{tree['K1'].id}/workload").json()["workers"]}
    assert ids == {primary.id, elsewhere.id}
    assert worker.get(f"/api/v1/regions/{tree['K1'].id}/workload").status_code == 403
    assert community.get(f"/api/v1/regions/{tree['K2'].id}/workload").status_code == 404
    assert community.get("/api/v1/regions/999999/workload").status_code == 404
    street_view = client_for(tree["street"]).get(f"/api/v1/regions/{tree['S1'].id}/workload").json()
    assert {w["id"] for w in street_view["workers"]} == {primary.id, elsewhere.id}
    _db.session.rollback()
    assert _db.session.get(WorkerDuty, primary.id).on_duty is False
