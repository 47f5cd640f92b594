"""GET /api/v1/sync over HTTP: the phone's view of the protocol in docs/SYNC.md."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from server.extensions import db
from server.models import Incident
from tests.builders import build_tree, make_user
from tests.incident_builders import make_category, make_incident, make_task, settle

SYNC = "/api/v1/sync"


@pytest.fixture
def world(http):
    tree = build_tree()
    group = make_category("90")
    leaf = make_category("9001", group)
    return tree, group, leaf


def sync(client, cursor=None, **params):
    settle()
    response = client.get(SYNC, params={**({"cursor": cursor} if cursor else {}), **params})
    assert response.status_code == 200, response.text
    return response.json()


def ids(items) -> list[int]:
    return [item["id"] for item in items]


def test_first_sync_then_only_what_changed(world, client_for):
    tree, group, leaf = world
    worker = tree["grid_worker"]
    incident = make_incident(leaf, tree["G1"], worker)
    task = make_task(incident, assignee=worker)
    phone = client_for(worker)

    first = sync(phone)
    assert set(first) == {"cursor", "has_more", "server_time", "incidents", "tasks", "categories"}
    assert ids(first["incidents"]) == [incident.id]
    assert first["incidents"][0]["category"]["code"] == "9001" and first["incidents"][0]["version"] == 1
    assert ids(first["tasks"]) == [task.id] and first["tasks"][0]["status"] == "open"
    assert sorted(ids(first["categories"])) == [group.id, leaf.id]
    assert {"code", "parent_id", "name", "name_en", "kind", "default_priority", "start_level",
            "requires_after_photo", "attributes", "retired_at", "version"} <= set(first["categories"][0])
    assert first["has_more"] is False

    nothing = sync(phone, first["cursor"])
    assert nothing["incidents"] == nothing["tasks"] == nothing["categories"] == []

    db.session.get(Incident, incident.id).address = "东门"
    db.session.commit()
    changed = sync(phone, nothing["cursor"])
    assert ids(changed["incidents"]) == [incident.id]
    assert changed["incidents"][0]["address"] == "东门" and changed["incidents"][0]["version"] == 2
    assert sync(phone, changed["cursor"])["incidents"] == []


def test_has_more_walks_every_page(world, client_for):
    tree, _, leaf = world
    worker = tree["grid_worker"]
    made = [make_incident(leaf, tree["G2"], worker).id for _ in range(5)]
    phone = client_for(worker)

    seen, cursor, calls = [], None, 0
    while True:
        page = sync(phone, cursor, limit=2)
        seen += ids(page["incidents"])
        cursor, calls = page["cursor"], calls + 1
        if not page["has_more"]:
            break
    assert sorted(seen) == sorted(made)
    assert calls == 3


def test_a_late_commit_comes_in_a_later_sync(world, client_for):
    tree, _, leaf = world
    worker = tree["grid_worker"]
    incident = make_incident(leaf, tree["G1"], worker)
    phone = client_for(worker)
    first = sync(phone)

    with db.engine.connect() as late:
        late.execute(text("UPDATE incidents SET status = 'accepted', version = version + 1 WHERE id = :id"),
                     {"id": incident.id})
        during = phone.get(SYNC, params={"cursor": first["cursor"]}).json()
        assert during["incidents"] == []
        late.commit()

    after = sync(phone, during["cursor"])
    assert [(i["id"], i["status"]) for i in after["incidents"]] == [(incident.id, "accepted")]


def test_a_task_dispatched_to_someone_else_comes_back_cancelled(world, client_for):
    tree, _, leaf = world
    worker = tree["grid_worker"]
    backup = make_user("worker2", "grid_worker", tree["K1"])
    incident = make_incident(leaf, tree["G1"], None, status="accepted")
    supervisor = client_for(tree["community"])
    phone = client_for(worker)

    dispatched = supervisor.post(f"/api/v1/incidents/{incident.id}/actions/dispatch",
                                 json={"assignee_id": worker.id, "version": 1})
    assert dispatched.status_code == 200, dispatched.text
    first = sync(phone)
    (task,) = first["tasks"]
    assert task["status"] == "open" and task["incident_id"] == incident.id

    again = supervisor.post(f"/api/v1/incidents/{incident.id}/actions/dispatch",
                            json={"assignee_id": backup.id, "version": dispatched.json()["version"]})
    assert again.status_code == 200, again.text
    later = sync(phone, first["cursor"])

    assert [(t["id"], t["status"]) for t in later["tasks"]] == [(task["id"], "cancelled")]
    assert ids(later["incidents"]) == [incident.id]  # still in my community: the phone sees the new state


def test_a_retired_category_comes_back_with_retired_at(world, client_for):
    tree, _, leaf = world
    phone = client_for(tree["grid_worker"])
    first = sync(phone)

    retired = client_for(tree["admin"]).post(f"/api/v1/categories/{leaf.id}/retire")
    assert retired.status_code == 200, retired.text
    later = sync(phone, first["cursor"])

    assert [(c["id"], c["retired_at"] is not None) for c in later["categories"]] == [(leaf.id, True)]


def test_another_communitys_incidents_never_come(world, client_for):
    tree, _, leaf = world
    outside = make_incident(leaf, tree["G3"], tree["city"])
    phone = client_for(tree["grid_worker"])
    first = sync(phone)
    db.session.get(Incident, outside.id).description = "changed"
    db.session.commit()

    assert outside.id not in ids(first["incidents"]) + ids(sync(phone, first["cursor"])["incidents"])
    assert outside.id in ids(sync(client_for(tree["city"]))["incidents"])


def test_a_tampered_or_foreign_cursor_gets_400(world, client_for):
    tree, _, _ = world
    phone = client_for(tree["grid_worker"])
    cursor = sync(phone)["cursor"]
    payload, signature = cursor.split(".")
    tampered = [
        payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature,
        payload + "." + signature[::-1],
        "garbage",
    ]
    for bad in tampered:
        response = phone.get(SYNC, params={"cursor": bad})
        assert response.status_code == 400, bad
        assert response.json()["code"] == "sync.invalid_cursor"
        assert "cursor" in response.json()["errors"]
    # someone else's cursor is no good either
    response = client_for(tree["community"]).get(SYNC, params={"cursor": cursor})
    assert response.status_code == 400 and response.json()["code"] == "sync.invalid_cursor"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"cursor": "x" * 2001}, {"since": "now"}])
def test_bad_parameters_get_422(world, client_for, params):
    response = client_for(world[0]["grid_worker"]).get(SYNC, params=params)
    assert response.status_code == 422
    assert response.json()["code"] == "request.invalid"


def test_sync_needs_a_sign_in(http):
    response = http.get(SYNC)
    assert response.status_code == 401
    assert response.json()["code"] == "auth.required"
