"""Inspection campaigns (排查) over HTTP on a real PostGIS: launching for a street, the tasks
and who is told, findings reported as incidents, nothing-found reports with a photo, closing,
scope, and every refusal with its stable code and nothing changed."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server.extensions import db as _db
from server.models import Campaign, CampaignTask, Incident, Leave, Notification, WorkerDuty
from server.models._base import utcnow
from tests.api.test_incidents import report
from tests.builders import make_region, make_user
from tests.campaign_builders import (
    CAMPAIGNS, IN_G1, IN_G2, campaign_body, grow_street, launch, tasks_by_cell,
)
from tests.images import jpeg


@pytest.fixture
def street_grown(tree):
    return grow_street(tree)


def count(model, *where) -> int:
    _db.session.rollback()
    return _db.session.scalar(select(func.count()).select_from(model).where(*where))


def inbox(user) -> list[tuple[str, str]]:
    _db.session.rollback()
    return [(n.kind, n.cause) for n in _db.session.scalars(
        select(Notification).where(Notification.user_id == user.id).order_by(Notification.id))]


def nothing_found(client, campaign_id: int, task_id: int, photo: bytes | None = b"", note: str | None = None):
    """POST …/nothing-found as multipart: the photo (None: none, b"": a small JPEG) and the note."""
    parts = {"note": (None, note)} if note is not None else {}
    if photo is not None:
        parts["photo"] = ("cell.jpg", jpeg() if photo == b"" else photo, "image/jpeg")
    return client.post(f"{CAMPAIGNS}/{campaign_id}/tasks/{task_id}/nothing-found", files=parts)


def finding(task_id: int, at=IN_G1, category="0503", **overrides) -> dict:
    return {"category": category, "description": "消防通道被杂物堵塞", "location": {"type": "Point", "coordinates": at},
            "campaign_task_id": task_id, **overrides}


# ---------------------------------------------------------------- launching

def test_a_campaign_gives_each_live_cell_of_the_street_a_task_for_its_worker(tree, street, street_grown):
    retired = make_region("44010100100203", "grid", (-118.36, 34.06, -118.355, 34.07), street_grown["K3"])
    retired.retired_at = utcnow()
    _db.session.commit()
    response = street.post(CAMPAIGNS, json=campaign_body(tree["S1"]))
    assert response.status_code == 201, response.text
    campaign = response.json()
    assert response.headers["Location"] == f"/api/v1/campaigns/{campaign['id']}"
    assert campaign["state"] == "open" and campaign["state_label"] == {"zh": "进行中", "en": "Open"}
    assert [g["code"] for g in campaign["category_groups"]] == ["05"]
    tasks = tasks_by_cell(street, campaign["id"])
    assignees = {code: (task["assignee"] or {}).get("id") for code, task in tasks.items()}
    assert assignees == {tree["G1"].code: tree["grid_worker"].id, tree["G2"].code: street_grown["worker2"].id,
                         street_grown["G4"].code: street_grown["worker4"].id,  # a backup, with no primary
                         street_grown["G5"].code: None}  # nobody covers it; the retired cell has no task
    assert {task["state"] for task in tasks.values()} == {"open"}
    progress = campaign["progress"]
    assert (progress["total"], progress["done"], progress["percent_done"], progress["unassigned"]) == (4, 0, 0.0, 1)
    assert [(r["region"]["code"], r["total"]) for r in progress["by_region"]] == [
        (tree["K1"].code, 2), (street_grown["K3"].code, 2)]
    # one message per worker, whatever their cells; the supervisor of the cell nobody covers; not the launcher
    cause = f"campaign:{campaign['id']}"
    for worker in (tree["grid_worker"], street_grown["worker2"], street_grown["worker4"]):
        assert inbox(worker) == [("campaign_task", f"{cause}:task")]
    assert inbox(street_grown["community3"]) == [("campaign_unassigned", f"{cause}:unassigned")]
    assert inbox(tree["community"]) == [] and inbox(tree["street"]) == []


def test_a_worker_on_leave_is_passed_over_one_merely_off_duty_is_not(tree, street, street_grown):
    away = Leave(user_id=tree["grid_worker"].id, starts_at=utcnow() - timedelta(hours=1),
                 ends_at=utcnow() + timedelta(days=7), created_by=tree["community"].id)
    off = [WorkerDuty(user_id=street_grown[w].id, on_duty=False, since=utcnow()) for w in ("worker2", "worker4")]
    _db.session.add_all([away, *off])
    _db.session.commit()
    campaign = launch(street, tree["S1"])
    tasks = tasks_by_cell(street, campaign["id"])
    assignees = {code: (task["assignee"] or {}).get("id") for code, task in tasks.items()}
    assert assignees == {tree["G1"].code: street_grown["worker2"].id,  # the primary on leave: its backup
                         tree["G2"].code: street_grown["worker2"].id,  # off duty tonight, still the cell's worker
                         street_grown["G4"].code: street_grown["worker4"].id, street_grown["G5"].code: None}


def test_the_same_client_uuid_is_the_same_campaign_and_never_two(tree, street, street_grown, community):
    body = campaign_body(tree["S1"])
    first = street.post(CAMPAIGNS, json=body)
    again = street.post(CAMPAIGNS, json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert count(Campaign) == 1 and count(CampaignTask) == 4 and count(Notification) == 4
    other = street.post(CAMPAIGNS, json=body | {"title": "另一次排查"})
    assert other.status_code == 422 and other.json()["code"] == "idempotency.key_reused"
    someone_else = community.post(CAMPAIGNS, json=body | {"region_id": tree["K1"].id})
    assert someone_else.status_code == 422 and someone_else.json()["code"] == "idempotency.key_reused"
    assert count(Campaign) == 1 and count(CampaignTask) == 4


@pytest.mark.parametrize("change, status, code", [
    ({"deadline": "PAST"}, 422, "campaign.invalid_deadline"),
    ({"deadline": "FAR"}, 422, "campaign.invalid_deadline"),
    ({"deadline": "2026-12-01T10:00:00"}, 422, "request.invalid"),  # no zone
    ({"category_groups": ["99"]}, 422, "campaign.invalid_category_group"),
    ({"category_groups": ["0503"]}, 422, "campaign.invalid_category_group"),  # a leaf, not a group
    ({"category_groups": []}, 422, "request.invalid"),
    ({"title": "   "}, 422, "request.invalid"),
    ({"region_id": "S3"}, 422, "campaign.invalid_region"),  # the other district
    ({"region_id": 99999}, 422, "campaign.invalid_region"),
    ({"region_id": "K1", "who": "community1", "ok": True}, 201, None),
    ({"region_id": "S1", "who": "community1"}, 403, "auth.forbidden"),  # above the community's scope
    ({"region_id": "K1", "who": "worker1"}, 403, "auth.forbidden"),  # workers do not launch
    ({"region_id": "K1", "who": "police1"}, 422, "campaign.invalid_region"),  # departments see no campaigns
])
def test_bad_launches_are_refused_with_a_stable_code_and_change_nothing(tree, client_for, change, status, code):
    change = dict(change)
    who = {u.username: u for u in tree.users.values()}[change.pop("who", "street1")]
    ok = change.pop("ok", False)
    if change.get("deadline") == "PAST":
        change["deadline"] = (utcnow() - timedelta(minutes=1)).isoformat()
    elif change.get("deadline") == "FAR":
        change["deadline"] = (utcnow() + timedelta(days=400)).isoformat()
    if isinstance(change.get("region_id"), str):
        change["region_id"] = tree[change["region_id"]].id
    body = campaign_body(tree["S1"], **change)
    response = client_for(who).post(CAMPAIGNS, json=body)
    assert response.status_code == status, response.text
    if not ok:
        assert response.json()["code"] == code
        assert count(Campaign) == 0 and count(CampaignTask) == 0 and count(Notification) == 0


def test_a_region_without_live_cells_is_refused(tree, street):
    empty = make_region("440101001009", "community", (-118.36, 34.06, -118.355, 34.07), tree["S1"])
    response = street.post(CAMPAIGNS, json=campaign_body(empty))
    assert response.status_code == 422 and response.json()["code"] == "campaign.no_cells"
    assert count(Campaign) == 0


# ---------------------------------------------------------------- findings

def test_a_finding_reported_with_the_task_marks_it_found_once(tree, street, worker, street_grown, client_for):
    campaign = launch(street, tree["S1"])
    task = tasks_by_cell(street, campaign["id"])[tree["G1"].code]
    key = str(uuid.uuid4())
    first = report(worker, **finding(task["id"], client_uuid=key))
    assert first["campaign_task_id"] == task["id"]
    replay = report(worker, **finding(task["id"], client_uuid=key))  # a retry: the same answer, nothing more
    assert replay["id"] == first["id"] and count(Incident) == 1
    found = tasks_by_cell(street, campaign["id"])[tree["G1"].code]
    assert found["state"] == "found" and found["state_label"] == {"zh": "有发现", "en": "Found"}
    assert found["incident_ids"] == [first["id"]] and found["finished_at"] and not found["late"]
    # the cell's backup worker may report for it too, and a second finding keeps it found
    second = report(client_for(street_grown["worker2"]), **finding(task["id"], at=IN_G1, category="0501"))
    again = tasks_by_cell(street, campaign["id"])[tree["G1"].code]
    assert again["state"] == "found" and again["incident_ids"] == [first["id"], second["id"]]
    assert again["finished_at"] == found["finished_at"]  # the first answer's time stays
    assert street.get(f"{CAMPAIGNS}/{campaign['id']}").json()["progress"]["findings"] == 2


@pytest.mark.parametrize("case, status, code", [
    ("wrong_category", 422, "campaign.category_not_in_campaign"),
    ("outside_cell", 422, "campaign.outside_cell"),
    ("someone_elses_task", 422, "campaign.task_not_found"),  # a task of the community not the worker's: unseen
    ("unknown_task", 422, "campaign.task_not_found"),
    ("other_district", 422, "campaign.task_not_found"),
    ("closed", 409, "campaign.closed"),
])
def test_bad_findings_are_refused_and_change_nothing(tree, street, worker, street_grown, client_for, case, status,
                                                     code):
    campaign = launch(street, tree["S1"])
    tasks = tasks_by_cell(street, campaign["id"])
    task_id = tasks[tree["G1"].code]["id"]
    body = finding(task_id)
    if case == "wrong_category":
        body["category"] = "0702"  # a fight: not a safety hazard
    elif case == "outside_cell":
        body["location"]["coordinates"] = IN_G2
    elif case == "someone_elses_task":
        body = finding(tasks[tree["G2"].code]["id"], at=IN_G2)  # worker2's cell, not worker1's
    elif case == "unknown_task":
        body["campaign_task_id"] = 99999
    elif case == "other_district":
        admin = client_for(tree["admin"])
        other = launch(admin, tree["K2"])
        body["campaign_task_id"] = tasks_by_cell(admin, other["id"])[tree["G3"].code]["id"]  # not one worker1 sees
    elif case == "closed":
        assert street.post(f"{CAMPAIGNS}/{campaign['id']}/close").status_code == 200
    response = worker.post("/api/v1/incidents", json=body)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert count(Incident) == 0
    assert tasks_by_cell(street, campaign["id"])[tree["G1"].code]["state"] == ("cancelled" if case == "closed"
                                                                               else "open")


# ---------------------------------------------------------------- nothing found (零报告)

def test_nothing_found_records_the_photo_and_note_and_a_retry_changes_nothing(tree, street, worker, street_grown):
    campaign = launch(street, tree["S1"])
    task = tasks_by_cell(street, campaign["id"])[tree["G1"].code]
    photo = jpeg(colour=(20, 120, 200))
    response = nothing_found(worker, campaign["id"], task["id"], photo, note="楼道、消防通道均已检查")
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["state"] == "nothing_found" and done["state_label"]["zh"] == "零报告"
    assert done["note"] == "楼道、消防通道均已检查" and done["finished_at"] and not done["late"]
    image = street.get(done["photo"]["url"])
    assert image.status_code == 200 and image.content == photo and image.headers["Content-Type"] == "image/jpeg"
    assert nothing_found(worker, campaign["id"], task["id"], photo).json() == done  # a retry: the same answer
    other = nothing_found(worker, campaign["id"], task["id"], jpeg(colour=(1, 2, 3)))
    assert other.status_code == 409 and other.json()["code"] == "campaign.task_finished"
    # something turned up after all: the finding makes it found, the photo stays on record
    report(worker, **finding(task["id"]))
    after = tasks_by_cell(street, campaign["id"])[tree["G1"].code]
    assert after["state"] == "found" and after["photo"] == done["photo"] and after["finished_at"] == done["finished_at"]
    late_retry = nothing_found(worker, campaign["id"], task["id"], photo)  # the phone's retry, after the finding
    assert late_retry.status_code == 200 and late_retry.json()["state"] == "found"


def test_a_worker_reads_only_the_tasks_of_their_own_cells(tree, street, worker, street_grown, client_for):
    campaign = launch(street, tree["S1"])
    tasks = tasks_by_cell(street, campaign["id"])
    g2 = tasks[tree["G2"].code]
    assert nothing_found(client_for(street_grown["worker2"]), campaign["id"], g2["id"]).status_code == 200
    for path in (f"{CAMPAIGNS}/{campaign['id']}/tasks/{g2['id']}", f"{CAMPAIGNS}/{campaign['id']}/tasks/{g2['id']}/photo"):
        hidden = worker.get(path)  # worker1 covers G1 only: G2 is worker2's
        assert hidden.status_code == 404 and hidden.json()["code"] == "campaign.task_not_found", path
        assert street.get(path).status_code == 200, path
    g5 = tasks[street_grown["G5"].code]  # nobody's cell: not for worker4 of the same community either
    assert client_for(street_grown["worker4"]).get(f"{CAMPAIGNS}/{campaign['id']}/tasks/{g5['id']}").status_code == 404
    g1 = tasks[tree["G1"].code]  # worker2 is G1's backup: may read (and answer) it
    assert client_for(street_grown["worker2"]).get(f"{CAMPAIGNS}/{campaign['id']}/tasks/{g1['id']}").status_code == 200


@pytest.mark.parametrize("case, status, code", [
    ("no_photo", 422, "campaign.photo_required"),
    ("not_a_picture", 415, "photo.unsupported_type"),
    ("someone_elses_task", 404, "campaign.task_not_found"),  # a task of the community not the worker's: unseen
    ("a_supervisor", 403, "auth.forbidden"),
    ("other_campaign_in_path", 404, "campaign.task_not_found"),
    ("json_body", 415, "request.unsupported_media_type"),
    ("closed", 409, "campaign.closed"),
])
def test_bad_nothing_found_reports_are_refused_and_change_nothing(tree, street, worker, community, street_grown,
                                                                  case, status, code):
    campaign = launch(street, tree["S1"])
    tasks = tasks_by_cell(street, campaign["id"])
    campaign_id, task_id, client, photo = campaign["id"], tasks[tree["G1"].code]["id"], worker, b""
    note = None
    if case == "no_photo":
        photo, note = None, "看过了，没有发现"  # a multipart form with the note only
    elif case == "not_a_picture":
        photo = b"this is not a picture at all"
    elif case == "someone_elses_task":
        task_id = tasks[tree["G2"].code]["id"]
    elif case == "a_supervisor":
        client = community
    elif case == "other_campaign_in_path":
        campaign_id = launch(street, tree["K1"])["id"]
    elif case == "closed":
        street.post(f"{CAMPAIGNS}/{campaign['id']}/close")
    if case == "json_body":
        response = client.post(f"{CAMPAIGNS}/{campaign_id}/tasks/{task_id}/nothing-found", json={"note": "x"})
    else:
        response = nothing_found(client, campaign_id, task_id, photo, note)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert count(CampaignTask, CampaignTask.state == "nothing_found") == 0


# ---------------------------------------------------------------- closing, scope, the phone's list

def test_closing_cancels_the_tasks_still_to_do_and_keeps_the_answers(tree, street, worker, community, street_grown):
    campaign = launch(street, tree["S1"])
    tasks = tasks_by_cell(street, campaign["id"])
    assert nothing_found(worker, campaign["id"], tasks[tree["G1"].code]["id"]).status_code == 200
    assert worker.get("/api/v1/me/campaign-tasks").json()["total"] == 0  # answered
    refused = community.post(f"{CAMPAIGNS}/{campaign['id']}/close")  # the street's campaign, not the community's
    assert refused.status_code == 403 and refused.json()["code"] == "auth.forbidden"
    closed = street.post(f"{CAMPAIGNS}/{campaign['id']}/close")
    assert closed.status_code == 200 and closed.json()["state"] == "closed" and closed.json()["closed_at"]
    assert closed.json()["progress"]["by_state"] | {} == {"open": 0, "found": 0, "nothing_found": 1, "overdue": 0,
                                                          "cancelled": 3}
    again = street.post(f"{CAMPAIGNS}/{campaign['id']}/close")
    assert again.status_code == 200 and again.json()["closed_at"] == closed.json()["closed_at"]
    assert street.get(CAMPAIGNS, params={"state": "closed"}).json()["total"] == 1
    assert street.get(CAMPAIGNS, params={"state": "open"}).json()["total"] == 0


def test_each_actor_sees_the_campaigns_and_tasks_of_their_scope(tree, street, worker, community, street_grown,
                                                                client_for):
    campaign = launch(street, tree["S1"])
    path = f"{CAMPAIGNS}/{campaign['id']}"
    # the community supervisor: the street's campaign, cut to the community's cells
    seen = community.get(path).json()["progress"]
    assert seen["total"] == 2 and [r["region"]["code"] for r in seen["by_region"]] == [tree["K1"].code]
    assert set(tasks_by_cell(community, campaign["id"])) == {tree["G1"].code, tree["G2"].code}
    cells = community.get(f"{path}/cells.geojson").json()
    assert {f["properties"]["code"] for f in cells["features"]} == {tree["G1"].code, tree["G2"].code}
    # the grid worker: their own task
    assert set(tasks_by_cell(worker, campaign["id"])) == {tree["G1"].code}
    assert worker.get(path).json()["progress"]["total"] == 1
    mine = worker.get("/api/v1/me/campaign-tasks").json()
    assert [t["cell"]["code"] for t in mine["items"]] == [tree["G1"].code]
    assert mine["items"][0]["campaign"]["title"] == campaign["title"]
    # the worker of a cell nobody was assigned to finds its task on the phone (G5: nobody; G4: worker4)
    assert [t["cell"]["code"] for t in client_for(street_grown["worker4"]).get(
        "/api/v1/me/campaign-tasks").json()["items"]] == [street_grown["G4"].code]
    # the other district, and departments: nothing, and nothing of it in the answer
    other = client_for(make_user("community2", "community", tree["K2"]))
    for client in (other, client_for(tree["department"])):
        for suffix in ("", "/tasks", "/cells.geojson"):
            response = client.get(path + suffix)
            assert response.status_code == 404 and response.json()["code"] == "campaign.not_found"
            assert campaign["title"] not in response.text
        assert client.get(CAMPAIGNS).json()["total"] == 0
        assert client.post(f"{path}/close").status_code == 404
    assert client_for(tree["city"]).get(CAMPAIGNS).json()["total"] == 1


def test_the_task_list_filters_by_state_cell_and_assignee(tree, street, worker, street_grown):
    campaign = launch(street, tree["S1"])
    tasks = tasks_by_cell(street, campaign["id"])
    nothing_found(worker, campaign["id"], tasks[tree["G1"].code]["id"])
    path = f"{CAMPAIGNS}/{campaign['id']}/tasks"
    assert [t["cell"]["code"] for t in street.get(path, params={"state": "nothing_found"}).json()["items"]] == [
        tree["G1"].code]
    assert street.get(path, params={"state": ["open", "overdue"]}).json()["total"] == 3
    assert street.get(path, params={"cell_id": tree["G2"].id}).json()["items"][0]["cell"]["code"] == tree["G2"].code
    by_worker = street.get(path, params={"assignee_id": street_grown["worker4"].id}).json()
    assert [t["cell"]["code"] for t in by_worker["items"]] == [street_grown["G4"].code]
    page = street.get(path, params={"page_size": 3, "page": 2}).json()
    assert (page["total"], len(page["items"])) == (4, 1)
    bad = street.get(path, params={"state": "done"})
    assert bad.status_code == 422 and bad.json()["code"] == "request.invalid"
    assert street.get(path, params={"colour": "red"}).status_code == 422  # unknown filters are refused


def test_progress_and_the_cells_geojson_follow_the_answers(tree, street, worker, street_grown, client_for):
    campaign = launch(street, tree["S1"])
    tasks = tasks_by_cell(street, campaign["id"])
    report(worker, **finding(tasks[tree["G1"].code]["id"]))
    nothing_found(client_for(street_grown["worker4"]), campaign["id"], tasks[street_grown["G4"].code]["id"])
    progress = street.get(f"{CAMPAIGNS}/{campaign['id']}").json()["progress"]
    assert progress["by_state"] == {"open": 2, "found": 1, "nothing_found": 1, "overdue": 0, "cancelled": 0}
    assert (progress["done"], progress["percent_done"], progress["findings"]) == (2, 50.0, 1)
    assert [(r["region"]["code"], r["done"], r["percent_done"]) for r in progress["by_region"]] == [
        (tree["K1"].code, 1, 50.0), (street_grown["K3"].code, 1, 50.0)]
    response = street.get(f"{CAMPAIGNS}/{campaign['id']}/cells.geojson")
    assert response.headers["Content-Type"] == "application/geo+json"
    cells = response.json()
    assert cells["type"] == "FeatureCollection"
    states = {f["properties"]["code"]: (f["properties"]["state"], f["properties"]["label"], f["properties"]["colour"])
              for f in cells["features"]}
    assert states == {tree["G1"].code: ("found", "有发现", "#d73027"), tree["G2"].code: ("open", "待排查", "#74add1"),
                      street_grown["G4"].code: ("nothing_found", "零报告", "#1a9850"),
                      street_grown["G5"].code: ("open", "待排查", "#74add1")}
    g1 = next(f for f in cells["features"] if f["properties"]["code"] == tree["G1"].code)
    assert g1["geometry"]["type"] == "MultiPolygon" and g1["id"] == tree["G1"].id
    assert [(item["state"], item["label"], item["label_en"]) for item in cells["legend"]][:4] == [
        ("open", "待排查", "Open"), ("found", "有发现", "Found"), ("nothing_found", "零报告", "Nothing found"),
        ("overdue", "已超期", "Overdue")]


def test_the_openapi_document_declares_the_campaign_operations(http):
    spec = http.get("/api/v1/openapi.json").json()
    operations = {(path, method) for path, item in spec["paths"].items() for method in item
                  if "campaign" in path and method != "parameters"}
    assert operations == {
        ("/api/v1/campaigns", "post"), ("/api/v1/campaigns", "get"), ("/api/v1/campaigns/{campaign_id}", "get"),
        ("/api/v1/campaigns/{campaign_id}/close", "post"), ("/api/v1/campaigns/{campaign_id}/tasks", "get"),
        ("/api/v1/campaigns/{campaign_id}/tasks/{task_id}", "get"),
        ("/api/v1/campaigns/{campaign_id}/tasks/{task_id}/nothing-found", "post"),
        ("/api/v1/campaigns/{campaign_id}/tasks/{task_id}/photo", "get"),
        ("/api/v1/campaigns/{campaign_id}/cells.geojson", "get"), ("/api/v1/me/campaign-tasks", "get"),
    }
    nothing = spec["paths"]["/api/v1/campaigns/{campaign_id}/tasks/{task_id}/nothing-found"]["post"]
    assert {"403", "404", "409", "422"} <= set(nothing["responses"])
    assert "multipart/form-data" in nothing["requestBody"]["content"]
    report_body = spec["components"]["schemas"]["IncidentReport"]["properties"]
    assert "campaign_task_id" in report_body
