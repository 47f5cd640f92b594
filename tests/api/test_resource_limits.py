"""Resource consumption (OWASP API4): Open311's reads without a key are limited per address;
pages, periods, zooms, batches and bodies have bounds; an image's pixels are counted from
its header before it is decoded."""
from __future__ import annotations

import re
import struct
import time
import zlib
from datetime import datetime, timezone

import pytest
import requests

from server.extensions import db
from server.models import Open311ReadUsage

MINUTE = datetime(2026, 11, 24, 9, 30, 5, tzinfo=timezone.utc)


@pytest.fixture
def frozen(monkeypatch):
    """Open311's clock stopped in one minute (the count is per minute)."""
    from server.api import open311

    monkeypatch.setattr(open311, "utcnow", lambda: MINUTE)


def test_open311_reads_without_a_key_are_limited_per_address(tree, live_server, app, monkeypatch, frozen):
    monkeypatch.setitem(app.config, "OPEN311_READS_PER_MINUTE", 3)
    base = f"{live_server}/open311/v2"
    for path in ("discovery.json", "services.json", "requests.json"):
        assert requests.get(f"{base}/{path}", timeout=30).status_code == 200
    refused = requests.get(f"{base}/services.json", timeout=30)
    assert refused.status_code == 429 and refused.json()[0]["code"] == 429
    assert int(refused.headers["Retry-After"]) == 55
    xml = requests.get(f"{base}/requests/1.xml", timeout=30)
    assert xml.status_code == 429 and "<code>429</code>" in xml.text
    # another address behind the trusted proxy has its own count
    monkeypatch.setitem(app.config, "PROXY_COUNT", 1)
    other = requests.get(f"{base}/services.json", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=30)
    assert other.status_code == 200


def test_open311_reads_with_a_key_count_as_the_clients_calls(tree, live_server, app, client_for, monkeypatch,
                                                            frozen):
    monkeypatch.setitem(app.config, "OPEN311_READS_PER_MINUTE", 1)
    admin = client_for(tree["admin"])
    key = admin.post("/api/v1/open311/clients", json={"name": "随手拍", "rate_per_minute": 4}).json()["api_key"]
    base = f"{live_server}/open311/v2"
    answers = [requests.get(f"{base}/services.json", params={"api_key": key}, timeout=30).status_code
               for _ in range(5)]
    assert answers == [200, 200, 200, 200, 429]
    unknown = requests.get(f"{base}/services.json", params={"api_key": "fq311_nope"}, timeout=30)
    assert unknown.status_code == 403


def test_old_minutes_of_anonymous_reads_are_purged(tree, live_server):
    from datetime import timedelta

    from server.services.open311_clients import purge_usage

    requests.get(f"{live_server}/open311/v2/services.json", timeout=30)
    db.session.rollback()
    assert db.session.query(Open311ReadUsage).count() == 1
    purge_usage(datetime.now(timezone.utc) + timedelta(minutes=3))
    assert db.session.query(Open311ReadUsage).count() == 0


def _spec(client) -> dict:
    return client.get("/api/v1/openapi.json").json()


def _path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_no_list_pages_more_than_500(tree, client_for):
    admin = client_for(tree["admin"])
    checked = 0
    for path, item in _spec(admin)["paths"].items():
        operation = item.get("get") or {}
        names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        if "page_size" not in names:
            continue
        response = admin.get(_path(path), params={"page_size": 501})
        assert (response.status_code, response.json()["code"]) == (422, "request.invalid"), path
        assert "page_size" in response.json()["errors"]
        checked += 1
    assert checked >= 10
    huge = admin.get("/api/v1/incidents", params={"page": 10**12})
    assert huge.status_code == 422


@pytest.mark.parametrize(("path", "params"), [
    ("/api/v1/calendar/days", {"from": "2000-01-01", "to": "2099-12-31"}),
    ("/api/v1/stats/regions/1", {"from": "2000-01-01", "to": "2099-12-31"}),
    ("/api/v1/stats/regions/1/missed-reports", {"from": "2026-01-01", "to": "2026-12-31"}),
    ("/api/v1/incidents/nearby", {"lon": -118.39, "lat": 34.02, "category": "0101", "radius": 10**7}),
    ("/api/v1/map/incidents", {"bbox": "-180,-90,180,90", "limit": 10**6}),
    ("/api/v1/regions", {"bbox": "-1e308,-90,1e308,90"}),
])
def test_ranges_that_would_cost_the_server_dear_are_refused(tree, client_for, path, params):
    response = client_for(tree["admin"]).get(path, params=params)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("tile", ["23/0/0", "25/1/1", "-1/0/0", "3/8/0", "3/0/-1", "30/1073741823/0"])
def test_tiles_beyond_the_zooms_and_the_world_are_400(tree, client_for, tile):
    response = client_for(tree["admin"]).get(f"/api/v1/map/tiles/{tile}.mvt")
    assert response.status_code in (400, 404)
    assert response.json()["code"] in ("map.tile_out_of_range", "http.not_found")


def test_bodies_over_their_limits_are_413_before_they_are_read(tree, client_for, live_server):
    worker = client_for(tree["grid_worker"])
    big = worker.post("/api/v1/me/devices", data=b'{"token": "' + b"x" * (1024 * 1024) + b'", "platform": "ios"}',
                      headers={"Content-Type": "application/json"})
    assert (big.status_code, big.json()["code"]) == (413, "request.too_large")
    photo = worker.post("/api/v1/incidents/1/photos", data={"kind": "report"},
                        files={"file": ("p.jpg", b"\xff\xd8\xff" + b"0" * (12 * 1024 * 1024), "image/jpeg")})
    assert photo.status_code == 413
    form = requests.post(f"{live_server}/open311/v2/requests.json", data={"description": "x" * (2 * 1024 * 1024)},
                         timeout=30)
    assert form.status_code == 413 and form.json()[0]["code"] == 413
    points = worker.post("/api/v1/patrols/1/points", json={"points": [
        {"t": "2026-11-24T08:00:00+08:00", "lon": 113.3, "lat": 23.1}] * 1001})
    assert (points.status_code, points.json()["code"]) == (422, "request.invalid")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming ``width`` × ``height`` pixels with almost no data (a decompression bomb's
    header): Pillow reads the size without decoding anything."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(100_000, 100_000), (60_000, 1_000), (2**31 - 1, 2**31 - 1)])
def test_an_image_with_too_many_pixels_is_refused_from_its_header(tree, client_for, size):
    worker = client_for(tree["grid_worker"])
    body = '{"category": "0101", "description": "x", "location": {"type": "Point", "coordinates": [-118.39, 34.02]}}'
    started = time.monotonic()
    response = worker.post("/api/v1/incidents", data={"incident": body},
                           files={"report": ("bomb.png", _png_header_only(*size), "image/png")})
    assert (response.status_code, response.json()["code"]) == (422, "photo.too_many_pixels"), response.text
    assert time.monotonic() - started < 5
