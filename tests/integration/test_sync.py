"""Sync for phones against a real PostGIS: the (xid, id) cursor below the snapshot's
xmin never loses a row, even one whose transaction commits after a sync began."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from server.domain.permissions import Actor
from server.errors import BadRequest
from server.models import Category, Incident, Task
from server.models._base import utcnow
from server.services import sync as service
from tests.builders import build_tree, make_user
from tests.incident_builders import make_category, make_incident, make_task, settle


def actor_of(user) -> Actor:
    return Actor(user_id=user.id, role=user.role, scope_path=user.region.path, department_id=user.department_id)


def synced(db, actor, cursor=None, limit=200) -> service.SyncPage:
    settle()
    page = service.sync(actor, cursor, limit)
    db.session.rollback()  # a sync only reads
    return page


def ids(rows) -> list[int]:
    return [row.id for row in rows]


def xid_of(db, model, row_id) -> int:
    return int(db.session.scalar(text(f"SELECT sync_xid::text FROM {model.__tablename__} WHERE id = :id"),
                                 {"id": row_id}))


@pytest.fixture
def world(db):
    tree = build_tree()
    group = make_category("90")
    leaf = make_category("9001", group)
    return tree, group, leaf


def test_first_sync_brings_open_and_recent_incidents_active_tasks_and_all_categories(db, world):
    tree, group, leaf = world
    retired = make_category("9002", group, retired_at=utcnow())
    worker = tree["grid_worker"]
    open_one = make_incident(leaf, tree["G1"], worker)
    closed_recently = make_incident(leaf, tree["G2"], worker, status="closed")
    closed_long_ago = make_incident(leaf, tree["G1"], worker, status="closed", updated_at=utcnow() - timedelta(days=40))
    active = make_task(open_one, assignee=worker)
    done = make_task(closed_recently, assignee=worker, status="done")

    page = synced(db, actor_of(worker))

    assert set(ids(page.incidents)) == {open_one.id, closed_recently.id}
    assert closed_long_ago.id not in ids(page.incidents)
    assert ids(page.tasks) == [active.id]
    assert done.id not in ids(page.tasks)
    assert set(ids(page.categories)) == {group.id, leaf.id, retired.id}
    assert page.has_more is False


def test_a_changed_incident_comes_in_the_next_sync_exactly_once(db, world):
    tree, _, leaf = world
    worker = tree["grid_worker"]
    incident = make_incident(leaf, tree["G1"], worker)
    other = make_incident(leaf, tree["G2"], worker)
    first = synced(db, actor_of(worker))
    assert synced(db, actor_of(worker), first.cursor).incidents == []

    db.session.get(Incident, incident.id).description = "井盖已修复"
    db.session.commit()
    second = synced(db, actor_of(worker), first.cursor)
    third = synced(db, actor_of(worker), second.cursor)

    assert ids(second.incidents) == [incident.id]
    assert second.incidents[0].description == "井盖已修复"
    assert other.id not in ids(second.incidents) + ids(third.incidents)
    assert third.incidents == [] and third.tasks == [] and third.categories == []


def test_a_small_limit_walks_everything_page_by_page(db, world):
    tree, group, leaf = world
    worker = tree["grid_worker"]
    incidents = [make_incident(leaf, tree["G1"], worker) for _ in range(7)]
    tasks = [make_task(i, assignee=worker) for i in incidents[:4]]

    seen, more_flags, cursor = {"i": [], "t": [], "c": []}, [], None
    for _ in range(10):
        page = synced(db, actor_of(worker), cursor, limit=3)
        seen["i"] += ids(page.incidents)
        seen["t"] += ids(page.tasks)
        seen["c"] += ids(page.categories)
        assert len(page.incidents) <= 3 and len(page.tasks) <= 3
        more_flags.append(page.has_more)
        cursor = page.cursor
        if not page.has_more:
            break

    assert more_flags == [True, True, False]
    assert sorted(seen["i"]) == sorted(i.id for i in incidents)
    assert sorted(seen["t"]) == sorted(t.id for t in tasks)
    assert sorted(seen["c"]) == [group.id, leaf.id]


def test_a_write_committed_after_a_sync_began_is_not_lost(db, world):
    tree, _, leaf = world
    worker = tree["grid_worker"]
    incident = make_incident(leaf, tree["G1"], worker)
    first = synced(db, actor_of(worker))

    with db.engine.connect() as late:
        late.execute(text("UPDATE incidents SET description = 'late', version = version + 1 WHERE id = :id"),
                     {"id": incident.id})
        late_xid = int(late.scalar(text("SELECT pg_current_xact_id()::text")))
        # the late transaction is still running: its row must wait, and the cursor must stay below it
        during = service.sync(actor_of(worker), first.cursor)
        db.session.rollback()
        assert incident.id not in ids(during.incidents)
        assert service.decode_cursor(actor_of(worker), during.cursor).positions["i"] <= (late_xid, 0)
        late.commit()

    after = synced(db, actor_of(worker), during.cursor)
    assert ids(after.incidents) == [incident.id]
    assert after.incidents[0].description == "late"


def test_a_lower_xmin_never_moves_a_position_back(db, world, monkeypatch):
    tree, _, _ = world
    actor = actor_of(tree["grid_worker"])
    ahead = service._Cursor(positions={kind: (2**40, 0) for kind in service.KINDS}, first="")
    page = service.sync(actor, service.encode_cursor(actor, ahead))
    db.session.rollback()
    assert service.decode_cursor(actor, page.cursor).positions == ahead.positions


def test_a_task_dispatched_away_from_me_comes_back_cancelled(db, world):
    tree, _, leaf = world
    worker = tree["grid_worker"]
    backup = make_user("worker2", "grid_worker", tree["K1"])
    incident = make_incident(leaf, tree["G1"], None, status="dispatched")
    mine = make_task(incident, assignee=worker)
    first = synced(db, actor_of(worker))
    assert ids(first.tasks) == [mine.id]

    db.session.get(Task, mine.id).status = "cancelled"
    db.session.commit()
    theirs = make_task(incident, assignee=backup)
    page = synced(db, actor_of(worker), first.cursor)

    assert [(t.id, t.status) for t in page.tasks] == [(mine.id, "cancelled")]
    assert theirs.id not in ids(page.tasks)
    assert theirs.id in ids(synced(db, actor_of(backup)).tasks)


def test_a_department_handler_syncs_its_departments_tasks_and_their_incidents(db, world):
    tree, _, leaf = world
    handler = tree["department"]
    dispatched = make_incident(leaf, tree["G2"], None, status="dispatched")
    elsewhere = make_incident(leaf, tree["G1"], None)
    task = make_task(dispatched, department=tree.department)

    page = synced(db, actor_of(handler))

    assert ids(page.incidents) == [dispatched.id]
    assert elsewhere.id not in ids(page.incidents)
    assert ids(page.tasks) == [task.id]


def test_a_retired_category_comes_back_retired(db, world):
    tree, _, leaf = world
    worker = tree["grid_worker"]
    first = synced(db, actor_of(worker))

    db.session.get(Category, leaf.id).retired_at = utcnow()
    db.session.commit()
    page = synced(db, actor_of(worker), first.cursor)

    assert ids(page.categories) == [leaf.id]
    assert page.categories[0].retired_at is not None


def test_another_communitys_incidents_never_come(db, world):
    tree, _, leaf = world
    worker = tree["grid_worker"]
    outside = make_incident(leaf, tree["G3"], tree["city"])
    first = synced(db, actor_of(worker))
    db.session.get(Incident, outside.id).description = "changed"
    db.session.commit()
    page = synced(db, actor_of(worker), first.cursor)

    assert outside.id not in ids(first.incidents) + ids(page.incidents)
    assert outside.id in ids(synced(db, actor_of(tree["city"])).incidents)


@pytest.mark.parametrize("mangle", [
    lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # signature altered
    lambda c: ("e" if c[0] != "e" else "f") + c[1:],  # payload altered
    lambda c: c.replace(".", ""),
    lambda c: "not a cursor",
    lambda c: c + ".x",
])
def test_a_tampered_cursor_is_refused(db, world, mangle):
    tree, _, _ = world
    actor = actor_of(tree["grid_worker"])
    cursor = synced(db, actor).cursor
    with pytest.raises(BadRequest) as refused:
        service.sync(actor, mangle(cursor))
    assert refused.value.code == "sync.invalid_cursor"


def test_a_cursor_is_good_only_for_its_actor_and_scope(db, world):
    tree, _, _ = world
    worker = actor_of(tree["grid_worker"])
    cursor = synced(db, worker).cursor
    for other in (actor_of(tree["community"]),
                  Actor(user_id=worker.user_id, role=worker.role, scope_path=tree["K2"].path)):
        with pytest.raises(BadRequest):
            service.sync(other, cursor)


def test_positions_follow_the_xid_of_the_last_writer(db, world):
    tree, _, leaf = world
    worker = tree["grid_worker"]
    incident = make_incident(leaf, tree["G1"], worker)
    before = xid_of(db, Incident, incident.id)
    db.session.get(Incident, incident.id).address = "门口"
    db.session.commit()
    assert xid_of(db, Incident, incident.id) > before  # the trigger stamps every update
