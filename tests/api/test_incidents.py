"""Reporting incidents and the closed loop, over HTTP."""
from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from server.extensions import db as _db
from server.models import Incident, IncidentEvent, IncidentPhoto, Task
from server.models._base import utcnow
from tests.builders import assign, make_department, make_user
from tests.images import exif_gps, jpeg

IN_G1 = [-118.3875, 34.025]
IN_G2 = [-118.3625, 34.025]
IN_G3 = [-118.275, 34.025]
NOWHERE = [-117.0, 33.0]





def body(**overrides) -> dict:
    report = {"category": "0702", "description": "两人在菜市场门口打架", "location": {"type": "Point", "coordinates": IN_G1}}
    report.update(overrides)
    return report


def report(client, expect=201, headers=None, **overrides) -> dict:
    response = client.post("/api/v1/incidents", json=body(**overrides), headers=headers)
    assert response.status_code == expect, response.text
    return response.json()


def multipart(client, report_body: dict, photos: dict[str, bytes]):
    files = [("incident", (None, json.dumps(report_body), "application/json"))]
    files += [(kind, (f"{kind}.jpg", data, "image/jpeg")) for kind, data in photos.items()]
    return client.post("/api/v1/incidents", files=files)


def act(client, incident_id: int, action: str, expect=200, **payload) -> dict:
    if "version" not in payload:
        payload["version"] = client.get(f"/api/v1/incidents/{incident_id}").json()["version"]
    response = client.post(f"/api/v1/incidents/{incident_id}/actions/{action}", json=payload)
    assert response.status_code == expect, response.text
    return response.json()


def count(model) -> int:
    _db.session.rollback()
    return _db.session.scalar(select(func.count()).select_from(model))


# ---------------------------------------------------------------- reporting

def test_a_report_finds_its_cell_and_chain_and_starts_the_timeline(tree, worker):
    response = worker.post("/api/v1/incidents", json=body(address="人民路1号", priority="high"))
    assert response.status_code == 201, response.text
    incident = response.json()
    assert response.headers["Location"] == f"/api/v1/incidents/{incident['id']}"
    assert response.headers["ETag"] == f'"{incident["version"]}"'
    assert incident["status"] == "reported" and incident["status_label"] == {"zh": "待受理", "en": "Reported"}
    assert incident["cell"]["code"] == tree["G1"].code
    assert [r["level"] for r in incident["chain"]] == ["city", "district", "street", "community", "grid"]
    assert incident["level"] == "grid" and incident["priority"] == "high" and incident["source"] == "phone"
    assert incident["location"] == {"type": "Point", "coordinates": IN_G1}
    assert [e["action"] for e in incident["timeline"]] == ["report"]
    assert incident["reporter"]["id"] == tree["grid_worker"].id and incident["followers"] == 1
    assert incident["due_at"] > incident["reported_at"]
    assert incident["actions"] == ["resolve_on_spot", "comment"]  # the reporter works this cell


@pytest.mark.parametrize("who, overrides, photos", [
    ("grid_worker", {}, {}),
    ("grid_worker", {"category": "0101", "resolve_on_spot": True, "resolution_note": "已清理"},
     {"before": "before", "after": "after"}),
    ("community", {"contact": {"name": "王小明", "phone": "13812345678"}}, {"report": "report"}),
    ("community", {"category": "0601", "attributes": {"parties_count": 2, "dispute_type": "noise"}}, {}),
])
def test_the_answer_to_a_report_is_what_reading_it_shows(tree, client_for, who, overrides, photos):
    """The report's answer is made from what was just written: it must equal a fresh read."""
    client = client_for(tree[who])
    images = {kind: jpeg(colour=(i, 2, 3), lon=IN_G1[0], lat=IN_G1[1]) for i, kind in enumerate(photos)}
    response = multipart(client, body(**overrides), images)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert len(answer["photos"]) == len(photos)
    assert ("mediate" in answer["actions"]) == (overrides.get("category") == "0601")  # a dispute's supervisor
    assert answer == client.get(f"/api/v1/incidents/{answer['id']}").json()


