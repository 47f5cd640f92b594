"""Open311 GeoReport v2 at /open311/v2/ (docs/OPEN311.md), over HTTP as a client app reads
it: every JSON answer validated against the GeoReport v2 JSON-schema constraints (written
out here from the published schemas of open311/schema-validation, whose files carry no
licence), every XML answer well formed and equal to its JSON."""
from __future__ import annotations

from datetime import datetime
from xml.etree import ElementTree

import jsonschema
import pytest
import requests

from server.extensions import db as _db
from server.models import Category

NULLABLE_STRING = {"type": ["string", "null"]}
SERVICE = {
    "type": "object",
    "required": ["service_code", "service_name", "type", "metadata"],
    "properties": {
        "service_code": {"type": "string"}, "service_name": {"type": "string"}, "description": NULLABLE_STRING,
        "metadata": {"type": "boolean"}, "type": {"type": "string", "enum": ["realtime", "batch", "blackbox"]},
        "keywords": NULLABLE_STRING, "group": NULLABLE_STRING,
    },
}
SERVICES = {"type": "array", "items": SERVICE}
DEFINITION = {
    "type": "object",
    "required": ["service_code", "attributes"],
    "properties": {
        "service_code": {"type": "string"},
        "attributes": {"type": "array", "items": {
            "type": "object",
            "required": ["variable", "code", "datatype", "required"],
            "properties": {
                "variable": {"type": "boolean"}, "code": {"type": "string"},
                "datatype": {"type": "string", "enum": ["string", "number", "datetime", "text", "singlevaluelist",
                                                        "multivaluelist"]},
                "required": {"type": "boolean"}, "datatype_description": NULLABLE_STRING,
                "order": {"type": ["integer", "null"]}, "description": NULLABLE_STRING,
                "values": {"type": "array", "items": {"type": "object", "required": ["key", "name"],
                                                      "properties": {"key": {"type": "string"},
                                                                     "name": {"type": "string"}}}},
            },
        }},
    },
}
DISCOVERY = {
    "type": "object",
    "required": ["changeset", "contact", "endpoints"],
    "properties": {
        "changeset": {"type": ["string", "null"], "format": "date-time"}, "contact": {"type": "string"},
        "key_service": {"type": "string"},
        "endpoints": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["specification", "url", "type", "formats"],
            "properties": {"specification": {"type": "string"}, "url": {"type": "string", "format": "uri"},
                           "changeset": {"type": ["string", "null"], "format": "date-time"},
                           "type": {"type": "string", "enum": ["production", "test"]},
                           "formats": {"type": "array", "items": {"type": "string"}}},
        }},
    },
}
ERRORS = {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["code", "description"],
                                                     "properties": {"code": {"type": "integer"},
                                                                    "description": {"type": "string"}}}}
CHECKER = jsonschema.Draft7Validator.FORMAT_CHECKER


def get(base: str, path: str, fmt: str, **params) -> requests.Response:
    return requests.get(f"{base}/open311/v2/{path}.{fmt}", params=params, timeout=30)


def valid_json(response: requests.Response, schema: dict):
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    jsonschema.validate(body, schema, format_checker=CHECKER)
    return body


def xml_as_json(element: ElementTree.Element, lists: set[str]):
    """An XML answer read back into the JSON's shape: elements named in ``lists`` hold lists."""
    children = list(element)
    if element.tag in lists:
        return [xml_as_json(child, lists) for child in children]
    if not children:
        return element.text
    return {child.tag: xml_as_json(child, lists) for child in children}


def as_text(value):
    """A JSON value as the XML writes it (true/false, numbers as text, None as no text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        return {k: as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_text(v) for v in value]
    return value


def same_as_xml(base: str, path: str, body, lists: set[str], **params) -> None:
    response = requests.get(f"{base}/open311/v2/{path}.xml", params=params, timeout=30)
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ElementTree.fromstring(response.content)
    assert xml_as_json(root, lists) == as_text(body)


def test_discovery_and_services_as_a_client_reads_them(live_server, tree):
    discovery = valid_json(get(live_server, "discovery", "json"), DISCOVERY)
    assert datetime.fromisoformat(discovery["changeset"]).utcoffset() is not None  # ISO 8601 with its zone
    (endpoint,) = discovery["endpoints"]
    assert endpoint["url"] == f"{live_server}/open311/v2/" and endpoint["formats"] == ["text/xml", "application/json"]
    same_as_xml(live_server, "discovery", discovery, {"endpoints", "formats"})
    assert requests.get(f"{live_server}/open311/v2/discovery", timeout=30).headers["Content-Type"].startswith(
        "text/xml")  # no suffix: XML, the spec's default

    services = valid_json(get(live_server, "services", "json"), SERVICES)
    _db.session.rollback()
    public = {c.code for c in _db.session.scalars(_db.select(Category).where(
        Category.public, Category.parent_id.is_not(None), Category.retired_at.is_(None)))}
    assert {s["service_code"] for s in services} == public and len(public) > 20
    potholes = {s["service_code"]: s for s in services}["0201"]
    assert potholes["metadata"] is True and potholes["group"] and potholes["keywords"]
    same_as_xml(live_server, "services", services, {"services"})
    english = valid_json(get(live_server, "services", "json", locale="en"), SERVICES)
    assert {s["service_code"]: s for s in english}["0201"]["service_name"] != potholes["service_name"]


def test_a_service_definition_lists_its_attributes(live_server, tree):
    definition = valid_json(get(live_server, "services/0201", "json"), DEFINITION)
    assert definition["service_code"] == "0201"
    damage = {a["code"]: a for a in definition["attributes"]}["damage"]
    assert damage["datatype"] == "singlevaluelist" and {"key": "missing", "name": "缺失"} in damage["values"]
    same_as_xml(live_server, "services/0201", definition, {"attributes", "values"})


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
    same_as_xml(live_server, path, body, {"errors"}, **params)
