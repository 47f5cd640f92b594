"""Open311 GeoReport v2 at /open311/v2/ (docs/OPEN311.md): the reads of services, over HTTP
as a client app reads them, every JSON answer validated against the GeoReport v2 constraints
and every XML answer equal to its JSON (tests/open311_client.py)."""
from __future__ import annotations

from datetime import datetime
from xml.etree import ElementTree

import pytest
import requests

from server.extensions import db as _db
from server.models import Category
from tests.open311_client import DEFINITION, DISCOVERY, ERRORS, SERVICES, get, same_as_xml, valid_json


def test_discovery_and_services_as_a_client_reads_them(live_server, tree):
    discovery = valid_json(get(live_server, "discovery", "json"), DISCOVERY)
    assert datetime.fromisoformat(discovery["changeset"]).utcoffset() is not None  # ISO 8601 with its zone
    (endpoint,) = discovery["endpoints"]
    assert endpoint["url"] == f"{live_server}/open311/v2/" and endpoint["formats"] == ["text/xml", "application/json"]
    same_as_xml(live_server, "discovery", discovery)
    assert requests.get(f"{live_server}/open311/v2/discovery", timeout=30).headers["Content-Type"].startswith(
        "text/xml")  # no suffix: XML, the spec's default

    services = valid_json(get(live_server, "services", "json"), SERVICES)
    _db.session.rollback()
    public = {c.code for c in _db.session.scalars(_db.select(Category).where(
        Category.public, Category.parent_id.is_not(None), Category.retired_at.is_(None)))}
    assert {s["service_code"] for s in services} == public and len(public) > 20
    potholes = {s["service_code"]: s for s in services}["0201"]
    assert potholes["metadata"] is True and potholes["group"] and potholes["keywords"]
    same_as_xml(live_server, "services", services)
    english = valid_json(get(live_server, "services", "json", locale="en"), SERVICES)
    assert {s["service_code"]: s for s in english}["0201"]["service_name"] != potholes["service_name"]


def test_a_service_definition_lists_its_attributes(live_server, tree):
    definition = valid_json(get(live_server, "services/0201", "json"), DEFINITION)
    assert definition["service_code"] == "0201"
    damage = {a["code"]: a for a in definition["attributes"]}["damage"]
    assert damage["datatype"] == "singlevaluelist" and {"key": "missing", "name": "缺失"} in damage["values"]
    same_as_xml(live_server, "services/0201", definition)


@pytest.mark.parametrize("path, params, status", [
    ("services/nope", {}, 404),
    ("services/0201", {"jurisdiction_id": "elsewhere.gov"}, 404),
    ("nothing", {}, 404),
])
def test_errors_are_the_specs_list_in_both_formats(live_server, tree, path, params, status):
    body = valid_json(get(live_server, path, "json", **params), ERRORS)
    assert get(live_server, path, "json", **params).status_code == status and body[0]["code"] == status
    xml = get(live_server, path, "xml", **params)
    assert xml.status_code == status and ElementTree.fromstring(xml.content).tag == "errors"
    same_as_xml(live_server, path, body, **params)