def test_the_category_start_level_and_default_priority_apply(tree, worker):
    incident = report(worker, category="0501", description="燃气味很重")
    assert incident["level"] == "street" and incident["priority"] == "urgent"


@pytest.mark.parametrize("coordinates", [NOWHERE, IN_G3])
def test_a_point_outside_every_cell_of_the_reporter_is_refused(tree, worker, coordinates):
    error = report(worker, expect=422, location={"type": "Point", "coordinates": coordinates})
    assert error["code"] == "incident.outside_grid"
    assert count(Incident) == 0


@pytest.mark.parametrize("category", ["9999", "07"])
def test_an_unknown_category_or_a_group_is_refused(tree, worker, category):
    assert report(worker, expect=422, category=category)["code"] == "incident.invalid_category"
    assert count(Incident) == 0


def test_attributes_must_fit_the_category(tree, worker):
    error = report(worker, expect=422, category="0601", attributes={"parties_count": 1})
    assert error["code"] == "incident.invalid_attributes"
    assert set(error["errors"]["attributes"]) == {"parties_count", "dispute_type"}
    ok = report(worker, category="0601", attributes={"parties_count": 2, "dispute_type": "noise"})
    assert ok["attributes"] == {"parties_count": 2, "dispute_type": "noise"}


def test_a_future_or_naive_occurred_at_is_refused(tree, worker):
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert report(worker, expect=422, occurred_at=future)["code"] == "incident.occurred_in_future"
    assert report(worker, expect=422, occurred_at="2026-01-01T10:00:00")["code"] == "request.invalid"
    assert count(Incident) == 0


@pytest.mark.parametrize("location", [
    {"type": "Point"}, {"type": "Point", "coordinates": [1]}, {"type": "LineString", "coordinates": IN_G1},
    {"type": "Point", "coordinates": [200, 34]}, {"type": "Point", "coordinates": ["a", "b"]},
])
def test_bad_locations_are_refused(tree, worker, location):
    response = worker.post("/api/v1/incidents", json=body(location=location))
    assert response.status_code == 422 and response.json()["code"] in ("request.invalid", "geometry.out_of_range")
    assert count(Incident) == 0


def test_phone_coordinates_in_gcj02_are_accepted(tree, worker):
    # outside China GCJ-02 equals WGS84, so the cell is the same
    assert report(worker, crs="gcj02")["cell"]["code"] == tree["G1"].code


def test_department_handlers_do_not_report(tree, client_for):
    error = report(client_for(tree["department"]), expect=403)
    assert error["code"] == "auth.forbidden"


def test_supervisors_report_too(tree, community):
    assert report(community, source="hotline", contact={"name": "张三丰", "phone": "13812345678"})["source"] == "hotline"


def test_contact_is_masked_except_for_supervisors(tree, worker, community):
    incident = report(worker, source="hotline", contact={"name": "张三丰", "phone": "13812345678"})
    assert incident["contact"] == {"name": "张**", "phone": "138****5678"}
    full = community.get(f"/api/v1/incidents/{incident['id']}").json()
    assert full["contact"] == {"name": "张三丰", "phone": "13812345678"}
    listed = community.get("/api/v1/incidents").json()["items"][0]
    assert listed["contact"] == {"name": "张**", "phone": "138****5678"}


# ---------------------------------------------------------------- idempotency

def test_a_retry_with_the_client_uuid_replays_the_first_answer(tree, worker):
    key = str(uuid.uuid4())
    first = worker.post("/api/v1/incidents", json=body(client_uuid=key))
    again = worker.post("/api/v1/incidents", json=body(client_uuid=key))
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert count(Incident) == 1


def test_the_same_key_with_another_body_is_refused(tree, worker):
    headers = {"Idempotency-Key": "phone-42-report-7"}
    report(worker, headers=headers)
    error = report(worker, expect=422, headers=headers, description="另一件事")
    assert error["code"] == "idempotency.key_reused"
    key = str(uuid.uuid4())
    report(worker, client_uuid=key)
    assert report(worker, expect=422, client_uuid=key, description="另一件事")["code"] == "idempotency.key_reused"
    assert count(Incident) == 2


