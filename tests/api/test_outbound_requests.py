"""Server-side request forgery (OWASP API7): the server fetches no URL a client or an operator
gives it — an Open311 request's or update's media_url, the map's basemap — not when it is
taken, not when it is read, not when the worker tells people about it. Only http(s) links
are taken at all."""
from __future__ import annotations

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from server.models._base import utcnow
from server.notifications.senders import LoggingSender
from tests.builders import build_tree, standard_categories
from tests.worker_passes import one_pass


@pytest.fixture
def listener():
    """An HTTP server on loopback that counts what asks it for anything."""
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        do_HEAD = do_POST = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", hits
    server.shutdown()
    server.server_close()


def test_no_link_a_client_or_the_operator_gives_is_ever_fetched(http, client_for, live_server, app, listener,
                                                                 monkeypatch):
    url, hits = listener
    monkeypatch.setitem(app.config, "MAP_BASEMAP_URL", url + "/tiles/{z}/{x}/{y}.png")
    tree = build_tree()
    standard_categories()
    admin = client_for(tree["admin"])
    key = admin.post("/api/v1/open311/clients", json={"name": "随手拍"}).json()["api_key"]
    base = f"{live_server}/open311/v2"
    posted = requests.post(f"{base}/requests.json", timeout=30, data={
        "api_key": key, "service_code": "0201", "attribute[damage]": "missing", "lat": "34.02", "long": "-118.39",
        "media_url": url + "/photo.jpg"})
    assert posted.status_code == 201
    number = posted.json()[0]["service_request_id"]
    update = requests.post(f"{base}/servicerequestupdates.json", timeout=30, data={
        "api_key": key, "service_request_id": number, "update_id": "u1", "description": "又坏了",
        "updated_datetime": utcnow().isoformat(), "media_url": url + "/update.jpg"})
    assert update.status_code == 201, update.text
    assert requests.get(f"{base}/requests/{number}.json", timeout=30).json()[0]["media_url"] == url + "/photo.jpg"
    assert admin.get(f"/api/v1/incidents/{number}").status_code == 200
    assert admin.get("/api/v1/map/config").json()["basemap"]["url"].startswith(url)
    one_pass(LoggingSender(), utcnow() + timedelta(minutes=1))
    assert hits == []


@pytest.mark.parametrize("link", ["javascript:alert(1)", "file:///etc/passwd", "gopher://127.0.0.1:25/",
                                  "//evil.example/x.jpg", "http://", "data:image/png;base64,AAAA"])
def test_only_http_links_are_taken(http, client_for, live_server, link):
    tree = build_tree()
    standard_categories()
    key = client_for(tree["admin"]).post("/api/v1/open311/clients", json={"name": "随手拍"}).json()["api_key"]
    response = requests.post(f"{live_server}/open311/v2/requests.json", timeout=30, data={
        "api_key": key, "service_code": "0201", "attribute[damage]": "missing", "lat": "34.02", "long": "-118.39",
        "media_url": link})
    assert response.status_code == 400 and "media_url" in response.json()[0]["description"]
