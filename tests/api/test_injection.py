"""Injection (OWASP API8 / input handling): every query parameter of every list, and every
path parameter, with SQL metacharacters, LIKE wildcards, NUL, huge and odd numbers, unicode
controls and long text — a 2xx or a 4xx with a code, never a 5xx, nothing changed; LIKE
wildcards match themselves; geometries and coordinate systems that are wrong or huge; XML
sent to Open311 is never parsed and what it stores comes back as text."""
from __future__ import annotations

import re
from xml.etree import ElementTree

import pytest
import requests
from sqlalchemy import func, select

from server.extensions import db
from server.models import Incident, Region, User
from tests.builders import build_tree, make_user, standard_categories
from tests.incident_builders import make_incident

HOSTILE = ["' OR '1'='1", "1; DROP TABLE users; --", "%", "_", "\\", "9" * 40, "-1", "1e309", "NaN", "١٢",
           "😀\u202e\u2028", "<x>&amp;", "a" * 5000, "", "2026-13-45", "34.0,-118.0,NaN,1", "1e400,0,1,1"]


@pytest.fixture
def tree(http):
    tree = build_tree()
    categories = standard_categories()
    make_incident(categories["0101"], tree["G1"], tree["grid_worker"], description="100% 真_的")
    make_user("per_cent", "grid_worker", tree["K1"])  # a name with a LIKE wildcard of its own
    return tree


def _fingerprint() -> tuple[int, ...]:
    db.session.rollback()
    return tuple(db.session.scalar(select(func.count()).select_from(m)) for m in (Region, User, Incident))


def _path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_query_parameter_takes_hostile_text_without_a_5xx(tree, client_for):
    admin = client_for(tree["admin"])
    spec = admin.get("/api/v1/openapi.json").json()
    before = _fingerprint()
    tried = 0
    for path, item in spec["paths"].items():
        operation = item.get("get")
        if operation is None or path.endswith(("/stream", ".mvt")):
            continue
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            for value in HOSTILE:
                response = admin.get(_path(path), params={parameter["name"]: value})
                assert response.status_code < 500, (path, parameter["name"], value, response.text[:300])
                if response.status_code >= 400:
                    assert response.json()["code"], (path, parameter["name"], value)
                tried += 1
    assert tried > 500
    assert _fingerprint() == before


def test_nul_and_lone_surrogates_in_a_query_are_refused_with_their_code(tree, client_for):
    admin = client_for(tree["admin"])
    for path in ("/api/v1/users", "/api/v1/regions", "/api/v1/categories", "/api/v1/incidents"):
        response = admin.get(path + "?q=a%00b" if path != "/api/v1/incidents" else path + "?sort=a%00b")
        assert (response.status_code, response.json()["code"]) == (422, "request.invalid_characters"), path
        broken = admin.get(path + "?q=%ED%A0%80%FF")  # bytes that are no UTF-8: read as U+FFFD, never a 5xx
        assert broken.status_code < 500


@pytest.mark.parametrize(("path", "found"), [
    ("/api/v1/users", lambda items: {u["username"] for u in items}),
    ("/api/v1/regions", lambda items: {r["code"] for r in items}),
    ("/api/v1/categories", lambda items: {c["code"] for c in items}),
])
def test_like_wildcards_in_a_search_match_only_themselves(tree, client_for, path, found):
    admin = client_for(tree["admin"])
    for wildcard in ("%", "_", "\\", "%%", "_%_"):
        items = admin.get(path, params={"q": wildcard, "page_size": 500}).json()["items"]
        names = found(items)
        text = " ".join(str(item) for item in items)
        assert not items or wildcard in text, (path, wildcard, names)
    assert {u["username"] for u in admin.get("/api/v1/users", params={"q": "_"}).json()["items"]} == {"per_cent"}


@pytest.mark.parametrize("value", ["1' OR '1'='1", "1;SELECT", "0x1", "-1", "1.0", "99999999999999999999",
                                   "2147483648", "１", "1%00", "1%2F2"])
def test_a_path_id_that_is_not_a_32_bit_number_matches_no_route(tree, client_for, value):
    admin = client_for(tree["admin"])
    for path in ("/api/v1/incidents/{}", "/api/v1/users/{}", "/api/v1/regions/{}/coverage",
                 "/api/v1/incidents/1/photos/{}", "/api/v1/exports/{}/file", "/api/v1/calendar/days/{}"):
        response = admin.get(path.format(value))
        assert response.status_code in (404, 405), (path, value, response.status_code)
        assert response.json()["code"] in ("http.not_found", "http.method_not_allowed", "incident.not_found")


