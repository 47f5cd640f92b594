"""A black-box test: a citizen's app that knows only Open311 GeoReport v2 (and mySociety's
updates) drives the server over HTTP in XML, the spec's default format, from the discovery
document on; staff act through the public API as they would. Nothing here reads the
database: what the app sees is all that is checked."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from xml.etree import ElementTree

import requests

from tests.images import jpeg


class GeoReportApp:
    """What a generic Open311 client does: find the endpoint, learn the services and their
    attributes, post a request, follow it by id or token, read and post updates."""

    def __init__(self, discovery_url: str, api_key: str):
        self.api_key = api_key
        root = self._xml(requests.get(discovery_url, timeout=30))
        endpoint = root.find("endpoints/endpoint")
        assert endpoint.findtext("specification") == "http://wiki.open311.org/GeoReport_v2"
        assert "text/xml" in [f.text for f in endpoint.find("formats")]
        self.base = endpoint.findtext("url")

    @staticmethod
    def _xml(response: requests.Response) -> ElementTree.Element:
        assert response.headers["Content-Type"].startswith("text/xml"), response.text
        assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
        return ElementTree.fromstring(response.content)

    @staticmethod
    def _record(element: ElementTree.Element) -> dict:
        return {child.tag: child.text for child in element}

    def services(self) -> list[dict]:
        return [self._record(s) for s in self._xml(requests.get(self.base + "services.xml", timeout=30))]

    def attributes(self, code: str) -> list[dict]:
        root = self._xml(requests.get(f"{self.base}services/{code}.xml", timeout=30))
        assert root.tag == "service_definition" and root.findtext("service_code") == code
        return [{**self._record(a), "values": [self._record(v) for v in a.findall("values/value")]}
                for a in root.find("attributes")]

    def post(self, what: str, form: dict) -> tuple[int, list[dict]]:
        response = requests.post(f"{self.base}{what}.xml", data={"api_key": self.api_key, **form}, timeout=30)
        return response.status_code, [self._record(item) for item in self._xml(response)]

    def request(self, request_id: str) -> dict:
        (found,) = [self._record(r) for r in self._xml(requests.get(
            f"{self.base}requests/{request_id}.xml", timeout=30))]
        return found

    def token(self, token: str) -> str | None:
        (found,) = self._xml(requests.get(f"{self.base}tokens/{token}.xml", timeout=30))
        return found.find("service_request_id").text  # an empty element: no id yet

    def updates(self, since: datetime) -> list[dict]:
        root = self._xml(requests.get(self.base + "servicerequestupdates.xml", timeout=30,
                                      params={"start_date": since.isoformat(), "end_date": datetime.now(
                                          timezone.utc).isoformat()}))
        assert root.tag == "service_request_updates"
        return [self._record(u) for u in root]


def _filled(attributes: list[dict]) -> dict:
    """The app's form for the required attributes: the first choice of each list."""
    form = {}
    for attribute in attributes:
        if attribute["required"] == "true":
            assert attribute["datatype"] in ("singlevaluelist", "multivaluelist"), attribute
            form[f"attribute[{attribute['code']}]"] = attribute["values"][0]["key"]
    return form


