"""Object properties (OWASP API3): no body takes a field the server sets (mass assignment),
and no answer carries what its reader should not see (excessive data exposure): secrets
and their hashes nowhere, a caller's contact in full only to the case's supervisors."""
from __future__ import annotations

import re

import requests

from tests.builders import standard_categories
from tests.incident_builders import make_incident, make_task

# Fields the server sets or that name who and where: never taken from a body that does not
# declare them (those that do — a user's region_id, a dispatch's assignee_id — are checked
# against the actor by the object-level matrix).
SERVER_SET = ("id", "role", "region_id", "region_path", "path", "status", "state", "level", "reporter_id",
              "user_id", "owner_id", "version", "is_active", "is_admin", "password_hash", "token_hash", "key_hash",
              "department_id", "created_at", "created_by", "updated_at", "retired_at", "scope_path", "attempt",
              "storage_key", "sha256", "uploaded_by", "rows_done", "issued_by", "revoked_at", "finished_by")
# A value for each (of a type the real field would take, so only its being unknown refuses it).
VALUE = {"id": 1, "version": 99, "is_active": True, "is_admin": True, "attempt": 1, "rows_done": 1}


def _spec(client) -> dict:
    return client.get("/api/v1/openapi.json").json()


def _properties(spec: dict, schema: dict) -> set[str]:
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return set(schema.get("properties", {}))


def _path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: {"{day}": "2030-01-02", "{action}": "accept"}.get(m.group(0), "1"), path)


def test_every_json_body_refuses_fields_it_does_not_declare(tree, client_for):
    """Each operation's body with the server's fields added: 422 request.invalid naming each,
    before anything is done."""
    admin = client_for(tree["admin"])
    spec = _spec(admin)
    checked = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            declared = _properties(spec, content["application/json"]["schema"])
            extra = {name: VALUE.get(name, "x") for name in SERVER_SET if name not in declared}
            if "/regions/import" in path:  # a FeatureCollection's foreign members are ignored, never read
                continue
            response = admin.request(method.upper(), _path(path), json=extra,
                                     params={"level": "grid", "code_field": "c", "name_field": "n"}
                                     if path.endswith("/import") else None)
            assert response.status_code == 422, (method, path, response.text)
            body = response.json()
            assert body["code"] == "request.invalid", (method, path, body)
            unknown = {name for name, messages in body["errors"].items() if "Unknown field." in messages}
            assert unknown == set(extra), (method, path, set(extra) - unknown)
            checked += 1
    assert checked >= 35


def test_a_reports_multipart_json_part_refuses_undeclared_fields_too(tree, client_for):
    worker = client_for(tree["grid_worker"])
    part = '{"category": "0101", "description": "x", "location": {"type": "Point", "coordinates": [-118.39, 34.02]}, ' \
           '"status": "closed", "reporter_id": 1, "level": "city"}'
    response = worker.post("/api/v1/incidents", files={"incident": (None, part, "application/json")})
    assert (response.status_code, response.json()["code"]) == (422, "request.invalid")
    assert set(response.json()["errors"]) == {"status", "reporter_id", "level"}


def test_every_query_string_refuses_parameters_it_does_not_declare(tree, client_for):
    admin = client_for(tree["admin"])
    spec = _spec(admin)
    checked = 0
    for path, item in spec["paths"].items():
        operation = item.get("get")
        if operation is None or not any(p["in"] == "query" for p in operation.get("parameters", [])):
            continue
        response = admin.get(_path(path), params={"is_admin": "true"})
        assert (response.status_code, response.json()["code"]) == (422, "request.invalid"), (path, response.text)
        checked += 1
    assert checked >= 30


def test_open311_ignores_what_a_citizen_may_not_set(tree, client_for, live_server):
    admin = client_for(tree["admin"])
    key = admin.post("/api/v1/open311/clients", json={"name": "随手拍"}).json()["api_key"]
    posted = requests.post(f"{live_server}/open311/v2/requests.json", timeout=30, data={
        "api_key": key, "service_code": "0201", "attribute[damage]": "missing", "lat": "34.02", "long": "-118.39",
        "status": "closed", "service_request_id": "1", "agency_responsible": "X", "level": "city",
        "priority": "urgent"})
    assert posted.status_code == 201, posted.text
    number = posted.json()[0]["service_request_id"]
    case = admin.get(f"/api/v1/incidents/{number}").json()
    assert (case["status"], case["level"], case["source"]) == ("reported", "grid", "open311")
    assert case["priority"] == standard_categories()["0201"].default_priority


# ---------------------------------------------------------------- excessive data exposure

SECRET_NAMES = re.compile(r"password|token_hash|key_hash|secret|refresh_token|api_key|access_token")
# where a secret is the point of the answer: the sign-in's tokens, a new client's key (once)
SECRET_ANSWERS = {"TokenPair": {"access_token", "refresh_token"}, "IssuedClient": {"api_key"}}


def test_no_answer_schema_has_a_field_for_a_secret(tree, client_for):
    spec = _spec(client_for(tree["admin"]))
    for name, schema in spec["components"]["schemas"].items():
        allowed = SECRET_ANSWERS.get(name, set())
        for field in schema.get("properties", {}):
            if SECRET_NAMES.search(field) and field not in allowed:
                # a body field the client sends (load-only) is not an answer
                assert schema["properties"][field].get("writeOnly") or name.endswith(
                    ("Create", "Change", "Patch", "Token", "Refresh", "Login")), (name, field)


PHONE, NAME = "13812345678", "张三丰"


def test_a_callers_contact_is_whole_only_for_the_cases_supervisors(tree, client_for):
    """Everywhere a case is shown — the list, the detail, the export, sync, tasks, the map,
    Open311 — its contact is masked, except in the detail for those who supervise it."""
    category = standard_categories()["0101"]
    case = make_incident(category, tree["G1"], tree["grid_worker"], status="dispatched", contact_name=NAME,
                         contact_phone=PHONE, source="hotline")
    make_task(case, department=tree.department)
    supervisors = {"admin", "city", "district", "street", "community"}
    for role in ("admin", "city", "district", "street", "community", "grid_worker", "department"):
        client = client_for(tree[role])
        detail = client.get(f"/api/v1/incidents/{case.id}")
        assert detail.status_code == 200
        whole = detail.json()["contact"] == {"name": NAME, "phone": PHONE}
        assert whole == (role in supervisors), role
        if not whole:
            assert detail.json()["contact"] == {"name": "张**", "phone": "138****5678"}
        for path, params in (("/api/v1/incidents", {}), ("/api/v1/incidents/export.csv", {}),
                             ("/api/v1/incidents/export.xlsx", {}), ("/api/v1/sync", {}),
                             ("/api/v1/me/tasks", {}), ("/api/v1/map/incidents", {"bbox": "-119,33,-117,35"}),
                             ("/api/v1/map/changes", {})):
            response = client.get(path, params=params)
            assert response.status_code == 200, (role, path, response.text)
            assert PHONE not in response.text and NAME not in response.text, (role, path)
            assert PHONE.encode() not in response.content
    public = requests.get(f"{client.base_url}/open311/v2/requests/{case.id}.json", timeout=30)
    assert PHONE not in public.text and "138" not in public.text and NAME[0] not in public.text