def _square(size: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[0, 0], [size, 0], [size, size], [0, size], [0, 0]]]}


@pytest.mark.parametrize("geometry", [
    {"type": "Point", "coordinates": [0, 0]},
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},  # a bow tie
    {"type": "Polygon", "coordinates": [[[0, 0], [1e308, 0], [1, 1], [0, 0]]]},
    {"type": "Polygon", "coordinates": [[[0, 0], ["NaN", 0], [1, 1], [0, 0]]]},
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]},  # not closed
    {"type": "Polygon", "coordinates": []},
    {"type": "GeometryCollection", "geometries": []},
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]], "crs": {
        "type": "name", "properties": {"name": "EPSG:3857'; DROP TABLE regions; --"}}},
    {"type": "MultiPolygon", "coordinates": [[[[x * 1e-4, 0], [x * 1e-4 + 1e-5, 0], [x * 1e-4, 1e-5], [x * 1e-4, 0]]]
                                             for x in range(20_000)]},  # large, inside 1 MiB? refused or taken
    "POLYGON((0 0, 1 0, 1 1, 0 0))",
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]] * 5000},  # thousands of holes
])
def test_wrong_and_huge_geometries_are_refused_with_a_code(tree, client_for, geometry):
    admin = client_for(tree["admin"])
    before = _fingerprint()
    response = admin.post("/api/v1/regions", json={"code": "GEO1", "name": "几何", "level": "grid",
                                                   "parent_id": tree["K1"].id, "geometry": geometry})
    assert 400 <= response.status_code < 500, response.text[:300]
    assert response.json()["code"].split(".")[0] in ("geometry", "request", "region")
    assert _fingerprint() == before


@pytest.mark.parametrize("crs", ["EPSG:4326", "wgs84'; --", "GCJ02", "gcj02\u0000", "bd09 ", "", "epsg:3857"])
def test_an_unknown_coordinate_system_is_refused(tree, client_for, crs):
    worker = client_for(tree["grid_worker"])
    before = _fingerprint()
    report = worker.post("/api/v1/incidents", json={"category": "0101", "description": "x", "crs": crs,
                                                    "location": {"type": "Point", "coordinates": [-118.39, 34.02]}})
    located = worker.get("/api/v1/regions/locate", params={"lon": -118.39, "lat": 34.02, "crs": crs})
    for response in (report, located):
        assert response.status_code == 422 and response.json()["code"].startswith("request."), response.text
    assert _fingerprint() == before


def test_xml_sent_to_open311_is_never_parsed_and_comes_back_as_text(tree, client_for, live_server):
    admin = client_for(tree["admin"])
    key = admin.post("/api/v1/open311/clients", json={"name": "随手拍"}).json()["api_key"]
    doctype = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    as_xml = requests.post(f"{live_server}/open311/v2/requests.xml", data=doctype.encode(), timeout=30,
                           headers={"Content-Type": "application/xml"})
    assert as_xml.status_code == 415 and "root:" not in as_xml.text
    ElementTree.fromstring(as_xml.content)  # the error list is itself well-formed XML
    text = "]]><description>&x;</description><!-- " + doctype
    posted = requests.post(f"{live_server}/open311/v2/requests.json", timeout=30, data={
        "api_key": key, "service_code": "0201", "attribute[damage]": "missing", "lat": "34.02", "long": "-118.39",
        "description": text})
    assert posted.status_code == 201
    number = posted.json()[0]["service_request_id"]
    read = requests.get(f"{live_server}/open311/v2/requests/{number}.xml", timeout=30)
    root = ElementTree.fromstring(read.content)
    assert root.find("request/description").text == text and "root:" not in read.text


def test_headers_carrying_injection_are_refused_or_ignored(tree, client_for):
    worker = client_for(tree["grid_worker"])
    body = {"category": "0101", "description": "x", "location": {"type": "Point", "coordinates": [-118.39, 34.02]}}
    for key in ("a" * 300, "' OR 1=1 --", "\u00e9t\u00e9"):
        response = worker.post("/api/v1/incidents", json=body, headers={"Idempotency-Key": key.encode("utf-8")})
        assert response.status_code in (201, 400, 422), response.text
    for match in ('"1; DROP"', "W/\"x\"", "9" * 40, "*"):
        response = worker.post("/api/v1/incidents/1/actions/comment", json={"note": "x"}, headers={"If-Match": match})
        assert response.status_code in (200, 400, 404, 422) and response.json()["code"]
    english = worker.get("/api/v1/categories", headers={"Accept-Language": "en'; DROP TABLE users; --"})
    assert english.status_code == 200