def test_a_client_uuid_used_by_someone_else_is_refused(tree, worker, community):
    key = str(uuid.uuid4())
    report(worker, client_uuid=key)
    assert report(community, expect=422, client_uuid=key)["code"] == "idempotency.key_reused"


def test_a_replay_answers_as_first_time_even_after_the_incident_moved_on(tree, worker, community):
    key = str(uuid.uuid4())
    first = report(worker, client_uuid=key)
    act(community, first["id"], "accept")
    assert report(worker, client_uuid=key) == first


def test_an_unprintable_idempotency_key_is_refused(tree, worker):
    assert report(worker, expect=400, headers={"Idempotency-Key": "x" * 300})["code"] == "idempotency.invalid_key"


def test_twenty_identical_reports_at_once_make_one_incident(tree, worker):
    key = str(uuid.uuid4())
    payload = body(client_uuid=key)
    barrier = threading.Barrier(20)
    answers = []

    def send():
        barrier.wait()
        response = worker.session.post(worker.base_url + "/api/v1/incidents", json=payload,
                                       headers={"Authorization": f"Bearer {worker.token}"}, timeout=60)
        answers.append((response.status_code, response.json()["id"]))

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in answers] == [201] * 20
    assert len({incident_id for _, incident_id in answers}) == 1
    assert count(Incident) == 1 and count(IncidentEvent) == 1


# ---------------------------------------------------------------- resolve on the spot and photos

def test_resolve_on_the_spot_with_an_after_photo(tree, worker):
    response = multipart(worker, body(category="0101", resolve_on_spot=True, resolution_note="已清理"),
                         {"before": jpeg(colour=(1, 2, 3)), "after": jpeg(lon=IN_G1[0], lat=IN_G1[1])})
    assert response.status_code == 201, response.text
    incident = response.json()
    assert incident["status"] == "resolved" and incident["resolved_on_spot"] and incident["resolved_level"] == "grid"
    assert [e["action"] for e in incident["timeline"]] == ["report", "resolve_on_spot"]
    assert sorted(p["kind"] for p in incident["photos"]) == ["after", "before"]
    after = next(p for p in incident["photos"] if p["kind"] == "after")
    assert after["distance_m"] == pytest.approx(0, abs=1)


def test_resolve_on_the_spot_needs_an_after_photo_and_the_cells_worker(tree, worker, community):
    error = report(worker, expect=422, category="0101", resolve_on_spot=True)
    assert error["code"] == "incident.after_photo_required"
    response = multipart(community, body(category="0101", resolve_on_spot=True), {"after": jpeg()})
    assert response.status_code == 403 and response.json()["code"] == "auth.forbidden"
    assert count(Incident) == 0 and count(IncidentPhoto) == 0


def test_a_text_file_named_jpg_is_refused_and_nothing_is_written(tree, worker):
    response = multipart(worker, body(), {"report": b"this is not a picture at all"})
    assert response.status_code == 415 and response.json()["code"] == "photo.unsupported_type"
    assert count(Incident) == 0 and count(IncidentPhoto) == 0


def test_an_oversize_photo_is_refused(tree, worker, app, monkeypatch):
    monkeypatch.setitem(app.config, "PHOTO_MAX_BYTES", 1000)
    response = multipart(worker, body(), {"report": jpeg(size=(400, 400))})
    assert response.status_code == 413 and response.json()["code"] == "photo.too_large"
    assert count(Incident) == 0


def test_more_than_nine_photos_are_refused(tree, worker):
    files = [("incident", (None, json.dumps(body()), "application/json"))]
    files += [("report", (f"{i}.jpg", jpeg(colour=(i, i, i)), "image/jpeg")) for i in range(10)]
    response = worker.post("/api/v1/incidents", files=files)
    assert response.status_code == 422 and response.json()["code"] == "incident.too_many_photos"
    assert count(Incident) == 0


