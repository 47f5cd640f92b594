"""Uploads (OWASP API4/API8 for files): a photo is what its bytes are, never what its name or
its part's Content-Type claim; SVG, HTML, GIF, AVIF, empty and broken files are refused; a
name with a path in it is never used; what is served carries its sniffed type and is never
sniffed again nor run; department handlers get a copy without EXIF; files to save are
attachments."""
from __future__ import annotations

import io
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image

from tests.images import exif_gps, jpeg

IN_G1 = [-118.39, 34.02]
REPORT = '{"category": "0101", "description": "x", "location": {"type": "Point", "coordinates": [-118.39, 34.02]}}'
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'


@pytest.fixture
def case(tree, worker) -> dict:
    made = worker.post("/api/v1/incidents", json={"category": "0101", "description": "x",
                                                  "location": {"type": "Point", "coordinates": IN_G1}})
    assert made.status_code == 201
    return made.json()


def upload(client, incident_id: int, data: bytes, name: str = "p.jpg", content_type: str = "image/jpeg"):
    return client.post(f"/api/v1/incidents/{incident_id}/photos", data={"kind": "report"},
                       files={"file": (name, data, content_type)})


def _image(fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 20), "green").save(out, fmt, **kw)
    return out.getvalue()


@pytest.mark.parametrize(("data", "status", "code"), [
    (SVG, 415, "photo.unsupported_type"),
    (b"<html><script>alert(1)</script></html>", 415, "photo.unsupported_type"),
    (b"", 415, "photo.unsupported_type"),
    (b"GIF89a" + _image("GIF")[6:], 415, "photo.unsupported_type"),
    (_image("BMP"), 415, "photo.unsupported_type"),
    (_image("TIFF"), 415, "photo.unsupported_type"),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", 415, "photo.unsupported_type"),
    (jpeg()[:200], 422, "photo.corrupt"),  # a JPEG cut short
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, 422, "photo.corrupt"),
])
def test_what_is_not_a_whole_photo_is_refused_whatever_it_is_called(case, worker, data, status, code):
    for name, content_type in (("p.jpg", "image/jpeg"), ("p.svg", "image/svg+xml"), ("p.png", "image/png")):
        response = upload(worker, case["id"], data, name, content_type)
        assert (response.status_code, response.json()["code"]) == (status, code), (name, response.text)
    assert worker.get(f"/api/v1/incidents/{case['id']}").json()["photos"] == []


def test_a_photo_is_its_bytes_type_and_a_name_with_a_path_is_never_used(case, worker, app):
    png = _image("PNG")
    response = upload(worker, case["id"], png, name="../../../../etc/passwd.jpg", content_type="image/jpeg")
    assert response.status_code == 201, response.text
    photo = response.json()
    assert photo["content_type"] == "image/png"
    served = worker.get(photo["url"])
    assert served.headers["Content-Type"] == "image/png" and served.content == png
    stored = [p.relative_to(app.config["PHOTO_DIR"]).as_posix() for p in Path(app.config["PHOTO_DIR"]).rglob("*")
              if p.is_file()]
    assert f"photos/{photo['sha256'][:2]}/{photo['sha256'][2:4]}/{photo['sha256']}.orig" in stored
    assert not any("passwd" in p or ".." in p for p in stored)


def test_a_jpeg_carrying_a_page_is_served_as_an_image_that_nothing_runs(case, worker, client_for, tree):
    polyglot = jpeg() + b"<html><script>alert(document.domain)</script></html>"
    response = upload(worker, case["id"], polyglot, name="x.html", content_type="text/html")
    assert response.status_code == 201 and response.json()["content_type"] == "image/jpeg"
    served = worker.get(response.json()["url"])
    assert served.headers["Content-Type"] == "image/jpeg"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert "default-src 'none'" in served.headers["Content-Security-Policy"]


def test_department_handlers_get_a_copy_without_exif_or_trailing_bytes(tree, worker, community, client_for):
    made = worker.post("/api/v1/incidents", json={"category": "0101", "description": "x",
                                                  "location": {"type": "Point", "coordinates": IN_G1}}).json()
    photo = upload(worker, made["id"], jpeg(lon=-118.39, lat=34.02, taken="2026:11:23 10:20:30+08:00") + b"<script>")
    assert photo.status_code == 201
    accepted = community.post(f"/api/v1/incidents/{made['id']}/actions/accept", json={"version": made["version"]})
    community.post(f"/api/v1/incidents/{made['id']}/actions/dispatch", json={
        "version": accepted.json()["version"], "department_id": tree.department.id})
    handler = client_for(tree["department"])
    detail = handler.get(f"/api/v1/incidents/{made['id']}").json()
    assert "exif_location" not in detail["photos"][0]
    copy = handler.get(detail["photos"][0]["url"])
    assert copy.headers["Content-Type"] == "image/jpeg" and b"<script>" not in copy.content
    assert exif_gps(copy.content) == {} and Image.open(io.BytesIO(copy.content)).getexif() == {}
    assert exif_gps(worker.get(detail["photos"][0]["url"]).content)  # staff keep the original


def test_heic_from_phones_is_taken(case, worker):
    out = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (32, 32), "blue")).save(out)
    response = upload(worker, case["id"], out.getvalue(), name="IMG_0001.HEIC", content_type="image/heic")
    assert response.status_code == 201 and response.json()["content_type"] == "image/heic"


def test_the_nothing_found_photo_is_checked_like_any_other(tree, client_for):
    from tests.campaign_builders import launch, tasks_by_cell

    street, worker = client_for(tree["street"]), client_for(tree["grid_worker"])
    campaign = launch(street, tree["S1"])
    task = tasks_by_cell(worker, campaign["id"])[tree["G1"].code]
    response = worker.post(f"/api/v1/campaigns/{campaign['id']}/tasks/{task['id']}/nothing-found",
                           files={"photo": ("cell.jpg", SVG, "image/jpeg")})
    assert (response.status_code, response.json()["code"]) == (415, "photo.unsupported_type")


def test_files_to_save_are_attachments_with_a_safe_name(tree, community):
    for path, params in (("/api/v1/incidents/export.csv", {}), ("/api/v1/incidents/export.xlsx", {}),
                         (f"/api/v1/stats/regions/{tree['K1'].id}/export.csv",
                          {"from": "2026-01-01", "to": "2026-02-01"})):
        response = community.get(path, params=params)
        assert response.status_code == 200
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith("attachment; filename=\"") and "/" not in disposition
        assert response.headers["Cache-Control"] == "no-store"
