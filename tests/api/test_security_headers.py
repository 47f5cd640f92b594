"""Security misconfiguration (OWASP API8): the headers every answer carries, no CORS, no
debugger, errors without internals, the request id echoed only when it is one."""
from __future__ import annotations

import requests

from server.web import map_policy
from tests.builders import build_tree
from tests.images import jpeg

DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"


def test_every_kind_of_answer_carries_the_headers(http, client_for, live_server, app, monkeypatch):
    monkeypatch.setitem(app.config, "HSTS_SECONDS", 31536000)
    tree = build_tree()
    worker = client_for(tree["grid_worker"])
    from tests.builders import standard_categories

    standard_categories()
    made = worker.post("/api/v1/incidents", data={"incident": '{"category": "0101", "description": "x", '
                                                              '"location": {"type": "Point", "coordinates": '
                                                              '[-118.39, 34.02]}}'},
                       files={"report": ("p.jpg", jpeg(), "image/jpeg")}).json()
    answers = {
        "json": worker.get("/api/v1/me"),
        "error": worker.get("/api/v1/regions/2147483000"),
        "anonymous": http.get("/api/v1/me"),
        "photo": worker.get(made["photos"][0]["url"]),
        "csv": worker.get("/api/v1/incidents/export.csv"),
        "tile": worker.get("/api/v1/map/tiles/0/0/0.mvt"),
        "spec": http.get("/api/v1/openapi.json"),
        "open311": requests.get(f"{live_server}/open311/v2/services.xml", timeout=30),
        "probe": http.get("/healthz"),
        "static": http.get("/static/web/map.js"),
        "unknown": http.get("/no/such/page"),
    }
    for name, response in answers.items():
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff", name
        assert headers["X-Frame-Options"] == "DENY", name
        assert headers["Strict-Transport-Security"] == "max-age=31536000", name
        assert "Access-Control-Allow-Origin" not in headers, name
        if name != "static":
            assert headers["Content-Security-Policy"] == DATA_POLICY or name == "csv", name
            assert "default-src 'none'" in headers["Content-Security-Policy"], name
            assert headers["Content-Security-Policy"].endswith("frame-ancestors 'none'; sandbox"), name
            assert headers["Referrer-Policy"] == "no-referrer", name
    assert answers["json"].headers["Cache-Control"] == "no-store"
    assert answers["error"].headers["Cache-Control"] == "no-store"
    assert answers["photo"].headers["Content-Type"] == "image/jpeg"
    assert answers["photo"].headers["Cache-Control"].startswith("private")  # the view's own
    assert answers["csv"].headers["Content-Disposition"].startswith("attachment;")
    assert answers["tile"].headers["Cache-Control"] == "private, max-age=15"


def test_pages_keep_their_own_policy_and_may_not_be_framed(http, app, monkeypatch):
    page = http.get("/map")
    assert page.headers["Content-Security-Policy"] == map_policy("")
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    docs = http.get("/api/v1/docs")
    assert docs.status_code == 200 and "frame-ancestors 'none'" in docs.headers["Content-Security-Policy"]
    assert docs.headers["X-Frame-Options"] == "DENY"
    monkeypatch.setitem(app.config, "MAP_BASEMAP_URL", "https://tiles.example.cn/{z}/{x}/{y}.png")
    policy = http.get("/map").headers["Content-Security-Policy"]
    assert "img-src 'self' data: blob: https://tiles.example.cn;" in policy
    assert "connect-src 'self' https://tiles.example.cn;" in policy


def test_no_cross_origin_reads_are_allowed(http):
    tree = build_tree()
    origin = {"Origin": "https://evil.example"}
    signed_in = http.post("/api/v1/auth/login", json={"username": tree["admin"].username,
                                                      "password": "correct horse battery"}, headers=origin)
    preflight = http.request("OPTIONS", "/api/v1/me", headers=origin | {
        "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
    for response in (signed_in, preflight):
        assert not any(name.lower().startswith("access-control-allow") for name in response.headers)


def test_an_unexpected_error_says_nothing_of_the_server(http, client_for, app, monkeypatch):
    from server.services import users

    def broken(actor):
        raise RuntimeError("secret internals at /srv/fengqiao/server/services/users.py")

    monkeypatch.setattr(users, "my_profile", broken)
    assert app.debug is False and app.config.get("PROPAGATE_EXCEPTIONS") in (None, False)
    tree = build_tree()
    response = client_for(tree["admin"]).get("/api/v1/me")
    assert response.status_code == 500
    assert response.json() == {"code": "internal", "status": 500, "message": "Internal error; it has been logged."}
    assert "Traceback" not in response.text and "secret" not in response.text


def test_the_request_id_is_echoed_only_when_it_looks_like_one(http):
    assert http.get("/healthz", headers={"X-Request-Id": "abc-123.4"}).headers["X-Request-Id"] == "abc-123.4"
    for sent in ("x" * 65, "a b", "<script>", "é"):
        echoed = http.get("/healthz", headers={"X-Request-Id": sent.encode("utf-8")}).headers["X-Request-Id"]
        assert echoed != sent and len(echoed) == 32


def test_a_reports_html_shows_names_as_text_and_runs_nothing(http, client_for):
    from datetime import date, timedelta

    from server.extensions import db

    tree = build_tree()
    tree["G1"].name = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    db.session.commit()
    last = date.today().replace(day=1) - timedelta(days=95)
    response = client_for(tree["street"]).get(f"/api/v1/reports/regions/{tree['K1'].id}/quarterly", params={
        "year": last.year, "quarter": (last.month - 1) // 3 + 1, "format": "html"})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    assert "<script>alert" not in response.text and "<img src=x" not in response.text
    policy = response.headers["Content-Security-Policy"]
    assert "sandbox" in policy and "script-src" not in policy and "default-src 'none'" in policy


def test_static_files_stay_in_their_folders(app):
    client = app.test_client()
    for path in ("/static/vendor/swagger-ui/../../package.json", "/static/vendor/swagger-ui/..%2f..%2fpackage.json",
                 "/static/vendor/maplibre-gl/%2e%2e/%2e%2e/package.json", "/static/web/..%2f__init__.py",
                 "/static/..%2f__init__.py", "/static/vendor/swagger-ui/%2Fetc%2Fpasswd",
                 "/static/vendor/node_modules/package.json"):
        assert client.get(path).status_code == 404, path
    assert client.get("/static/web/map.js").status_code == 200