def test_empty_file_parts_are_ignored_and_a_second_incident_part_refused(tree, worker):
    response = multipart(worker, body(), {"report": b""})
    assert response.status_code == 201 and response.json()["photos"] == []
    files = [("incident", (None, json.dumps(body()), "application/json"))] * 2
    response = worker.post("/api/v1/incidents", files=files)
    assert response.status_code == 422 and "incident" in response.json()["errors"]


@pytest.mark.parametrize("raw", [
    b"[" * 100_000, b'{"category": NaN}', json.dumps(body(attributes={"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})).encode(),
])
def test_hostile_json_is_a_400(tree, worker, raw):
    response = worker.post("/api/v1/incidents", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["code"] == "request.malformed_json"


def test_absurd_attribute_values_are_422(tree, worker):
    error = report(worker, expect=422, category="0601", attributes={"parties_count": 10**400, "dispute_type": "noise"})
    assert error["code"] == "incident.invalid_attributes"


def test_a_photo_with_a_broken_clock_keeps_no_time(tree, worker):
    incident = report(worker)
    photo = worker.post(f"/api/v1/incidents/{incident['id']}/photos", data={"kind": "report"},
                        files={"file": ("a.jpg", jpeg(taken="1950:01:01 00:00:00+00:00"), "image/jpeg")}).json()
    assert photo["taken_at"] is None and photo["delay_seconds"] is None


def test_an_unknown_multipart_part_is_refused(tree, worker):
    response = multipart(worker, body(), {"selfie": jpeg()})
    assert response.status_code == 422 and "selfie" in response.json()["errors"]


def test_photos_show_exif_distance_and_delay_and_staff_get_the_original(tree, worker, community, client_for):
    incident = report(worker, category="0702")
    far = jpeg(lon=IN_G1[0] + 0.01, lat=IN_G1[1], taken="2026:01:01 08:00:00+08:00")
    url = f"/api/v1/incidents/{incident['id']}/photos"
    first = worker.post(url, data={"kind": "evidence"}, files={"file": ("a.jpg", far, "image/jpeg")})
    assert first.status_code == 201, first.text
    photo = first.json()
    assert 900 < photo["distance_m"] < 1000
    assert photo["delay_seconds"] > 0 and photo["taken_at"].startswith("2026-01-01T00:00:00")
    assert photo["exif_location"]["coordinates"][0] == pytest.approx(IN_G1[0] + 0.01, abs=1e-5)
    again = worker.post(url, data={"kind": "evidence"}, files={"file": ("b.jpg", far, "image/jpeg")})
    assert again.status_code == 200 and again.json()["id"] == photo["id"]

    original = community.get(photo["url"])
    assert original.status_code == 200 and original.content == far and original.headers["Content-Type"] == "image/jpeg"
    assert exif_gps(original.content)

    # a department handler gets the copy without GPS, and no EXIF position in the metadata
    act(community, incident["id"], "accept")
    act(community, incident["id"], "dispatch", department_id=tree.department.id)
    police = client_for(tree["department"])
    public = police.get(photo["url"])
    assert public.status_code == 200 and public.content != far and not exif_gps(public.content)
    listed = police.get(f"/api/v1/incidents/{incident['id']}").json()["photos"][0]
    assert "exif_location" not in listed


def test_photos_are_served_only_in_scope(tree, worker, client_for):
    incident = report(worker)
    url = f"/api/v1/incidents/{incident['id']}/photos"
    photo = worker.post(url, data={"kind": "report"}, files={"file": ("a.jpg", jpeg(), "image/jpeg")}).json()
    outsider = client_for(make_user("community2", "community", tree["K2"]))
    assert outsider.get(photo["url"]).status_code == 404
    assert outsider.post(url, data={"kind": "report"}, files={"file": ("a.jpg", jpeg(), "image/jpeg")}
                         ).status_code == 404
    assert worker.get(f"/api/v1/incidents/{incident['id']}/photos/999999").json()["code"] == "photo.not_found"


# ---------------------------------------------------------------- the closed loop

def test_the_whole_loop_from_report_to_close(tree, worker, community):
    incident = report(worker, category="0101")
    iid = incident["id"]
    accepted = act(community, iid, "accept")
    assert accepted["status"] == "accepted" and accepted["accepted_at"]
    dispatched = act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id, note="请今天处理")
    assert dispatched["status"] == "dispatched"
    task = dispatched["tasks"][0]
    assert task["status"] == "open" and task["assignee"]["id"] == tree["grid_worker"].id
    assert "acknowledge" in worker.get(f"/api/v1/incidents/{iid}").json()["actions"]
    act(worker, iid, "acknowledge")
    act(worker, iid, "start")
    error = act(worker, iid, "resolve", expect=422)
    assert error["code"] == "incident.after_photo_required"
    worker.post(f"/api/v1/incidents/{iid}/photos", data={"kind": "after"},
                files={"file": ("after.jpg", jpeg(), "image/jpeg")})
    resolved = act(worker, iid, "resolve", note="已清运")
    assert resolved["status"] == "resolved" and resolved["resolved_level"] == "grid"
    assert resolved["tasks"][0]["status"] == "done"
    closed = act(community, iid, "verify")
    assert closed["status"] == "closed" and closed["closed_at"] and not closed["is_open"]
    assert [e["action"] for e in closed["timeline"]] == [
        "report", "accept", "dispatch", "acknowledge", "start", "resolve", "verify"]
    assert closed["timeline"][2]["note"] == "请今天处理"
    assert all(e["action_label"]["zh"] for e in closed["timeline"])


def test_rework_sends_it_back_to_the_handler_and_is_counted(tree, worker, community):
    iid = report(worker)["id"]
    act(community, iid, "accept")
    act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)
    act(worker, iid, "acknowledge")
    act(worker, iid, "resolve")
    assert act(community, iid, "rework", expect=422)["code"] == "incident.reason_required"
    reworked = act(community, iid, "rework", note="现场仍有人聚集")
    assert reworked["status"] == "rework" and reworked["rework_count"] == 1
    assert reworked["tasks"][-1]["status"] == "acknowledged"
    assert reworked["tasks"][-1]["assignee"]["id"] == tree["grid_worker"].id
    assert act(worker, iid, "resolve")["status"] == "resolved"


def closed_case(worker, community, tree) -> int:
    iid = report(worker)["id"]
    act(community, iid, "accept")
    act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)
    act(worker, iid, "acknowledge")
    act(worker, iid, "resolve")
    act(community, iid, "verify")
    return iid


def test_a_satisfied_call_back_keeps_the_case_closed_once(tree, worker, community):
    iid = closed_case(worker, community, tree)
    kept = act(community, iid, "callback", satisfaction=4)
    assert kept["status"] == "closed" and kept["satisfaction"] == 4
    assert act(community, iid, "callback", expect=409, satisfaction=1)["code"] == "incident.callback_done"


def test_a_dissatisfied_call_back_reopens_the_case_with_a_fresh_deadline(tree, worker, community):
    iid = closed_case(worker, community, tree)
    due = community.get(f"/api/v1/incidents/{iid}").json()["due_at"]
    reopened = act(community, iid, "callback", satisfaction=1)
    assert reopened["status"] == "rework" and reopened["reopen_count"] == 1
    assert reopened["satisfaction"] is None and reopened["resolved_level"] is None
    assert [e["action"] for e in reopened["timeline"]][-2:] == ["callback", "reopen"]
    assert reopened["timeline"][-2]["data"]["satisfaction"] == 1
    assert reopened["due_at"] > due
    assert reopened["tasks"][-1]["status"] == "acknowledged"


def test_rework_goes_back_to_accepted_when_the_handler_no_longer_covers_the_cell(tree, worker, community):
    iid = report(worker)["id"]
    act(community, iid, "accept")
    act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)
    act(worker, iid, "acknowledge")
    act(worker, iid, "resolve")
    _db.session.rollback()
    moved = _db.session.get(type(tree["grid_worker"]), tree["grid_worker"].id)
    moved.region_id = tree["K2"].id
    _db.session.commit()
    reworked = act(community, iid, "rework", note="重新派遣")
    assert reworked["status"] == "accepted" and reworked["tasks"][-1]["status"] == "done"


