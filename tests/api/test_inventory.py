"""The API's inventory (OWASP API9): the OpenAPI document lists every route under /api/v1/ and
nothing else; each operation but signing in says it needs a bearer token and documents the
401; parameters are of OpenAPI 3's kinds (form fields beside files are in the body, not
``formData``); the routes outside /api/v1/ are the pages, static files, probes and Open311,
named here one by one."""
from __future__ import annotations

import re

ANONYMOUS = {("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/refresh")}
NOT_IN_THE_DOCUMENT = {("GET", "/api/v1/openapi.json"), ("GET", "/api/v1/docs")}  # the document and its viewer
OUTSIDE_THE_API = {
    ("GET", "/"), ("GET", "/map"),  # the map page
    ("GET", "/healthz"), ("GET", "/readyz"),  # probes
    ("GET", "/static/<path:filename>"), ("GET", "/static/vendor/<lib>/<path:filename>"),
    ("GET", "/static/web/<path:filename>"),
    ("GET", "/open311/v2/<name>"), ("POST", "/open311/v2/<name>"), ("GET", "/open311/v2/requests/<name>"),
    ("GET", "/open311/v2/services/<name>"), ("GET", "/open311/v2/tokens/<name>"),  # docs/OPEN311.md
}
METHODS = ("get", "post", "put", "patch", "delete")


def test_the_document_lists_every_route_of_the_api_and_nothing_more(app, http):
    spec = http.get("/api/v1/openapi.json").json()
    documented = {(m.upper(), path) for path, item in spec["paths"].items() for m in item if m in METHODS}
    routed, outside = set(), set()
    for rule in app.url_map.iter_rules():
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if rule.rule.startswith("/api/v1/"):
                routed.add((method, re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)))
            else:
                outside.add((method, rule.rule))
    assert routed - NOT_IN_THE_DOCUMENT == documented
    assert outside == OUTSIDE_THE_API


def test_every_operation_says_who_may_call_it_and_how_it_fails(http):
    spec = http.get("/api/v1/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer",
                                                                   "bearerFormat": "JWT"}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            if (method.upper(), path) in ANONYMOUS:
                assert not operation.get("security"), path
                continue
            assert operation.get("security") == [{"bearerAuth": []}], (method, path)
            assert "401" in operation["responses"], (method, path)
            assert operation.get("summary"), (method, path)
            for parameter in operation.get("parameters", []) + item.get("parameters", []):
                assert parameter["in"] in ("path", "query", "header", "cookie"), (method, path, parameter)


def test_form_fields_sent_beside_files_are_documented_in_the_body(http):
    spec = http.get("/api/v1/openapi.json").json()
    for path, field in (("/api/v1/incidents/{incident_id}/photos", "kind"),
                        ("/api/v1/campaigns/{campaign_id}/tasks/{task_id}/nothing-found", "note")):
        operation = spec["paths"][path]["post"]
        body = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert field in body["properties"] and "parameters" not in operation
    assert "kind" in spec["paths"]["/api/v1/incidents/{incident_id}/photos"]["post"]["requestBody"]["content"][
        "multipart/form-data"]["schema"]["required"]
    assert "200" in spec["paths"]["/api/v1/incidents/{incident_id}/photos"]["post"]["responses"]  # a repeat
