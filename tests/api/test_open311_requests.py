"""Citizens' requests through Open311 (docs/OPEN311.md): posting with a key, retries, every
bad input refused with nothing written, keys and their rate, requests read back without
contact, the operators' queue of address-only requests, and updates both ways."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from xml.etree import ElementTree

import pytest
import requests
from sqlalchemy import func, select

from server.extensions import db as _db
from server.models import Incident, IncidentEvent, Notification, Open311Request, Open311Update, Open311Usage
from tests.open311_client import (
    ERRORS, POSTED, POSTED_UPDATE, REQUESTS, TOKENS, UPDATES, as_text, valid_json, xml_as_json, xml_says,
)

IN_G1 = {"lat": "34.02", "long": "-118.39"}
OUTSIDE = {"lat": "34.08", "long": "-118.22"}  # in the city, in no grid cell
PHONE = "13812345678"


def issue(admin, **fields) -> dict:
    response = admin.post("/api/v1/open311/clients", json={"name": "随手拍", **fields})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def key(tree, client_for) -> str:
    return issue(client_for(tree["admin"]))["api_key"]


def post(base: str, what: str, form: dict, fmt: str = "json") -> requests.Response:
    return requests.post(f"{base}/open311/v2/{what}.{fmt}", data=form, timeout=30)


def manhole(key: str, **more) -> dict:
    return {"api_key": key, "service_code": "0201", **IN_G1, "attribute[damage]": "missing",
            "description": "人行道上井盖没了", "first_name": "三", "last_name": "张", "phone": PHONE,
            "email": "zhang@example.com", **more}


def count(model) -> int:
    _db.session.rollback()
    return _db.session.scalar(select(func.count()).select_from(model))


def written() -> tuple[int, ...]:
    return tuple(count(m) for m in (Incident, IncidentEvent, Open311Request, Open311Update, Notification))


def test_a_located_request_is_a_case_in_its_cell_at_its_start_level_and_reads_back_without_contact(
        live_server, tree, key):
    response = post(live_server, "requests", manhole(key))
    assert response.status_code == 201, response.text
    (answer,) = valid_json(response, POSTED)
    incident_id = int(answer["service_request_id"])
    assert str(incident_id) in answer["service_notice"]

    _db.session.rollback()
    incident = _db.session.get(Incident, incident_id)
    assert (incident.source, incident.reporter_id, incident.status, incident.level) == ("open311", None, "reported",
                                                                                         "grid")
    assert (incident.region_id, incident.attributes) == (tree["G1"].id, {"damage": "missing"})
    assert (incident.contact_name, incident.contact_phone) == ("张三", PHONE)  # kept for the call-back, family name first
    told = _db.session.scalars(select(Notification).where(Notification.kind == "citizen_report")).all()
    assert [n.user_id for n in told] == [tree["community"].id]  # who supervises the grid level of G1

    listed = valid_json(requests.get(f"{live_server}/open311/v2/requests/{incident_id}.json", timeout=30), REQUESTS)
    (request,) = listed
    assert (request["status"], request["service_code"], request["description"]) == ("open", "0201", "人行道上井盖没了")
    assert request["status_notes"] == "上报" and "（社区/村）" in request["agency_responsible"]
    assert datetime.fromisoformat(request["expected_datetime"]) > datetime.fromisoformat(request["requested_datetime"])
    assert abs(request["lat"] - 34.02) < 1e-9 and abs(request["long"] + 118.39) < 1e-9
    xml = requests.get(f"{live_server}/open311/v2/requests/{incident_id}.xml", timeout=30)
    xml_says(xml, listed)
    for body in (xml.text, requests.get(f"{live_server}/open311/v2/requests.json", timeout=30).text):
        assert PHONE not in body and "张三" not in body and "zhang@" not in body  # contact never returned


def test_a_retry_is_answered_as_the_first_time_and_makes_nothing(live_server, tree, key):
    first = post(live_server, "requests", manhole(key))
    before = written()
    again = post(live_server, "requests", manhole(key))
    assert (first.status_code, again.status_code) == (201, 200) and again.json() == first.json()
    assert written() == before
    other = post(live_server, "requests", manhole(key, description="另一个井盖"))
    assert other.status_code == 201 and other.json() != first.json()


def test_identical_requests_at_once_make_one_case(live_server, tree, key):
    form, answers = manhole(key, description="同时发送"), []

    def send():
        answers.append(post(live_server, "requests", form))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201]
    assert len({a.text for a in answers}) == 1 and count(Incident) == 1


def test_the_same_form_after_a_day_is_a_new_request(live_server, tree, key):
    first = post(live_server, "requests", manhole(key)).json()
    _db.session.rollback()
    _db.session.execute(Open311Request.__table__.update().values(
        received_at=datetime.now(timezone.utc) - timedelta(hours=25)))
    _db.session.commit()
    later = post(live_server, "requests", manhole(key))
    assert later.status_code == 201 and later.json() != first and count(Incident) == 2


@pytest.mark.parametrize("change, says", [
    ({"service_code": None}, "service_code is required"),
    ({"service_code": "9999"}, "not a service here"),
    ({"service_code": "0702"}, "not a service here"),  # a fight between neighbours is no public service
    ({"long": None}, "long must be a number"),
    ({"lat": "91"}, "lat must be between"),
    ({"lat": "nan"}, "lat must be between"),
    ({"lat": "north"}, "lat must be a number"),
    (OUTSIDE, "outside the city's grid"),
    ({"lat": None, "long": None}, "A location is required"),
    ({"lat": None, "long": None, "address_id": "A-17"}, "address_id is not known here"),
    ({"description": "长" * 4001}, "description is longer than 4000"),
    ({"description": "a\x00b"}, "control or non-characters"),
    ({"media_url": "file:///etc/passwd"}, "media_url must be an http or https URL"),
    ({"phone": "call me"}, "phone must be digits"),
    ({"email": "nobody"}, "email is not an e-mail address"),
    ({"attribute[damage]": None}, "attribute[damage]: Required."),
    ({"attribute[damage]": "gone"}, "attribute[damage]: Must be one of"),
    ({"attribute[colour]": "red"}, "attribute[colour]: Unknown attribute."),
    ({"first_name": "x" * 51}, "first_name is longer than 50"),
    ({"first_name": "a" * 50, "last_name": "b" * 50}, "together are longer than 99"),
    ({"description": "坏\uffff字"}, "description holds control or non-characters"),  # no XML could carry it
    ({"attribute[damage]": "missing\x00"}, "attribute['damage'] holds control"),
    ({"attribute[\x01]": "x"}, "holds control or non-characters"),  # echoed: the XML error must still parse
    ({"media_url": "http://[::1"}, "media_url must be an http or https URL"),
    ({"attribute[damage][]": "broken"}, "attribute[damage] takes one value"),  # with attribute[damage] too
])
def test_every_bad_request_is_400_in_the_specs_list_and_writes_nothing(live_server, tree, key, change, says):
    form = {k: v for k, v in {**manhole(key), **change}.items() if v is not None}
    before = written()
    response = post(live_server, "requests", form)
    assert response.status_code == 400
    assert any(says in error["description"] for error in valid_json(response, ERRORS)), response.text
    xml = post(live_server, "requests", form, "xml")
    assert xml.status_code == 400 and ElementTree.fromstring(xml.content).tag == "errors"
    assert written() == before


def test_several_problems_are_each_an_error_of_the_list(live_server, tree, key):
    form = {"api_key": key, "service_code": "9999", "lat": "91", "long": "x", "media_url": "ftp://x"}
    errors = valid_json(post(live_server, "requests", form), ERRORS)
    assert len(errors) == 4 and {e["code"] for e in errors} == {400}


def test_a_key_is_needed_known_and_live(live_server, tree, client_for):
    admin = client_for(tree["admin"])
    client = issue(admin, contact="ops@example.com")
    before = written()
    for form, status in (({}, 403), ({"api_key": "fq311_nothing"}, 403), ({"api_key": client["api_key"]}, 400)):
        response = post(live_server, "requests", {**manhole("x"), **form} if form else
                        {k: v for k, v in manhole("x").items() if k != "api_key"})
        assert response.status_code == status or (status == 400 and response.status_code == 201), response.text
    assert count(Incident) == before[0] + 1  # only the last, with the live key
    revoked = admin.delete(f"/api/v1/open311/clients/{client['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    refused = post(live_server, "requests", manhole(client["api_key"], description="撤销之后"))
    assert refused.status_code == 403 and "revoked" in refused.json()[0]["description"]
    listed = admin.get("/api/v1/open311/clients").json()
    assert [c["key_prefix"] for c in listed] == [client["api_key"][:12]] and "api_key" not in listed[0]
    assert listed[0]["calls_last_hour"] == 1  # unknown and revoked keys count for no client


def test_only_administrators_issue_and_revoke_keys(live_server, tree, client_for):
    city = client_for(tree["city"])
    assert city.post("/api/v1/open311/clients", json={"name": "x"}).status_code == 403
    assert city.get("/api/v1/open311/clients").status_code == 403
    admin = client_for(tree["admin"])
    assert admin.post("/api/v1/open311/clients", json={"name": "x", "rate_per_minute": 0}).status_code == 422
    assert admin.delete("/api/v1/open311/clients/999").status_code == 404


def test_a_client_over_its_rate_is_told_to_wait(live_server, tree, client_for):
    key = issue(client_for(tree["admin"]), rate_per_minute=3)["api_key"]
    while datetime.now(timezone.utc).second >= 50:  # five calls inside one minute of the count
        time.sleep(1)
    statuses = [post(live_server, "requests", manhole(key, description=f"第{n}次")) for n in range(5)]
    assert [r.status_code for r in statuses] == [201, 201, 201, 429, 429]
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in statuses[3:])
    assert valid_json(statuses[3], ERRORS)[0]["code"] == 429
    assert count(Incident) == 3
    _db.session.rollback()
    assert _db.session.scalar(select(func.sum(Open311Usage.calls))) == 5


def test_an_address_only_request_waits_for_an_operator_behind_a_token(live_server, tree, key, client_for):
    form = {k: v for k, v in manhole(key).items() if k not in ("lat", "long")}
    response = post(live_server, "requests", {**form, "address_string": "解放路 88 号门口"})
    assert response.status_code == 201
    (answer,) = valid_json(response, POSTED)
    token = answer["token"]
    assert "service_request_id" not in answer and count(Incident) == 0
    waiting = valid_json(requests.get(f"{live_server}/open311/v2/tokens/{token}.json", timeout=30), TOKENS)
    assert waiting == [{"service_request_id": None, "token": token}]
    _db.session.rollback()
    assert [n.user_id for n in _db.session.scalars(select(Notification))] == [tree["city"].id]

    city, street = client_for(tree["city"]), client_for(tree["street"])
    assert street.get("/api/v1/open311/unlocated").status_code == 403
    queue = city.get("/api/v1/open311/unlocated").json()
    (item,) = queue["items"]
    assert (item["address_string"], item["has_contact"], queue["total"]) == ("解放路 88 号门口", True, 1)
    assert PHONE not in str(queue)
    outside = city.post(f"/api/v1/open311/unlocated/{item['id']}/place",
                        json={"location": {"type": "Point", "coordinates": [-118.22, 34.08]}})
    assert (outside.status_code, outside.json()["code"]) == (422, "incident.outside_grid")
    placed = city.post(f"/api/v1/open311/unlocated/{item['id']}/place",
                       json={"location": {"type": "Point", "coordinates": [-118.39, 34.02]}})
    assert placed.status_code == 201, placed.text
    incident_id = placed.json()["incident_id"]
    assert city.post(f"/api/v1/open311/unlocated/{item['id']}/place", json={
        "location": {"type": "Point", "coordinates": [-118.39, 34.02]}}).json()["code"] == "open311.already_handled"
    found = requests.get(f"{live_server}/open311/v2/tokens/{token}.json", timeout=30).json()
    assert found == [{"service_request_id": str(incident_id), "token": token}]
    _db.session.rollback()
    incident = _db.session.get(Incident, incident_id)
    assert (incident.source, incident.region_id, incident.contact_phone) == ("open311", tree["G1"].id, PHONE)
    row = _db.session.scalar(select(Open311Request))
    assert (row.contact_phone, row.contact_name) == (None, None)  # moved onto the case, not kept twice
    assert city.get("/api/v1/open311/unlocated").json()["total"] == 0
    assert requests.get(f"{live_server}/open311/v2/tokens/nope.json", timeout=30).status_code == 404


def test_a_dismissed_request_forgets_its_contact(live_server, tree, key, client_for):
    form = {k: v for k, v in manhole(key).items() if k not in ("lat", "long")}
    token = post(live_server, "requests", {**form, "address_string": "火星"}).json()[0]["token"]
    city = client_for(tree["city"])
    (item,) = city.get("/api/v1/open311/unlocated").json()["items"]
    assert city.post(f"/api/v1/open311/unlocated/{item['id']}/dismiss", json={"reason": " "}).status_code == 422
    dismissed = city.post(f"/api/v1/open311/unlocated/{item['id']}/dismiss", json={"reason": "不在本市"})
    assert dismissed.status_code == 200 and dismissed.json()["dismissed_at"]
    _db.session.rollback()
    assert _db.session.scalar(select(Open311Request.contact_phone)) is None
    assert requests.get(f"{live_server}/open311/v2/tokens/{token}.json", timeout=30).json()[0][
        "service_request_id"] is None


def _accept_and_dispatch(community, incident_id: int, worker_id: int) -> None:
    for action, payload in (("accept", {}), ("dispatch", {"assignee_id": worker_id}),
                            ("comment", {"note": "内部：当事人是张三的邻居"})):
        version = community.get(f"/api/v1/incidents/{incident_id}").json()["version"]
        response = community.post(f"/api/v1/incidents/{incident_id}/actions/{action}",
                                  json={"version": version, **payload})
        assert response.status_code == 200, response.text


def test_requests_are_listed_by_the_specs_filters(live_server, tree, key, community):
    ids = [int(post(live_server, "requests", manhole(key, description=f"井盖{n}")).json()[0]["service_request_id"])
           for n in range(3)]
    rubbish = post(live_server, "requests", {"api_key": key, "service_code": "0101", **IN_G1}).json()
    _accept_and_dispatch(community, ids[0], tree["grid_worker"].id)
    version = community.get(f"/api/v1/incidents/{ids[1]}").json()["version"]
    assert community.post(f"/api/v1/incidents/{ids[1]}/actions/reject",
                          json={"version": version, "note": "重复上报"}).status_code == 200
    staff = community.post("/api/v1/incidents", json={"category": "0702", "description": "邻里纠纷",
                                                      "location": {"type": "Point", "coordinates": [-118.39, 34.02]}})
    assert staff.status_code == 201

    def ids_of(**params) -> list[int]:
        body = valid_json(requests.get(f"{live_server}/open311/v2/requests.json", params=params, timeout=30),
                          REQUESTS)
        return [int(r["service_request_id"]) for r in body]

    everything = ids_of()
    assert everything == [int(rubbish[0]["service_request_id"]), ids[2], ids[1], ids[0]]  # newest first
    assert staff.json()["id"] not in everything  # not a public category
    assert ids_of(status="closed") == [ids[1]] and ids[1] not in ids_of(status="open")
    assert ids_of(service_code="0101") == [int(rubbish[0]["service_request_id"])]
    assert ids_of(service_request_id=f"{ids[0]},{ids[2]},{staff.json()['id']}") == [ids[2], ids[0]]
    assert ids_of(limit=2) == everything[:2] and ids_of(page=2, page_size=3) == everything[3:]
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    assert ids_of(start_date=future) == []
    listed = {r["service_request_id"]: r for r in requests.get(f"{live_server}/open311/v2/requests.json",
                                                                timeout=30).json()}
    assert listed[str(ids[1])]["status_notes"] == "不予立案：重复上报"
    assert listed[str(ids[0])]["status_notes"] == "派遣"  # the internal comment after it is not public
    assert "张三" not in str(listed)
    english = requests.get(f"{live_server}/open311/v2/requests/{ids[0]}.json", params={"locale": "en"}, timeout=30)
    assert english.json()[0]["status_notes"] == "Dispatch"
    xml = requests.get(f"{live_server}/open311/v2/requests.xml", timeout=30)
    assert xml_as_json(ElementTree.fromstring(xml.content)) == as_text(list(listed.values()))


@pytest.mark.parametrize("what, params, status, says", [
    ("requests", {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, 400,
     "more than 90 days apart"),
    ("requests", {"start_date": "2026-06-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, 400, "end_date is before"),
    ("requests", {"start_date": "yesterday"}, 400, "start_date must be ISO 8601"),
    ("requests", {"end_date": "0001-01-01T00:00:00Z"}, 400, "between the years 1900 and 2999"),
    ("requests", {"start_date": "9999-12-31T00:00:00+08:00"}, 400, "between the years 1900 and 2999"),
    ("servicerequestupdates", {"end_date": "0001-01-01T00:00:00Z"}, 400, "between the years 1900 and 2999"),
    ("requests", {"status": "pending"}, 400, "status must be open or closed"),
    ("requests", {"limit": "1001"}, 400, "limit must be a whole number from 1 to 1000"),
    ("requests", {"page": "0", "page_size": "x"}, 400, "page_size must be"),  # each problem listed
    ("requests", {"page": "²"}, 400, "page must be"),  # a digit to str.isdigit, not to int()
    ("requests", {"service_request_id": "1,x"}, 400, "service_request_id is a comma-separated list"),
    ("requests", {"service_request_id": "١٢"}, 400, "service_request_id is a comma-separated list"),
    ("requests", {"service_code": "\x00"}, 400, "out of range"),
    ("servicerequestupdates", {"service_request_id": "x"}, 400, "service_request_id is a request's number"),
    ("requests", {"jurisdiction_id": "elsewhere.gov"}, 404, "Unknown jurisdiction_id"),
])
def test_bad_filters_are_the_specs_errors(live_server, tree, what, params, status, says):
    response = requests.get(f"{live_server}/open311/v2/{what}.json", params=params, timeout=30)
    assert response.status_code == status
    assert any(says in e["description"] for e in valid_json(response, ERRORS)), response.text
    xml = requests.get(f"{live_server}/open311/v2/{what}.xml", params=params, timeout=30)
    assert xml.status_code == status and ElementTree.fromstring(xml.content).tag == "errors"


@pytest.mark.parametrize("method, path, status", [
    ("DELETE", "requests.xml", 405), ("GET", "requests.json/", 404), ("GET", "services/%00.json", 400),
    ("GET", "nowhere/at/all.json", 404), ("POST", "requests/1.json", 405),
])
def test_errors_outside_the_views_are_the_specs_list_too(live_server, tree, method, path, status):
    response = requests.request(method, f"{live_server}/open311/v2/{path}", timeout=30)
    assert response.status_code == status
    fmt = "json" if ".json" in path else "xml"
    if fmt == "json":
        assert valid_json(response, ERRORS)[0]["code"] == status
    else:
        assert ElementTree.fromstring(response.content).findtext("error/code") == str(status)


def test_updates_go_both_ways(live_server, tree, key, community):
    incident_id = int(post(live_server, "requests", manhole(key)).json()[0]["service_request_id"])
    _accept_and_dispatch(community, incident_id, tree["grid_worker"].id)
    updates = valid_json(requests.get(f"{live_server}/open311/v2/servicerequestupdates.json", timeout=30), UPDATES)
    assert [(u["service_request_id"], u["status"], u["description"]) for u in updates] == [
        (str(incident_id), "INVESTIGATING", "立案"), (str(incident_id), "ACTION_SCHEDULED", "派遣")]
    xml = requests.get(f"{live_server}/open311/v2/servicerequestupdates.xml", timeout=30)
    xml_says(xml, updates)

    said = {"api_key": key, "service_request_id": str(incident_id), "update_id": "fms-77",
            "updated_datetime": (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(), "status": "OPEN",
            "description": "井盖还是没有修",
            "email": "zhang@example.com"}
    staff_case = community.post("/api/v1/incidents", json={
        "category": "0101", "description": "工作人员上报", "location": {"type": "Point", "coordinates": [-118.39, 34.02]}})
    first = post(live_server, "servicerequestupdates", said)
    assert first.status_code == 201
    (answer,) = valid_json(first, POSTED_UPDATE)
    before = written()
    again = post(live_server, "servicerequestupdates", said)
    assert (again.status_code, again.json()) == (200, first.json()) and written() == before
    changed = post(live_server, "servicerequestupdates", {**said, "description": "别的话"})
    assert changed.status_code == 400 and "already sent" in changed.json()[0]["description"]
    _db.session.rollback()
    event = _db.session.get(IncidentEvent, int(answer["update_id"]))
    assert (event.incident_id, event.action, event.note) == (incident_id, "citizen_update", "井盖还是没有修")
    told = _db.session.scalars(select(Notification.user_id).where(Notification.kind == "citizen_update")).all()
    assert told == [tree["community"].id]
    timeline = community.get(f"/api/v1/incidents/{incident_id}").json()["timeline"]
    assert timeline[-1]["action"] == "citizen_update"
    for form, status in (({"service_request_id": "999999"}, 404), ({"status": "DONE"}, 400),
                         ({"service_request_id": str(staff_case.json()["id"])}, 404),  # not sent through Open311
                         ({"media_url": "http://[x"}, 400), ({"updated_datetime": "2999-01-01T00:00:00Z"}, 400),
                         ({"updated_datetime": "2026-11-24 09:30"}, 400), ({"update_id": None}, 400)):
        bad = {k: v for k, v in {**said, "update_id": "other", **form}.items() if v is not None}
        response = post(live_server, "servicerequestupdates", bad)
        assert response.status_code == status, (form, response.text)
    assert written() == before


def test_posting_other_than_a_form_is_the_specs_error(live_server, tree, key):
    response = requests.post(f"{live_server}/open311/v2/requests.json", json=manhole(key), timeout=30)
    assert response.status_code == 415 and valid_json(response, ERRORS)[0]["code"] == 415
    nothing = post(live_server, "discovery", {"api_key": key})
    assert nothing.status_code == 404 and valid_json(nothing, ERRORS)


def test_what_is_public_of_a_case_depends_on_its_kind_and_on_who_reported_it(live_server, tree, key, community):
    at = {"type": "Point", "coordinates": [-118.3912345, 34.0212345]}
    citizen = int(post(live_server, "requests", manhole(key, lat=str(at["coordinates"][1]),
                                                        long=str(at["coordinates"][0]), address_string="解放路 88 号",
                                                        media_url="https://img.example.com/1.jpg")
                       ).json()[0]["service_request_id"])
    wages = int(post(live_server, "requests", {
        "api_key": key, "service_code": "0605", **IN_G1, "attribute[parties_count]": "2",
        "attribute[dispute_type]": "wages", "description": "老板欠我三个月工资"}).json()[0]["service_request_id"])

    def staff(category: str, description: str) -> int:
        made = community.post("/api/v1/incidents", json={"category": category, "description": description,
                                                         "address": "幸福小区3栋502室", "location": at})
        assert made.status_code == 201, made.text
        return made.json()["id"]

    rubbish, job = staff("0101", "张三家门口垃圾"), staff("0804", "李四找工作")
    version = community.get(f"/api/v1/incidents/{rubbish}").json()["version"]
    assert community.post(f"/api/v1/incidents/{rubbish}/actions/reject",
                          json={"version": version, "note": "重复\x0b上报"}).status_code == 200

    listed = [int(r["service_request_id"]) for r in valid_json(
        requests.get(f"{live_server}/open311/v2/requests.json", timeout=30), REQUESTS)]
    assert sorted(listed) == sorted([citizen, rubbish])  # a dispute, a job seeker: never listed

    def one(number: int) -> dict:
        (found,) = valid_json(requests.get(f"{live_server}/open311/v2/requests/{number}.json", timeout=30), REQUESTS)
        return found

    mine = one(citizen)  # what the citizen sent, as sent
    assert (mine["address"], mine["description"], mine["media_url"]) == ("解放路 88 号", "人行道上井盖没了",
                                                                         "https://img.example.com/1.jpg")
    assert (mine["lat"], mine["long"]) == (34.0212345, -118.3912345)
    theirs = one(rubbish)  # staff's: near the spot, no address or description
    assert (theirs["address"], theirs["description"], theirs["lat"], theirs["long"]) == (None, None, 34.021, -118.391)
    for personal in (one(job), one(wages)):  # by number: service, status and times only
        assert (personal["address"], personal["description"], personal["lat"], personal["long"]) == (None,) * 4
        assert personal["status_notes"] == "上报" and personal["status"] == "open"
    xml = requests.get(f"{live_server}/open311/v2/requests.xml", timeout=30)
    assert ElementTree.fromstring(xml.content).find("request")  # a staff note's \x0b cannot break the feed
    assert "不予立案：重复\ufffd上报" in xml.text
    updates = requests.get(f"{live_server}/open311/v2/servicerequestupdates.xml", timeout=30)
    assert [u.findtext("service_request_id") for u in ElementTree.fromstring(updates.content)] == [str(rubbish)]