def test_rework_needs_a_new_after_photo(tree, worker, community):
    iid = report(worker, category="0101")["id"]
    act(community, iid, "accept")
    act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)
    act(worker, iid, "acknowledge")
    url = f"/api/v1/incidents/{iid}/photos"
    worker.post(url, data={"kind": "after"}, files={"file": ("a.jpg", jpeg(colour=(1, 1, 1)), "image/jpeg")})
    act(worker, iid, "resolve")
    act(community, iid, "rework", note="未清理干净")
    assert act(worker, iid, "resolve", expect=422)["code"] == "incident.after_photo_required"
    worker.post(url, data={"kind": "after"}, files={"file": ("b.jpg", jpeg(colour=(2, 2, 2)), "image/jpeg")})
    assert act(worker, iid, "resolve")["status"] == "resolved"


def test_decline_returns_a_wrong_dispatch(tree, worker, community):
    iid = report(worker)["id"]
    act(community, iid, "accept")
    act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)
    declined = act(worker, iid, "decline", note="不属于我的网格")
    assert declined["status"] == "accepted" and declined["tasks"][0]["status"] == "declined"


def test_suspension_pauses_the_deadline(tree, worker, community):
    iid = report(worker)["id"]
    act(community, iid, "accept")
    before = act(community, iid, "suspend", note="等待产权单位答复")
    assert before["status"] == "suspended"
    resumed = act(community, iid, "resume")
    assert resumed["status"] == "accepted" and resumed["due_at"] > before["due_at"]


