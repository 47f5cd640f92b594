"""Who is told what when a case moves: inbox rows and their queued pushes are written in the
same transaction as the change (the outbox), once per cause, never to the actor, and only
to live devices."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from server.extensions import db as _db
from server.models import Incident, Notification, OutboxMessage, User
from server.models._base import utcnow
from server.services import notify
from tests.api.test_incidents import act, report
from tests.builders import make_user

DEVICES = "/api/v1/me/devices"





def phone(client, token: str, kind: str = "registration_token") -> None:
    response = client.post(DEVICES, json={"token": token, "platform": "android", "token_kind": kind})
    assert response.status_code in (200, 201), response.text


def inbox(user) -> list[tuple[str, str]]:
    _db.session.rollback()
    return [(n.kind, n.cause) for n in _db.session.scalars(
        select(Notification).where(Notification.user_id == user.id).order_by(Notification.id))]


def pushes() -> list[OutboxMessage]:
    _db.session.rollback()
    return list(_db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_a_dispatch_tells_the_worker_and_queues_a_push_to_each_live_phone(tree, worker, community):
    phone(worker, "tok-a" * 30)
    phone(worker, "tok-b" * 30)
    phone(worker, "fid-c" * 10, kind="installation_id")  # firebase-admin 7 sends to it as Message.fid
    iid = report(worker)["id"]
    act(community, iid, "accept")
    task = act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)["tasks"][0]
    assert inbox(tree["grid_worker"]) == [("task", f"task:{task['id']}")]
    assert inbox(tree["community"]) == []  # not told of their own action
    queued = pushes()
    assert len(queued) == 3 and all(p.status == "pending" and p.high_priority for p in queued)
    payload = queued[0].payload
    assert payload["type"] == "task" and payload["incident_id"] == str(iid) and payload["task_id"] == str(task["id"])
    assert payload["message_id"] == str(queued[0].message_id) and payload["title"] == "新任务"
    assert all(isinstance(v, str) for v in payload.values())  # FCM data payloads are strings
    assert queued[0].expires_at == datetime.fromisoformat(task["ack_deadline"])  # TTL: the deadline
    assert len({p.message_id for p in queued}) == 3


def test_an_escalation_tells_the_level_above_and_the_level_left(tree, worker, community, client_for):
    street_user = tree["street"]
    other_worker = make_user("worker2", "grid_worker", tree["K1"])
    iid = report(worker)["id"]
    act(community, iid, "accept")
    act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)
    act(community, iid, "escalate", note="社区统筹")  # grid → community: the community takes it itself
    act(community, iid, "escalate", note="需街道协调")  # community → street
    stage = _db.session.get(Incident, iid).stage_no
    assert inbox(street_user) == [("escalated_in", f"incident:{iid}:stage:{stage}:in")]
    assert ("escalated_out", f"incident:{iid}:stage:2:out") in inbox(tree["grid_worker"])  # the task ended
    assert inbox(tree["community"]) == []  # the actor
    assert inbox(other_worker) == []


def test_the_same_cause_tells_nobody_twice(tree, worker, community):
    iid = report(worker)["id"]
    incident = _db.session.get(Incident, iid)
    now = utcnow()
    assert notify.notify([tree["street"].id], "supervised", incident, now=now, cause="x:1") == 1
    assert notify.notify([tree["street"].id], "supervised", incident, now=now, cause="x:1") == 0
    _db.session.commit()
    assert _db.session.scalar(select(func.count()).select_from(Notification)) == 1


def test_reminders_wait_for_the_end_of_quiet_hours_and_tasks_do_not(tree, worker, app):
    phone(worker, "tok-q" * 30)
    user = _db.session.get(User, tree["grid_worker"].id)
    local = datetime.now(ZoneInfo(app.config["TIMEZONE"]))
    user.quiet_from = (local - timedelta(hours=1)).time().replace(second=0, microsecond=0)  # quiet now
    user.quiet_to = (local + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    _db.session.commit()
    iid = report(worker)["id"]
    incident = _db.session.get(Incident, iid)
    now = utcnow()
    notify.notify([user.id], "reminder", incident, now=now, cause="r", deadline=now + timedelta(days=3))
    notify.notify([user.id], "task", incident, now=now, cause="t", deadline=now + timedelta(hours=1))
    notify.notify([user.id], "reminder", incident, now=now, cause="r2", deadline=now + timedelta(minutes=30))
    _db.session.commit()
    by_kind = {p.payload["type"] + p.payload["notification_id"]: p for p in pushes()}
    reminder, task = [p for p in by_kind.values() if p.payload["type"] == "reminder"], \
        [p for p in by_kind.values() if p.payload["type"] == "task"]
    assert len(reminder) == 1 and reminder[0].not_before > now and not reminder[0].high_priority
    assert len(task) == 1 and task[0].not_before == now  # new work is told at once
    assert len(inbox(user)) == 3  # the short-lived reminder is in the inbox, not pushed