def _act(client, incident_id: str, action: str, **payload) -> dict:
    version = client.get(f"/api/v1/incidents/{incident_id}").json()["version"]
    response = client.post(f"/api/v1/incidents/{incident_id}/actions/{action}", json={"version": version, **payload})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_citizens_app_reports_and_follows_a_case_to_its_close(live_server, tree, client_for):
    started = datetime.now(timezone.utc) - timedelta(seconds=5)
    admin, community, worker = (client_for(tree[n]) for n in ("admin", "community", "grid_worker"))
    key = admin.post("/api/v1/open311/clients", json={"name": "市民随手拍", "rate_per_minute": 100}).json()["api_key"]
    app = GeoReportApp(f"{live_server}/open311/v2/discovery.xml", key)

    services = {s["service_code"]: s for s in app.services()}
    manhole = next(s for s in services.values() if s["keywords"] and "manhole" in s["keywords"])
    assert manhole["metadata"] == "true" and manhole["group"]
    form = {"service_code": manhole["service_code"], "lat": "34.02", "long": "-118.39",
            "description": "人行道井盖缺失，晚上很危险", "first_name": "明", "last_name": "李", "phone": "13900001111",
            **_filled(app.attributes(manhole["service_code"]))}
    status, (posted,) = app.post("requests", form)
    assert status == 201 and posted["service_request_id"]
    request_id = posted["service_request_id"]
    assert app.post("requests", form) == (200, [posted])  # the app's retry after a lost answer

    seen = app.request(request_id)
    assert (seen["status"], seen["service_code"], seen["description"]) == ("open", manhole["service_code"],
                                                                          form["description"])
    assert seen["expected_datetime"] and "13900001111" not in str(seen) and "李明" not in str(seen)

    # the community accepts and dispatches; the grid worker fixes it with a photo; the community checks it
    _act(community, request_id, "accept")
    _act(community, request_id, "dispatch", assignee_id=tree["grid_worker"].id)
    _act(worker, request_id, "acknowledge")
    assert worker.post(f"/api/v1/incidents/{request_id}/photos", data={"kind": "after"},
                       files={"file": ("after.jpg", jpeg(), "image/jpeg")}).status_code == 201
    _act(worker, request_id, "resolve", note="已更换新井盖")
    assert app.request(request_id)["status"] == "open"  # resolved, not yet checked
    status, (said,) = app.post("servicerequestupdates", {
        "service_request_id": request_id, "update_id": "app-1", "status": "OPEN",
        "updated_datetime": datetime.now(timezone.utc).isoformat(), "description": "看到已经换好了，谢谢"})
    assert status == 201 and said["update_id"]
    assert community.get(f"/api/v1/incidents/{request_id}").json()["timeline"][-1]["note"] == "看到已经换好了，谢谢"
    _act(community, request_id, "verify", note="现场核查合格")

    closed = app.request(request_id)
    assert (closed["status"], closed["status_notes"]) == ("closed", "核查结案：现场核查合格")
    assert closed["expected_datetime"] is None
    mine = [u for u in app.updates(started) if u["service_request_id"] == request_id]
    assert [u["status"] for u in mine] == ["INVESTIGATING", "ACTION_SCHEDULED", "FIXED", "CLOSED"]
    assert mine[2]["description"] == "处置反馈：已更换新井盖"
    assert said["update_id"] not in {u["update_id"] for u in mine}  # the citizen's own word is not echoed


def test_a_citizens_app_follows_an_address_only_request_by_its_token(live_server, tree, client_for):
    admin, city = client_for(tree["admin"]), client_for(tree["city"])
    key = admin.post("/api/v1/open311/clients", json={"name": "热线小程序"}).json()["api_key"]
    app = GeoReportApp(f"{live_server}/open311/v2/discovery.xml", key)
    rubbish = next(s for s in app.services() if s["keywords"] and "rubbish" in s["keywords"])
    status, (posted,) = app.post("requests", {"service_code": rubbish["service_code"],
                                              "address_string": "解放路 88 号东侧"})
    assert status == 201 and "token" in posted and "service_request_id" not in posted
    assert app.token(posted["token"]) is None

    (waiting,) = city.get("/api/v1/open311/unlocated").json()["items"]
    assert waiting["address_string"] == "解放路 88 号东侧"
    assert city.post(f"/api/v1/open311/unlocated/{waiting['id']}/place",
                     json={"location": {"type": "Point", "coordinates": [-118.39, 34.02]}}).status_code == 201

    request_id = app.token(posted["token"])
    assert request_id and app.request(request_id)["address"] == "解放路 88 号东侧"