def test_an_extension_is_requested_by_the_handler_and_approved_above(tree, worker, community):
    iid = report(worker)["id"]
    act(community, iid, "accept")
    act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)
    act(worker, iid, "acknowledge")
    until = (datetime.now(timezone.utc) + timedelta(days=10)).isoformat()
    requested = act(worker, iid, "request_extension", until=until, note="需要协调物业")
    assert requested["extensions"][0]["status"] == "pending"
    assert act(worker, iid, "request_extension", expect=409, until=until, note="再次")["code"] == \
        "incident.extension_pending"
    assert act(worker, iid, "approve_extension", expect=403)["code"] == "auth.forbidden"
    assert "approve_extension" in community.get(f"/api/v1/incidents/{iid}").json()["actions"]
    approved = act(community, iid, "approve_extension")
    assert approved["extension_count"] == 1 and approved["due_at"][:16] == until[:16]
    assert act(community, iid, "refuse_extension", expect=409)["code"] == "incident.no_pending_extension"


def test_extensions_far_ahead_or_while_suspended_are_refused_and_end_with_the_task(tree, worker, community):
    iid = report(worker)["id"]
    act(community, iid, "accept")
    act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)
    error = act(worker, iid, "request_extension", expect=422, until="9999-12-31T23:59:59-01:00", note="很久")
    assert error["code"] == "incident.invalid_extension"
    soon = (datetime.now(timezone.utc) + timedelta(days=5)).isoformat()
    act(worker, iid, "request_extension", until=soon, note="需要协调")
    act(community, iid, "suspend", note="等待答复")
    assert act(community, iid, "approve_extension", expect=409)["code"] == "incident.invalid_transition"
    act(community, iid, "resume")
    declined = act(worker, iid, "decline", note="不归我管")
    assert [e["status"] for e in declined["extensions"]] == ["refused"]


def test_merge_links_a_duplicate_and_its_reporter_follows_the_original(tree, worker, community, client_for):
    worker2 = make_user("worker2", "grid_worker", tree["K1"])
    assign(worker2, tree["G2"])
    original = report(worker)["id"]
    duplicate = report(client_for(worker2))["id"]
    merged = act(community, duplicate, "merge", original_id=original)
    assert merged["status"] == "merged" and merged["merged_into_id"] == original
    target = community.get(f"/api/v1/incidents/{original}").json()
    assert target["followers"] == 2 and target["timeline"][-1]["action"] == "merged_in"
    assert act(community, duplicate, "merge", expect=409, original_id=original)["code"] == \
        "incident.invalid_transition"
    other = report(worker)["id"]
    assert act(community, other, "merge", expect=422, original_id=other)["code"] == "incident.invalid_original"


