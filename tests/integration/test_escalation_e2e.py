"""End to end with a controlled clock: a report over HTTP, a dispatch nobody acknowledges,
the worker's passes (re-push, the backup worker, the supervisors, then escalation to the
community and the street), checked on the timeline and on what the fake FCM received;
and the worker waking at once when a push is queued, also after the database cut the
connection it listens on, and going on when the database goes away as a pass ends."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import select, text

from server import worker
from server.extensions import db as _db
from server.models import Incident, IncidentEvent, Task
from server.models._base import utcnow
from server.notifications.senders import LoggingSender, PushResult
from server.services import notify
from tests.api.test_incidents import act, report
from tests.builders import assign, build_tree, make_user, standard_categories
from tests.incident_builders import make_incident
from tests.worker_passes import one_pass, phone_of



def _a_push_wakes_the_worker(sender, worker_id: int, incident_id: int) -> None:
    """Queue a push and expect the running worker to send it within seconds (not at its next pass)."""
    notify.notify([worker_id], "task", _db.session.get(Incident, incident_id), now=utcnow(), cause="wake",
                  deadline=utcnow() + timedelta(hours=1))
    _db.session.commit()
    queued = time.monotonic()
    while not sender.pushes and time.monotonic() - queued < 10:
        time.sleep(0.05)
    assert sender.pushes, "the worker did not wake for the new push"
    assert time.monotonic() - queued < 5

def kinds(fake, token) -> list[str]:
    return [m["data"]["type"] for m in fake.sent_to(token)]


def test_an_unacknowledged_overdue_case_climbs_to_the_street(db, client_for, fake, sender):
    tree = build_tree()
    standard_categories()
    backup = make_user("worker2", "grid_worker", tree["K1"])
    assign(backup, tree["G1"], "backup")
    backup_id, worker_id = backup.id, tree["grid_worker"].id  # the worker's passes end the session
    tokens = {name: phone_of(user) for name, user in
              (("worker", tree["grid_worker"]), ("backup", backup), ("community", tree["community"]),
               ("street", tree["street"]))}
    worker_phone, community = client_for(tree["grid_worker"]), client_for(tree["community"])

    iid = report(worker_phone, category="0101")["id"]
    act(community, iid, "accept")
    act(community, iid, "dispatch", assignee_id=worker_id)
    assert one_pass(sender, utcnow()).push.sent == 1  # the task reaches the worker's phone now

    def task():
        _db.session.expire_all()
        return _db.session.scalars(select(Task).where(Task.incident_id == iid).order_by(Task.id.desc())).first()

    one_pass(sender, task().ack_deadline)  # not acknowledged: pushed again
    one_pass(sender, task().ack_deadline)  # still not: the backup worker (B岗) gets it
    assert task().assignee_id == backup_id
    one_pass(sender, task().ack_deadline)  # nor by the backup: back to the community
    incident = _db.session.get(Incident, iid)
    assert incident.status == "accepted" and incident.level == "grid"
    for level in ("community", "street"):
        yellow_at, due_at = incident.yellow_at, incident.due_at
        one_pass(sender, yellow_at)  # due soon: whoever has the case is reminded
        one_pass(sender, due_at)  # overdue: one level up
        incident = _db.session.get(Incident, iid)
        assert incident.level == level
    assert incident.escalation_count == 2 and incident.stage_no == 3

    timeline = [(e.action, e.actor_id is None) for e in _db.session.scalars(
        select(IncidentEvent).where(IncidentEvent.incident_id == iid).order_by(IncidentEvent.id))]
    assert timeline == [
        ("report", False), ("accept", False), ("dispatch", False),
        ("repush", True), ("handover", True), ("handover", True),
        ("remind", True), ("escalate", True), ("remind", True), ("escalate", True),
    ]
    assert kinds(fake, tokens["worker"]) == ["task", "task_repush", "task_handover"]
    assert kinds(fake, tokens["backup"]) == ["task"]
    assert kinds(fake, tokens["community"]) == ["task_handover", "reminder", "escalated_in", "reminder",
                                                "escalated_out"]
    assert kinds(fake, tokens["street"]) == ["escalated_in"]
    assert len({s.message["data"]["message_id"] for s in fake.received}) == len(fake.received)  # one send per push


class Collecting:
    name = "collect"

    def __init__(self):
        self.pushes = []

    def send(self, pushes, now):
        self.pushes += pushes
        return [PushResult("sent", name="x") for _ in pushes]


def test_a_queued_push_wakes_the_worker_at_once(db, app):
    tree = build_tree()
    standard_categories()
    phone_of(tree["grid_worker"])
    worker_id = tree["grid_worker"].id
    incident = make_incident(standard_categories()["0702"], tree["G1"], tree["grid_worker"])
    incident_id = incident.id
    sender, stop = Collecting(), threading.Event()

    def run():
        with app.app_context():
            worker.run(interval_s=60, sender=sender, stop=stop.is_set)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        time.sleep(1.0)  # the first pass is over; the next is a minute away
        _a_push_wakes_the_worker(sender, worker_id, incident_id)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_the_worker_outlives_a_lost_listen_connection_and_is_woken_again(db, app):
    """A database restart cuts the connection the worker LISTENs on: the worker goes on
    (it died with OperationalError, pushes and escalations stopped), connects again, and a
    new push wakes it at once as before."""
    tree = build_tree()
    phone_of(tree["grid_worker"])
    worker_id = tree["grid_worker"].id
    incident_id = make_incident(standard_categories()["0702"], tree["G1"], tree["grid_worker"]).id
    sender, stop, failed = Collecting(), threading.Event(), []

    def run():
        with app.app_context():
            try:
                worker.run(interval_s=60, sender=sender, stop=stop.is_set)
            except Exception as exc:  # the test's verdict, not a thread's traceback
                failed.append(exc)

    def listening() -> list[int]:
        _db.session.rollback()  # pg_stat_activity is read once a transaction
        return list(_db.session.scalars(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN fengqiao_outbox' "
            "AND pid <> pg_backend_pid()")))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        time.sleep(1.0)  # the first pass is over; the next is a minute away
        [backend] = listening()
        _db.session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        _db.session.commit()
        again = time.monotonic()
        while (not listening() or listening() == [backend]) and time.monotonic() - again < 10:
            time.sleep(0.1)
        assert thread.is_alive(), f"the worker stopped: {failed}"
        assert listening() and listening() != [backend], "the worker did not listen again"
        _a_push_wakes_the_worker(sender, worker_id, incident_id)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive() and not failed


def test_the_worker_goes_on_when_the_database_goes_away_as_a_pass_ends(db, app):
    """The database restarts between a pass's last statement and the end of its session: the
    rollback that ends the session fails, which stopped the worker; now the next pass comes."""
    cut = []

    def database_restarts(report):
        backend = _db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        with _db.engine.connect() as other:  # waits until the backend is gone
            cut.append(other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": backend}).scalar())

    assert worker.run(interval_s=0.01, sender=LoggingSender(), passes=2, on_pass=database_restarts,
                      listen=False) == 2
    assert cut == [True, True]