def test_dispatch_to_a_department_lets_its_handlers_take_it(tree, worker, community, client_for):
    iid = report(worker)["id"]
    police = client_for(tree["department"])
    assert police.get(f"/api/v1/incidents/{iid}").status_code == 404
    act(community, iid, "accept")
    act(community, iid, "dispatch", department_id=tree.department.id)
    assert act(police, iid, "acknowledge")["tasks"][0]["status"] == "acknowledged"


def test_dispatch_needs_one_fitting_assignee(tree, worker, community):
    iid = report(worker)["id"]
    act(community, iid, "accept")
    assert act(community, iid, "dispatch", expect=422)["code"] == "incident.assignee_required"
    assert act(community, iid, "dispatch", expect=422, assignee_id=tree["community"].id)["code"] == \
        "incident.invalid_assignee"
    outsider = make_user("worker3", "grid_worker", tree["K2"])
    assert act(community, iid, "dispatch", expect=422, assignee_id=outsider.id)["code"] == "incident.invalid_assignee"
    assert count(Task) == 0


def test_dispatch_targets_are_whom_the_dispatch_accepts_above_the_scope_too(tree, worker, community, client_for):
    iid = report(worker)["id"]
    act(community, iid, "accept")
    make_user("worker2", "grid_worker", tree["K2"])  # another community's
    idle = make_user("worker4", "grid_worker", tree["K1"])
    idle.is_active = False
    make_department("DEP-S3-WATER", tree["S3"])  # another street's
    closed = make_department("DEP-S1-OLD", tree["S1"])
    closed.retired_at = utcnow()
    city = make_department("DEP-C-CITY", tree["C"])
    _db.session.commit()
    targets = community.get(f"/api/v1/incidents/{iid}/dispatch-targets")
    assert targets.status_code == 200, targets.text
    got = targets.json()
    assert [w["id"] for w in got["workers"]] == [tree["grid_worker"].id]
    assert got["workers"][0]["region"]["id"] == tree["K1"].id
    # the street's police, which the community cannot list under /departments, then the city's
    assert [d["id"] for d in got["departments"]] == [tree.department.id, city.id]
    assert tree.department.id not in {d["id"] for d in community.get("/api/v1/departments").json()["items"]}
    act(community, iid, "dispatch", department_id=city.id)  # every target is one the dispatch takes
    assert worker.get(f"/api/v1/incidents/{iid}/dispatch-targets").json()["code"] == "auth.forbidden"
    outsider = client_for(make_user("community2", "community", tree["K2"]))
    assert outsider.get(f"/api/v1/incidents/{iid}/dispatch-targets").json()["code"] == "incident.not_found"
    assert community.get("/api/v1/incidents/999999/dispatch-targets").status_code == 404


# ---------------------------------------------------------------- refusals and concurrency

def test_refused_transitions_and_actors(tree, worker, community, client_for):
    iid = report(worker)["id"]
    assert act(community, iid, "verify", expect=409)["code"] == "incident.invalid_transition"
    assert act(worker, iid, "accept", expect=403)["code"] == "auth.forbidden"
    outsider = client_for(make_user("community2", "community", tree["K2"]))
    assert outsider.post(f"/api/v1/incidents/{iid}/actions/accept", json={"version": 1}).json()["code"] == \
        "incident.not_found"
    assert community.post(f"/api/v1/incidents/{iid}/actions/teleport", json={"version": 1}).status_code == 404
    assert community.post(f"/api/v1/incidents/{iid}/actions/accept", json={"version": 1, "bogus": 1}
                          ).status_code == 422
    assert count(IncidentEvent) == 1


def test_a_stale_or_missing_version_changes_nothing(tree, worker, community):
    iid = report(worker)["id"]
    stale = community.get(f"/api/v1/incidents/{iid}").json()["version"]
    act(community, iid, "accept", version=stale)
    response = community.post(f"/api/v1/incidents/{iid}/actions/suspend", json={"version": stale, "note": "等"})
    assert response.status_code == 409 and response.json()["code"] == "incident.version_conflict"
    response = community.post(f"/api/v1/incidents/{iid}/actions/suspend", json={"note": "等"})
    assert response.status_code == 428 and response.json()["code"] == "incident.version_required"
    assert community.get(f"/api/v1/incidents/{iid}").json()["status"] == "accepted"
    fresh = community.get(f"/api/v1/incidents/{iid}")
    ok = community.post(f"/api/v1/incidents/{iid}/actions/suspend", json={"note": "等"},
                        headers={"If-Match": fresh.headers["ETag"]})
    assert ok.status_code == 200 and ok.json()["status"] == "suspended"


def test_two_supervisors_dispatching_at_once_one_wins(tree, worker, community, client_for):
    worker2 = make_user("worker2", "grid_worker", tree["K1"])
    street = client_for(tree["street"])
    iid = report(worker)["id"]
    version = act(community, iid, "accept")["version"]
    barrier = threading.Barrier(2)
    answers = []

    def dispatch(client, assignee):
        barrier.wait()
        response = client.post(f"/api/v1/incidents/{iid}/actions/dispatch",
                               json={"version": version, "assignee_id": assignee})
        answers.append((response.status_code, response.json().get("code")))

    threads = [threading.Thread(target=dispatch, args=(community, tree["grid_worker"].id)),
               threading.Thread(target=dispatch, args=(street, worker2.id))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in answers) == [200, 409]
    assert (409, "incident.version_conflict") in answers
    _db.session.rollback()
    assert _db.session.scalar(select(func.count()).where(Task.incident_id == iid)) == 1


def test_comments_need_no_version_and_make_no_new_version(tree, worker):
    first = report(worker)
    response = worker.post(f"/api/v1/incidents/{first['id']}/actions/comment", json={"note": "补充：有人受伤"})
    assert response.status_code == 200 and response.json()["timeline"][-1]["note"] == "补充：有人受伤"
    assert response.json()["version"] == first["version"]


# ---------------------------------------------------------------- disputes

def test_disputes_carry_mediation_records(tree, worker, community):
    iid = report(worker, category="0601", attributes={"parties_count": 3, "dispute_type": "water_leak"})["id"]
    version = act(community, iid, "accept")["version"]
    assert community.post(f"/api/v1/incidents/{iid}/mediation/sessions",
                          json={"held_on": "2026-11-20", "outcome": "adjourned", "version": version}
                          ).json()["code"] == "incident.no_mediation"
    recorded = community.put(f"/api/v1/incidents/{iid}/mediation",
                             json={"mode": "people", "parties_count": 3, "version": version})
    assert recorded.status_code == 200, recorded.text
    version = recorded.json()["version"]
    session = community.post(f"/api/v1/incidents/{iid}/mediation/sessions",
                             json={"held_on": "2026-11-21", "outcome": "agreed", "note": "签订调解协议",
                                   "version": version})
    assert session.status_code == 200, session.text
    version = session.json()["version"]
    done = community.put(f"/api/v1/incidents/{iid}/mediation",
                         json={"mode": "people", "parties_count": 3, "agreement_reached": True, "version": version})
    mediation = done.json()["mediation"]
    assert mediation["mode_label"]["zh"] == "人民调解" and mediation["agreement_reached"] is True
    assert [s["outcome"] for s in mediation["sessions"]] == ["agreed"]
    assert [e["action"] for e in done.json()["timeline"]].count("mediate") == 3


def test_only_disputes_take_mediation(tree, worker, community):
    incident = report(worker)
    response = community.put(f"/api/v1/incidents/{incident['id']}/mediation",
                             json={"mode": "people", "parties_count": 2, "version": incident["version"]})
    assert response.status_code == 409 and response.json()["code"] == "incident.not_a_dispute"
